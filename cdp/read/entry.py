"""What the lookup read model (``cdp.read.model``) holds per customer, and the
recent-event ring it carries.

``Entry`` is one customer as of one checkpoint: the profile's stored columns
pre-serialised as JSON, the few values the answer builder (``cdp.read.answer``)
computes the "now" columns and the lead block from,
the lead-score buckets that explain the score (compact JSON), the identifiers,
the merges (JSON) and a ring of the ``RING`` most recent events (JSON).
``Version`` is the checkpoint a model state is of; ``Found`` what one lookup
read of it (``Owners``: who the graph gives an identifier, asked on demand). A ring item is ``[µs since 1970, offset, event]`` (``event_json``),
newest first; events are attributed exactly as the ``events`` view does
(``attribute``), and rings combine with ``merge_rings``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import orjson

from cdp.read.answer import FACTS
from projections import lead_score

RING = 10
"""Recent events kept per customer (the API's default ``events``); more are read
from the log."""
USER_PREFIX = "user_id:"
ANON_PREFIX = "anonymous_id:"


def kept(data: bytes) -> bytes:
    """``data`` copied into an object of exactly its length, for what the model holds.

    orjson returns its output in the buffer it wrote into, which stays allocated
    (about 32 KB per object, whatever the length): fine for an answer sent at
    once, but the read model holds several per customer (measured: 224 MB for
    6,366 customers instead of 33 MB; docs/benchmarks.md)."""
    return bytes(memoryview(data))


@dataclass(frozen=True, slots=True)
class Entry:
    """One customer as of one checkpoint (immutable: replaced whole, never edited)."""

    customer_id: str
    identifiers: tuple[str, ...]
    #: The stored columns as a JSON object; None: no row.
    profile: bytes | None
    #: The values of ``cdp.read.answer.FACTS`` (what the answer computes from).
    facts: tuple[Any, ...]
    #: ``[last_activity, buckets]`` of the lead-score state (what ``explain`` reads).
    explain: bytes | None
    merges: bytes
    #: JSON ``[[µs since 1970, offset, event], ...]``, newest first, at most ``RING``.
    recent: bytes

    def facts_by_name(self) -> dict[str, Any]:
        """``facts`` by column name."""
        return dict(zip(FACTS, self.facts, strict=False))

    def ring(self) -> list[Any]:
        """The recent-event ring, decoded."""
        return list(orjson.loads(self.recent))

    def lead_state(self) -> lead_score.State | None:
        """The lead-score state as far as ``lead_score.explain`` reads it."""
        if self.explain is None:
            return None
        last, buckets = orjson.loads(self.explain)
        return lead_score.from_json(
            {"version": lead_score.JSON_VERSION, "last_activity": last, "known": False,
             "views": 0, "signals": [], "orders": [], "refunds": [], "buckets": buckets,
             "deals": []}
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Version:
    """The checkpoint a model state is of."""

    next_offset: int
    config_hash: str | None
    #: The latest event time below ``next_offset`` (the log clock there).
    as_of: datetime | None


class Owners(Protocol):
    """Identifier key → customer, as far as a lookup asks (``Found.owners``)."""

    def get(self, key: str, default: str | None = None, /) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Found:
    """What ``ReadModel.view`` read under one lock: all of one checkpoint."""

    customer_id: str
    entry: Entry
    version: Version
    owners: Owners
    segments: tuple[str, ...]


def attribute(owners: Owners | Mapping[str, str], user: str | None, anon: str | None) -> str | None:
    """The customer the ``events`` view gives an event with these trimmed ids."""
    owner = None if user is None else owners.get(USER_PREFIX + user)
    if owner is None and anon is not None:
        owner = owners.get(ANON_PREFIX + anon)
    return owner


def event_json(row: dict[str, Any]) -> list[Any]:
    """``[µs, offset, event]`` of an ``EVENT_SQL`` row (the ring's item), its time
    already in the model's zone."""
    return [
        row["us"],
        row["offset"],
        {"offset": row["offset"], "timestamp": row["timestamp"],
         "type": row["type"], "event": row["event"], "message_id": row["message_id"],
         "source": row["source"]},
    ]  # fmt: skip


def merge_rings(rings: Iterable[list[Any]], limit: int = RING) -> list[Any]:
    """The ``limit`` newest of several rings (by event time, then offset)."""
    items = [item for ring in rings for item in ring]
    items.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return items[:limit]
