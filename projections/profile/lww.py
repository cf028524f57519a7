"""Building blocks of order-independent folds: last-writer-wins cells and merges.

A fold gives the same state for every order of its events when each piece of
state merges with an operation that is commutative and associative, with the
empty value as identity:

- a fact that can change (a trait, a consent, an order's content) is an ``Lww``
  cell that remembers the event that set it; the later ``(at, message_id)``
  wins, so a late event never overwrites a newer fact and ties between events
  of the same instant are broken the same way on every replay;
- a counter is a sum, a set is a union, "first" is a min and "last" a max.

Precondition: every ``message_id`` is folded once (the event log deduplicates
by ``messageId``), and states that are combined come from disjoint events.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Generic, NamedTuple, Protocol, TypeVar

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")


class Stamped(Protocol):
    """Anything that records the event that wrote it."""

    @property
    def at(self) -> datetime:
        """Event time of the writing event."""
        ...

    @property
    def message_id(self) -> str:
        """``messageId`` of the writing event (the tie-breaker)."""
        ...


S = TypeVar("S", bound=Stamped)


class Lww(NamedTuple, Generic[T]):
    """A value and the event that set it; the later ``(at, message_id)`` wins."""

    at: datetime
    """Event time of the event that set the value."""
    message_id: str
    """``messageId`` of that event; breaks ties between events of the same instant."""
    value: T
    """The value itself."""


def beats(new: Stamped, old: Stamped) -> bool:
    """Whether ``new`` was written by a later event than ``old``."""
    # Compared field by field, not as tuples: values need not be orderable, and
    # this allocates nothing on the hot path.
    return new.at > old.at or (new.at == old.at and new.message_id > old.message_id)


def later(a: S, b: S) -> S:
    """The later-written of two cells."""
    return b if beats(b, a) else a


def later_or_none(a: S | None, b: S | None) -> S | None:
    """The later-written of two optional cells (``None`` means never written)."""
    if a is None:
        return b
    if b is None:
        return a
    return b if beats(b, a) else a


def earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The earlier of two optional times."""
    if a is None:
        return b
    if b is None:
        return a
    return b if b < a else a


def latest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two optional times."""
    if a is None:
        return b
    if b is None:
        return a
    return b if b > a else a


def merge_maps(a: Mapping[K, V], b: Mapping[K, V], merge: Callable[[V, V], V]) -> dict[K, V]:
    """Key-wise merge: keys of either map, values of both combined with ``merge``."""
    if len(b) > len(a):
        a, b = b, a  # copy the bigger map; ``merge`` is commutative
    out = dict(a)
    for key, value in b.items():
        mine = out.get(key)
        out[key] = value if mine is None else merge(mine, value)
    return out


def merge_later(a: Mapping[K, S], b: Mapping[K, S]) -> dict[K, S]:
    """Key-wise last-writer-wins merge of two maps of cells."""
    return merge_maps(a, b, later)


def merge_sums(a: Mapping[K, int], b: Mapping[K, int]) -> dict[K, int]:
    """Key-wise sum of two counter maps."""
    return merge_maps(a, b, int.__add__)


def merge_earliest(a: Mapping[K, datetime], b: Mapping[K, datetime]) -> dict[K, datetime]:
    """Key-wise min of two maps of times."""
    return merge_maps(a, b, min)


def iso(moment: datetime) -> str:
    """A time as an ISO-8601 string in UTC (the snapshot form)."""
    return moment.astimezone(UTC).isoformat()


def from_iso(text: str) -> datetime:
    """Inverse of ``iso``."""
    return datetime.fromisoformat(text)
