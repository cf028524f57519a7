"""Recent events and the log clock, from the log topic (``cdp.log``) in Kafka mode.

The read API of an API replica answers ``recent_events`` and the "now"
columns (which need the log clock) without DuckDB: ``RecentEvents`` reads
each log record once as the follower (``cdp.adapters.kafka.follower``)
passes it, keeps the ``RING`` newest events of every user and anonymous id
and the latest event time that counts (``schemas.time_bounds.moves_clock``,
the clock's one rule). ``of`` attributes them as the ``events`` view does:
to the owner of the event's trimmed user id if the graph knows it, else to
the owner of its anonymous id.

The limit: only ``RING`` events per identifier are kept, so an answer holds
at most ``RING`` recent events whatever ``?events=N`` asks (docs/api.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from cdp.adapters.kafka.codec import source_of
from cdp.read.entry import ANON_PREFIX, RING, USER_PREFIX, attribute, merge_rings
from schemas.time_bounds import moves_clock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _id(value: Any) -> str | None:
    """A user or anonymous id as the ``events`` view joins on it (trimmed text)."""
    return value.strip() if isinstance(value, str) else None


class RecentEvents:
    """Per identifier key, the ``RING`` newest events; the log clock and position.

    Not thread-safe by itself: the follower calls it under its lock.
    """

    def __init__(self) -> None:
        #: identifier key → ring items ``[µs, offset, event, user, anon]``, newest first.
        self._rings: dict[str, list[list[Any]]] = {}
        self.as_of: datetime | None = None
        self.last_offset = -1

    def add(self, message: Any) -> None:
        """Fold one log-topic record (a kafka-python ``ConsumerRecord``) in."""
        self.last_offset = max(self.last_offset, int(message.offset))
        if message.value is None:
            return
        body = orjson.loads(message.value)
        moment = _time(body.get("timestamp"))
        if moment is None:
            return
        received = _time(body.get("receivedAt"))
        counts = received is None or moves_clock(moment, received)
        if counts and (self.as_of is None or moment > self.as_of):
            self.as_of = moment
        user, anon = _id(body.get("userId")), _id(body.get("anonymousId"))
        event = {
            "offset": int(message.offset),
            "timestamp": moment,
            "type": body.get("type"),
            "event": body.get("event"),
            "message_id": body.get("messageId"),
            "source": source_of(message.headers),
        }
        item = [(moment - _EPOCH) // timedelta(microseconds=1), int(message.offset), event]
        item += [user, anon]
        for prefix, value in ((USER_PREFIX, user), (ANON_PREFIX, anon)):
            if value is not None:
                ring = self._rings.setdefault(prefix + value, [])
                ring.append(item)
                if len(ring) > 2 * RING:  # trim now and then, not on every event
                    ring[:] = merge_rings([ring])

    def of(
        self, customer: str, identifiers: list[str], owners: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        """The ``RING`` newest events of ``customer`` (holding ``identifiers``)."""
        rings = [self._rings.get(i, []) for i in identifiers]
        seen: set[int] = set()
        mine = []
        for item in merge_rings(rings, limit=len(identifiers) * 2 * RING):
            if item[1] in seen:  # one event found through two of our ids
                continue
            seen.add(item[1])
            if attribute(owners, item[3], item[4]) == customer:
                mine.append(item)
        return [item[2] for item in mine[:RING]]
