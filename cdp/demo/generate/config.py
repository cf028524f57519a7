"""What to generate (``GenerateConfig``) and what was generated (``GenerateStats``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from cdp.demo.generate.clock import JST

# ~215k events: above the 5,000 customers / 200,000 events floor, and the demo
# stays well under a minute.
DEFAULT_CUSTOMERS: Final = 5_200
EVENTS_PER_CUSTOMER: Final = 40
"""Average events per customer over twelve months; ``events`` targets divide by it."""
DEFAULT_END: Final = datetime(2026, 10, 31, 23, 59, 59, tzinfo=JST).astimezone(UTC)


@dataclass(frozen=True)
class GenerateConfig:
    """What to generate. The same config always gives the same events, byte for byte.

    ``customers`` is how many people to simulate. Left as ``None`` it is
    ``max(1, events // 40)`` when an ``events`` target is given, else 5,200.
    ``events`` is a target, not an exact count: each simulated person brings
    about 40 events over twelve months, so the total lands within a few
    percent of it (``GenerateStats.events`` has the real count). Events fall
    in the ``months`` calendar months up to ``end``.
    """

    seed: int = 42
    customers: int | None = None
    events: int | None = None
    end: datetime = DEFAULT_END
    months: int = 12

    def __post_init__(self) -> None:
        if self.customers is not None and self.customers < 1:
            raise ValueError(f"customers must be at least 1, not {self.customers}")
        if self.events is not None and self.events < 1:
            raise ValueError(f"events must be at least 1, not {self.events}")
        if self.months < 1:
            raise ValueError(f"months must be at least 1, not {self.months}")
        if self.end.tzinfo is None:
            raise ValueError(f"end must be timezone-aware, not {self.end.isoformat()}")

    @property
    def customer_count(self) -> int:
        """The number of customers to simulate, after applying the defaults."""
        if self.customers is not None:
            return self.customers
        if self.events is not None:
            return max(1, self.events // EVENTS_PER_CUSTOMER)
        return DEFAULT_CUSTOMERS


@dataclass(frozen=True)
class GenerateStats:
    """What ``generate`` wrote.

    ``by_type`` counts events by tag: the event name of a track (``"Order
    Completed"``), else the message type (``"page"``, ``"identify"``), sorted
    by tag. ``start``/``end`` bound the window every timestamp lies in;
    ``bytes`` is the size of the file.
    """

    events: int
    customers: int
    by_type: dict[str, int]
    start: datetime
    end: datetime
    bytes: int
