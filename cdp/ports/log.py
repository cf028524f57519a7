"""The ``EventLog`` port: the source of truth every projection is folded from.

An adapter stores validated events in a total order of *offsets* and
deduplicates by ``messageId``. Adapters: ``cdp.adapters.duckdb.log.DuckDBEventLog``
(embedded, the default); the Kafka adapter arrives with the distributed
runtime. ``tests/integration/test_log_contract.py`` is the contract every
adapter must pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from schemas import AnyEvent


@dataclass(frozen=True, slots=True)
class Record:
    """A validated event ready to append, with the exact bytes to store."""

    event: AnyEvent
    data: bytes
    source: str | None = None

    @property
    def message_id(self) -> str:
        return self.event.message_id


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event read back from the log at ``offset``."""

    offset: int
    event: AnyEvent


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What ``append`` did for each record, in input order.

    ``offsets[i]`` is where record ``i`` is stored: newly, or (for a
    ``messageId`` seen before) the offset of the first copy; ``new[i]`` says
    which. Once ``append`` returns, every record is durable.
    """

    offsets: tuple[int, ...]
    new: tuple[bool, ...]

    @property
    def appended(self) -> int:
        return sum(self.new)

    @property
    def duplicates(self) -> int:
        return len(self.new) - self.appended

    def new_events(self, records: Sequence[Record]) -> list[StoredEvent]:
        """The records that were stored now, as stored events in offset order."""
        stored = [
            StoredEvent(offset, record.event)
            for offset, record, is_new in zip(self.offsets, records, self.new, strict=True)
            if is_new
        ]
        stored.sort(key=lambda s: s.offset)
        return stored


class EventLog(Protocol):
    """Append-only, deduplicated, durable event log."""

    def append(self, records: Sequence[Record]) -> AppendResult:
        """Store the records atomically and durably; duplicates store nothing."""
        ...

    def read(
        self, start: int = 0, stop: int | None = None, batch_size: int = 10_000
    ) -> Iterator[list[StoredEvent]]:
        """Events with ``start <= offset < stop`` in offset order, in batches."""
        ...

    def high_water(self) -> int:
        """One past the highest offset stored (0 for an empty log)."""
        ...

    def close(self) -> None:
        """Release the log's resources."""
        ...
