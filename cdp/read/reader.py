"""The lookups behind the read API (``cdp.http.read``): ``ProfileReader`` and the
``engine_connection`` it reads through in embedded mode.

Lookups answer from the in-memory read model (``cdp.read.model``) of the last
checkpoint, which the runtime updates after each checkpoint commits; only the
events appended since then are read from DuckDB (one statement on this
thread's cursor, none when nothing was appended). Profiles are as of the last
checkpoint (``cdp serve`` takes one every 10 s while events arrive); recent
events, the log clock and everything computed from it as of the last commit.
Answers are cached under the customer's entry, the checkpoint and the log's
in-memory high-water mark. Without a read model (Kafka mode, an unknown time
zone, a failed update) lookups read DuckDB. Segments are listed from the
catalog and evaluated now, paged by a cursor in customer-id order.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson

from cdp.config import Settings
from cdp.errors import CdpError, LogUnavailableError, NotFoundError
from cdp.read import lookup
from cdp.read.entry import RING, Found, attribute, dumps, event_json, merge_rings
from cdp.read.model import ReadModel
from cdp.read.tables import EVENT_SQL
from cdp.runtime.clock import AS_OF_SQL
from cdp.services.segment_lang import SegmentCatalog, current_segments
from cdp.services.segment_lang.history import runs
from projections import lead_score

log = logging.getLogger(__name__)
CACHE_SIZE = 20_000


#: A connection to read from, the log's ``high_water()`` (the next offset,
#: published after each commit) and the read model, when in the same process.
Source = tuple[duckdb.DuckDBPyConnection, Callable[[], int] | None, ReadModel | None]


def engine_connection(appender: Any) -> Source:
    """On the writer's thread: make the lookup indexes, load the read model and
    attach it to the runtime's checkpoints; return a cursor of the database, the
    log's in-memory high-water mark and the model.

    ``LogUnavailableError`` when the writer holds no DuckDB engine (Kafka mode,
    where the distributed profile reader answers instead). The model is None
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
        model = ReadModel.load(con, runtime.config.scoring, zone)
        model.attach(runtime, con)
    return con.cursor(), high_water if callable(high_water) else None, model


#: One statement: the customer's events at or after the checkpoint (their user
#: or anonymous ids), then (tag 1) the log's last offset and latest time there.
_TAIL_SQL = f"""SELECT 0 AS tag, * FROM ({EVENT_SQL} WHERE "offset" >= $start
                    AND (list_contains($users, trim(user_id))
                         OR list_contains($anons, trim(anonymous_id))))
                UNION ALL
                SELECT 1, max("offset"), NULL, {AS_OF_SQL}, NULL, NULL, NULL, NULL, NULL, NULL
                FROM event_log WHERE "offset" >= $start"""


class ProfileReader:
    """Lookups for the read API: from the read model, else from DuckDB.

    ``connect`` gives a ``Source`` (``cdp.http.app`` obtains it on the writer's
    thread); each request thread gets its own cursor of its connection.
    ``close`` closes every cursor.
    """

    def __init__(self, settings: Settings, connect: Callable[[], Any]) -> None:
        self.settings = settings
        self.rules = settings.runtime_config().scoring
        self.catalog = SegmentCatalog(settings.data_dir)
        self._connect = connect
        self._base: duckdb.DuckDBPyConnection | None = None
        self._high_water: Callable[[], int] | None = None
        self.model: ReadModel | None = None
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, int], tuple[Any, ...]] = OrderedDict()
        self._closed = False
        self._known: tuple[object, frozenset[str]] | None = None

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (made on first use)."""
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is not None:
            return cursor
        with self._lock:
            if self._closed:
                raise LogUnavailableError("the server is shutting down")
            if self._base is None:
                source = self._connect()
                if isinstance(source, tuple):
                    self._base, self._high_water, self.model = source
                else:
                    self._base = source
            cursor = self._base.cursor()
            self._cursors.append(cursor)
        self._local.cursor = cursor
        return cursor

    def warm(self) -> None:
        """Open the base connection and load the read model now, not on a request."""
        try:
            self.cursor()
        except CdpError:
            log.warning("profile lookups are unavailable", exc_info=True)

    def close(self) -> None:
        """Close every cursor (the database is released once the engine closes too)."""
        with self._lock:
            self._closed = True
            for cursor in self._cursors:
                cursor.close()
            if self._base is not None:
                self._base.close()
            self._cursors.clear()

    def profile(self, text: str, recent: int) -> tuple[bytes, str]:
        """(the answer as JSON, the identifier key) for ``text``; ``ValueError``/``NotFoundError``."""
        identifier = lookup.parse(text)
        if self._base is None:
            self.cursor()
        model = self.model
        if model is None or model.failed is not None:
            return dumps(self._from_duckdb(self.cursor(), identifier, recent)), identifier
        found = model.view(identifier)
        if found is None:
            if identifier.startswith(lookup.CUSTOMER_PREFIX):
                raise NotFoundError(f"no customer {identifier!r}")
            raise NotFoundError(f"no customer has identifier {identifier!r}")
        if found.entry.profile is None:
            raise NotFoundError(f"customer {found.customer_id!r} has no profile yet")
        head = b'{"matched":' + dumps(identifier)
        high = self._high_water() if self._high_water is not None else None
        key = (found.customer_id, recent)
        cached = self._cache.get(key)
        if (
            cached is not None
            and high is not None
            and cached[0] is found.entry
            and cached[1] is found.version
            and cached[2] == high
        ):
            return head + cached[3], identifier
        body = self._answer(model, found, recent, high)
        if high is not None:
            with self._lock:
                self._cache[key] = (found.entry, found.version, high, body)
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
        return head + body, identifier

    def _answer(
        self,
        model: ReadModel,
        found: Found,
        recent: int,
        high: int | None,
    ) -> bytes:
        """Everything after ``matched``: from the entry, plus the log past the checkpoint."""
        entry, version = found.entry, found.version
        events, as_of, log_offset = self._events(found, recent, high)
        derived = lookup.now_columns(entry.now_inputs(), as_of, self.rules, model.zone)
        state = entry.lead_state()
        facts = entry.lead_facts()
        lead = {
            "score_at_last_activity": facts["lead_score"],
            "score_now": derived["lead_score_now"],
            "as_of": as_of,
            "lifecycle_stage": facts["lifecycle_stage"],
            "funnel_stage": facts["funnel_stage"],
            "hot_now": derived["hot_now"],
            "explanation": lead_score.explain(state, self.rules, at=as_of) if state else [],
        }
        freshness = {
            "checkpoint_offset": version.next_offset if version.config_hash else None,
            "log_offset": log_offset,
        }
        return b"".join(
            (
                b',"customer_id":', dumps(found.customer_id),
                b',"identifiers":', dumps(entry.identifiers),
                b',"profile":', entry.profile or b"{", b",", dumps(derived)[1:],
                b',"lead":', dumps(lead),
                b',"segments":', dumps(self._segments(found)),
                b',"merges":', entry.merges,
                b',"recent_events":', dumps(events),
                b',"freshness":', dumps(freshness), b"}",
            )
        )  # fmt: skip

    def in_memory(self, recent: int) -> bool:
        """True when a lookup of ``recent`` events needs no statement right now (nothing
        appended since the checkpoint): cheap enough to answer on the event loop."""
        model, high_water = self.model, self._high_water
        return (
            model is not None
            and model.failed is None
            and high_water is not None
            and recent <= RING
            and high_water() <= model.version.next_offset
        )

    def _events(
        self, found: Found, recent: int, high: int | None
    ) -> tuple[list[Any], datetime, int]:
        """(the ``recent`` newest events, the log clock, the last offset) at most ONE
        statement: none when nothing was appended since the checkpoint."""
        version = found.version
        start = version.next_offset
        ring = orjson.loads(found.entry.recent) if recent else []
        if recent <= RING and high is not None and high <= start:
            assert version.as_of is not None
            return [item[2] for item in ring[:recent]], version.as_of, high - 1
        users = [i[8:] for i in found.entry.identifiers if i.startswith("user_id:")]
        anons = [i[13:] for i in found.entry.identifiers if i.startswith("anonymous_id:")]
        params = {"start": start, "users": users, "anons": anons}
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

    def _from_duckdb(
        self, con: duckdb.DuckDBPyConnection, identifier: str, recent: int
    ) -> dict[str, Any]:
        """The answer read from the tables (no read model in this process)."""
        with lookup.snapshot(con):
            position = con.execute(
                "SELECT next_offset FROM positions WHERE name = 'customers'"
            ).fetchall()
            customer_id = lookup.resolve_key(con, identifier)
            view = lookup.lookup_customer(con, customer_id, identifier, self.rules, recent)
            answer = view.as_dict()
            names = frozenset(self.catalog.names())
            exists = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'segment_membership'"
            ).fetchall()
            answer["segments"] = current_segments(con, customer_id, names) if exists[0][0] else []
            last = con.execute('SELECT max("offset") FROM event_log').fetchall()[0][0]
            answer["freshness"] = {
                "checkpoint_offset": int(position[0][0]) if position else None,
                "log_offset": -1 if last is None else int(last),
            }
        return answer

    def segment_list(self) -> list[dict[str, Any]]:
        """The catalog with each segment's last recorded run."""
        con = self.cursor()
        items = []
        for entry in self.catalog.entries():
            history = runs(con, entry.name)
            last = history[-1] if history else None
            items.append(
                {
                    "name": entry.name,
                    "description": entry.description,
                    "kind": entry.kind,
                    "last_count": last.members if last else None,
                    "last_run_at": last.run_at if last else None,
                }
            )
        return items

    def segment_page(self, name: str, limit: int, after: str | None) -> dict[str, Any]:
        """Members of ``name`` now, in customer-id order, after ``after``."""
        con = self.cursor()
        with lookup.snapshot(con):
            result = self.catalog.run(con, name)
        members = sorted(result.members)
        members_after = members[bisect_right(members, after) :] if after else members
        page = members_after[:limit]
        more = len(members_after) > limit
        return {
            "name": name,
            "count": result.count,
            "members": page,
            "next_cursor": page[-1] if more and page else None,
            "params": result.params,
        }
