"""What the identity graph records and hands out: merges, rejections, resolutions, rows.

Every merge and every refusal names the event that caused it (``Merge``,
``Rejection``), so any customer can be explained from the log. ``Row`` is the
snapshot form of the graph (``IdentityGraph.to_rows``/``from_rows``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

Row = tuple[str, str, int, str]
"""A snapshot row; its columns are named by ``ROW_COLUMNS``."""

ROW_COLUMNS: Final = ("identifier", "customer_id", "seq", "merged_into")
"""Two kinds of row share one shape (str/int only, for JSON and DuckDB):
``(identifier, customer_id, seq, "")`` places an identifier in a live customer;
``("", customer_id, seq, merged_into)`` records a merged-away customer.
``seq`` is the customer's creation sequence number."""


@dataclass(frozen=True, slots=True)
class Merge:
    """Customer ``from_customer`` was folded into ``into_customer`` by an event."""

    from_customer: str
    into_customer: str
    reason: str
    via: str
    """The identifier key that joined them."""
    message_id: str
    offset: int
    at: datetime
    """Event time of the event that caused the merge."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A link the rules refused: ``identifier`` did not join ``customer_id``."""

    customer_id: str
    identifier: str
    reason: str
    message_id: str
    offset: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    """What ``apply`` decided for one event."""

    customer_id: str | None
    """The event's customer after all merges; ``None`` when it carries no usable identifier."""
    merges: tuple[Merge, ...]
    rejections: tuple[Rejection, ...]
    created: bool
    """A new customer was created by this event."""


# A frozen dataclass's __init__ sets each field through object.__setattr__,
# which costs more than the rest of apply() for an event whose identifiers are
# all known. The slot descriptors build the same object in half the time.
_SET_RESOLUTION: Final = tuple(
    Resolution.__dict__[name].__set__ for name in ("customer_id", "merges", "rejections", "created")
)


def _resolution(
    customer_id: str | None,
    merges: tuple[Merge, ...],
    rejections: tuple[Rejection, ...],
    created: bool,
) -> Resolution:
    """``Resolution(customer_id, merges, rejections, created)``, faster."""
    resolution = object.__new__(Resolution)
    set_customer, set_merges, set_rejections, set_created = _SET_RESOLUTION
    set_customer(resolution, customer_id)
    set_merges(resolution, merges)
    set_rejections(resolution, rejections)
    set_created(resolution, created)
    return resolution


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in a graph since the previous ``take_changes``."""

    identifiers: tuple[str, ...]
    """Identifier keys (sorted) that are new or now belong to another customer."""
    merged_away: tuple[str, ...]
    """Customer ids merged into another, in merge order."""
    merges: tuple[Merge, ...]
    rejections: tuple[Rejection, ...]
    rows: tuple[Row, ...]
    """Rows to upsert (key: ``identifier``, or ``customer_id`` when that is
    empty) so that a stored snapshot equals ``to_rows()`` again."""
