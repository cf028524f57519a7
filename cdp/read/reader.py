"""``ReadModelLookups``: the ``ProfileLookups`` port (``cdp.ports.lookups``) of
``cdp serve`` in embedded mode, and the ``engine_connection`` it reads through.

Lookups answer from the read model (``cdp.read.model``): a bounded cache of
customers as of the last checkpoint, filled on demand by point reads of the
writer's database and evicted by the runtime's checkpoints. Only the events
appended since the checkpoint are read from the log (one statement on this
thread's cursor, none when nothing was appended). Profiles are as of the last
checkpoint (``cdp serve`` takes one every 10 s while events arrive); recent
events, the log clock and everything computed from it as of the last commit.
Answers are built by ``cdp.read.answer`` and cached (``CACHE_SIZE``) under the
identifier, the customer's entry, the checkpoint and the log's in-memory
high-water mark. Without a read model (an unknown time zone, a failed update)
lookups read DuckDB (``cdp.read.sql.SqlLookups``, which also serves the
segments).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb

from cdp.config import Settings
from cdp.errors import LogUnavailableError, NotFoundError
from cdp.read import lookup
from cdp.read.answer import encode, profile_answer
from cdp.read.entry import RING, Found, attribute, event_json, kept, merge_rings
from cdp.read.keys import no_profile, not_found, parse
from cdp.read.model import ReadModel
from cdp.read.sql import Source, SqlLookups
from cdp.read.tables import EVENT_SQL
from cdp.runtime.clock import AS_OF_SQL

CACHE_SIZE = 5_000
"""Answers kept (a few KB each)."""


def engine_connection(appender: Any) -> Source:
    """On the writer's thread: make the lookup indexes, load the read model and
    attach it to the runtime's checkpoints; return a cursor of the database, the
    log's in-memory high-water mark and the model.

    ``LogUnavailableError`` when the writer holds no DuckDB engine (Kafka mode,
    where ``cdp.adapters.kafka.lookups`` answers instead). The model is None
    when the lookup cannot be computed in Python (an unknown session time
    zone, or ``cdp.adapters.duckdb.views`` changed shape): lookups then read DuckDB.
    """
    con = getattr(appender, "con", None)
    if not isinstance(con, duckdb.DuckDBPyConnection):
        raise LogUnavailableError("profile lookups need the embedded engine in this process")
    lookup.ensure_indexes(con)
    log = getattr(appender, "log", None)
    high_water = getattr(log, "high_water", None)
    runtime = getattr(appender, "runtime", None)
    zone = lookup.session_zone(con)
    model = None
    if runtime is not None and zone is not None and lookup.derivable(runtime.config.scoring):
        model = ReadModel.load(con.cursor(), runtime.config.scoring, zone)
        model.attach(appender, con)
    return con.cursor(), high_water if callable(high_water) else None, model


#: One statement: the customer's events at or after the checkpoint (their user
#: or anonymous ids), then (tag 1) the log's last offset and latest time there.
_TAIL_SQL = f"""SELECT 0 AS tag, * FROM ({EVENT_SQL} WHERE "offset" >= $start
                    AND (list_contains($users, trim(user_id))
                         OR list_contains($anons, trim(anonymous_id))))
                UNION ALL
                SELECT 1, max("offset"), NULL, {AS_OF_SQL}, NULL, NULL, NULL, NULL, NULL, NULL
                FROM event_log WHERE "offset" >= $start"""


class ReadModelLookups(SqlLookups):
    """Lookups for the read API: from the read model, else from DuckDB (see the module
    docstring). ``connect`` gives a ``Source`` (``cdp.http.app`` obtains it on the
    writer's thread)."""

    def __init__(
        self, settings: Settings, connect: Callable[[], duckdb.DuckDBPyConnection | Source]
    ) -> None:
        super().__init__(settings, connect)
        self._cache: OrderedDict[tuple[str, int], tuple[Any, ...]] = OrderedDict()
        self._known: tuple[object, frozenset[str]] | None = None
        self._cache_lock = threading.Lock()

    def profile(self, text: str, recent: int) -> tuple[bytes, str]:
        """(the answer as JSON, the identifier key) for ``text``; ``ValueError``/``NotFoundError``."""
        identifier = parse(text)
        if self._base is None:
            self.cursor()
        model = self.model
        if model is None or model.failed is not None:
            return encode(self.from_tables(self.cursor(), identifier, recent)), identifier
        found = model.view(identifier)
        if found is None:
            raise NotFoundError(not_found(identifier))
        if found.entry.profile is None:
            raise NotFoundError(no_profile(found.customer_id))
        high = self._high_water() if self._high_water is not None else None
        key = (identifier, recent)
        cached = self._cache.get(key)
        if (
            cached is not None
            and high is not None
            and cached[0] is found.entry
            and cached[1] is found.version
            and cached[2] == high
        ):
            return cached[3], identifier
        body = self._answer(model, found, identifier, recent, high)
        if high is not None:
            body = kept(body)  # the cache holds up to CACHE_SIZE answers: no spare buffers
            with self._cache_lock:
                self._cache[key] = (found.entry, found.version, high, body)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return body, identifier

    def _answer(
        self, model: ReadModel, found: Found, identifier: str, recent: int, high: int | None
    ) -> bytes:
        """The answer from the entry, plus the log past the checkpoint."""
        entry, version = found.entry, found.version
        events, as_of, log_offset = self._events(found, recent, high)
        return encode(
            profile_answer(
                matched=identifier,
                customer_id=found.customer_id,
                identifiers=entry.identifiers,
                stored=entry.profile or b"{}",
                facts=entry.facts_by_name(),
                lead_state=entry.lead_state(),
                rules=self.rules,
                as_of=as_of,
                zone=model.zone,
                merges=entry.merges,
                recent_events=events,
                segments=self._segments(found),
                freshness={
                    "checkpoint_offset": version.next_offset if version.config_hash else None,
                    "log_offset": log_offset,
                },
            )
        )

    def in_memory(self, recent: int) -> bool:
        """False: an answer may read DuckDB (a customer not in the cache), so it
        runs off the event loop."""
        del recent
        return False

    def close(self) -> None:
        """Close every cursor, the model's too."""
        super().close()
        if self.model is not None:
            self.model.close()

    def _events(
        self, found: Found, recent: int, high: int | None
    ) -> tuple[list[Any], datetime, int]:
        """(the ``recent`` newest events, the log clock, the last offset) at most ONE
        statement: none when nothing was appended since the checkpoint."""
        version = found.version
        start = version.next_offset
        ring = found.entry.ring() if recent else []
        if recent <= RING and high is not None and high <= start:
            assert version.as_of is not None
            return [item[2] for item in ring[:recent]], version.as_of, high - 1
        users = [i[8:] for i in found.entry.identifiers if i.startswith("user_id:")]
        anons = [i[13:] for i in found.entry.identifiers if i.startswith("anonymous_id:")]
        params: dict[str, Any] = {"start": start, "users": users, "anons": anons}
        con = self.cursor()
        if recent <= RING:
            rows = con.execute(_TAIL_SQL, params).fetchall()
        else:  # more than the ring: the customer's whole history, one probe per id
            probes = [f"{EVENT_SQL} WHERE trim(user_id) = $u{i}" for i in range(len(users))]
            probes += [f"{EVENT_SQL} WHERE trim(anonymous_id) = $a{i}" for i in range(len(anons))]
            params = {"start": start} | {f"u{i}": u for i, u in enumerate(users)}
            params |= {f"a{i}": a for i, a in enumerate(anons)}
            branches = "".join(f"SELECT 0 AS tag, * FROM ({p}) UNION ALL " for p in probes)
            clock = _TAIL_SQL[_TAIL_SQL.index("SELECT 1,") :]
            rows = con.execute(branches + clock, params).fetchall()
            ring = []
        latest, last = version.as_of, start - 1
        mine: dict[int, list[Any]] = {}
        zone = self.model.zone if self.model else UTC
        for tag, offset, us, moment, kind, name, message, source, user, anon in rows:
            if tag == 1:
                if moment is not None and (latest is None or moment > latest):
                    latest = moment.astimezone(zone)
                last = max(last, -1 if offset is None else offset)
            elif attribute(found.owners, user, anon) == found.customer_id:
                mine[offset] = event_json(
                    {"offset": offset, "us": us, "timestamp": moment, "type": kind,
                     "event": name, "message_id": message, "source": source}
                )  # fmt: skip
        if latest is None:
            raise LogUnavailableError("the log is empty")
        newest = merge_rings([ring, list(mine.values())], recent)
        return [item[2] for item in newest], latest, last

    def _segments(self, found: Found) -> list[str]:
        """The customer's segments at their last recorded runs, still in the catalog
        (its names are read once per checkpoint)."""
        if not found.segments:
            return []
        known = self._known
        if known is None or known[0] is not found.version:
            known = (found.version, frozenset(self.catalog.names()))
            self._known = known
        return [s for s in found.segments if s in known[1]]
