"""The read API of ``cdp serve``: profile lookup and segments, behind read tokens.

- ``GET /v1/profiles/{type}:{value}`` (scope ``profiles:read``): the unified
  profile of whoever has that identifier (``email``, ``phone``, ``user_id``,
  ``anonymous_id``, ``line``, ``x``, ``instagram``) or ``cus_`` id: profile,
  lead score, stage with its explanation, current segments, identifiers,
  merges and the ``?events=N`` most recent events;
- ``GET /v1/segments`` and ``GET /v1/segments/{name}`` (scope
  ``segments:read``): the catalog, and one segment's count and members,
  paged by a cursor in customer-id order.

Lookups answer from the in-memory read model (``cdp.read_model``) of the last
checkpoint, which the runtime updates after each checkpoint commits; only the
events appended since then are read from DuckDB (one statement on this
thread's cursor, none when nothing was appended). Such in-memory lookups run
on the event loop; the rest, and segment scans, on a few threads. Profiles
are as of the last checkpoint (``cdp serve`` takes one every 10 s while
events arrive); recent events, the log clock and everything computed from it
as of the last commit. Answers are cached under the customer's entry, the
checkpoint and the log's in-memory high-water mark. Without a read model
(Kafka mode, an unknown time zone, a failed update) lookups read DuckDB.

Every request writes one audit line to the ``cdp.audit`` logger: the token's
name, the route, the status and, instead of the identifier, its kind and a
SHA-256 prefix of its normalised value (never the PII itself).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import sys
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import duckdb
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from cdp import lookup
from cdp.config import Settings
from cdp.errors import AuthError, CdpError, ForbiddenError, LogUnavailableError, NotFoundError
from cdp.jsonable import json_default
from cdp.read_model import (
    _EVENT_SQL,
    RING,
    Found,
    ReadModel,
    attribute,
    dumps,
    event_json,
    merge_rings,
)
from cdp.segment_lang import SegmentCatalog, current_segments
from cdp.segment_lang.history import runs
from cdp.tokens import PROFILES_READ, SEGMENTS_READ, TokenRegistry
from projections import lead_score

audit = logging.getLogger("cdp.audit")
log = logging.getLogger(__name__)
MAX_EVENTS = 1000
MAX_PAGE = 10_000
CACHE_SIZE = 20_000
READ_THREADS = 4


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` as JSON (already serialised when it is ``bytes``)."""
    body = data if isinstance(data, bytes) else orjson.dumps(data, default=json_default)
    return Response(body, status_code=status, media_type="application/json")


def error_response(status: int, message: str) -> Response:
    return json_response({"success": False, "error": message, "status": status}, status)


def fingerprint(identifier: str) -> str:
    """What the audit log says instead of an identifier: its kind and a hash prefix."""
    kind, sep, value = identifier.partition(":")
    digest = hashlib.sha256(identifier.encode()).hexdigest()[:16]
    return f"{kind}:sha256={digest}" if sep and value else f"sha256={digest}"


# ---------------------------------------------------------------- responses
class ErrorBody(BaseModel):
    """Every 4xx/5xx of the read API."""

    success: bool = False
    error: str = Field(description="What is wrong, in words.")
    status: int


class Lead(BaseModel):
    score_at_last_activity: float | None
    score_now: float | None = Field(description="Decayed to the log clock.")
    as_of: datetime | None = Field(description="The log clock: the latest event time.")
    lifecycle_stage: str | None
    funnel_stage: str | None
    hot_now: bool | None
    explanation: list[dict[str, Any]] = Field(
        description="The contributions that weigh most: rule, day, events, points, "
        "decayed_points, message_ids."
    )


class Merge(BaseModel):
    from_customer: str
    into_customer: str
    via: str | None
    reason: str | None
    message_id: str | None
    offset: int | None
    at: datetime | None


class RecentEvent(BaseModel):
    offset: int
    timestamp: datetime
    type: str
    event: str | None
    message_id: str
    source: str | None


class ProfileBody(BaseModel):
    """``GET /v1/profiles/...``: decimals are strings, times ISO 8601."""

    customer_id: str = Field(description="The live customer (a merged-away id resolves here).")
    matched: str = Field(description="The normalised identifier that was looked up.")
    identifiers: list[str]
    profile: dict[str, Any] = Field(description="The `profiles` view's columns.")
    lead: Lead
    segments: list[str] = Field(description="Segments at their last recorded run.")
    merges: list[Merge]
    recent_events: list[RecentEvent]
    freshness: dict[str, Any] = Field(
        description="checkpoint_offset: events folded into the profile; log_offset: "
        "the last event in the log."
    )


class SegmentSummary(BaseModel):
    name: str
    description: str
    kind: str
    last_count: int | None = Field(description="Members at the last recorded run.")
    last_run_at: datetime | None


class SegmentList(BaseModel):
    segments: list[SegmentSummary]


class SegmentPage(BaseModel):
    """One page of a segment's members, in customer-id order."""

    name: str
    count: int = Field(description="Members now (all pages).")
    members: list[str]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
    params: dict[str, Any]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Malformed identifier or parameter."),
        (401, "No read token, an unknown or a revoked one."),
        (403, "The token lacks the scope."),
        (404, "Nobody has this identifier / no such segment."),
        (503, "Lookups are not available in this mode."),
    )
}


# ------------------------------------------------------------------- reader
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
    zone, or ``cdp.views`` changed shape): lookups then read DuckDB.
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
_TAIL_SQL = f"""SELECT 0 AS tag, * FROM ({_EVENT_SQL} WHERE "offset" >= $start
                    AND (list_contains($users, trim(user_id))
                         OR list_contains($anons, trim(anonymous_id))))
                UNION ALL
                SELECT 1, max("offset"), NULL, max(timestamp), NULL, NULL, NULL, NULL, NULL, NULL
                FROM event_log WHERE "offset" >= $start"""


class ProfileReader:
    """Lookups for the read API: from the read model, else from DuckDB.

    ``connect`` gives a ``Source`` (``cdp.api`` obtains it on the writer's
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
        lead = {
            "score_at_last_activity": entry.facts[6],
            "score_now": derived["lead_score_now"],
            "as_of": as_of,
            "lifecycle_stage": entry.facts[7],
            "funnel_stage": entry.facts[8],
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
            probes = [f"{_EVENT_SQL} WHERE trim(user_id) = $u{i}" for i in range(len(users))]
            probes += [f"{_EVENT_SQL} WHERE trim(anonymous_id) = $a{i}" for i in range(len(anons))]
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


# ------------------------------------------------------------------- routes
def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("the read API takes `Authorization: Bearer <read token>`")
    return token.strip() or None


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter in ``[low, high]``; ``ValueError`` naming it."""
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"query parameter {name!r} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"query parameter {name!r} must be between {low} and {high}, not {value}")
    return value


def _query_doc(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


def read_router(reader: ProfileReader, tokens: TokenRegistry) -> APIRouter:
    """The routes of the read API over ``reader``, authenticated by ``tokens``."""
    router = APIRouter(tags=["read"], responses=ERRORS)
    # A few threads do the reads: DuckDB releases the GIL while it works, and
    # more threads than cores only queue on the GIL and stretch the tail.
    # Segments (which may scan for seconds) have their own, so lookups never wait
    # behind them.
    lookups = anyio.CapacityLimiter(READ_THREADS)
    scans = anyio.CapacityLimiter(2)

    async def in_thread(
        fn: Callable[[], Response], limiter: anyio.CapacityLimiter | None = None
    ) -> Response:
        return await anyio.to_thread.run_sync(fn, limiter=limiter or lookups)

    def answer(
        request: Request,
        route: str,
        scope: str,
        target: str,
        work: Callable[[], tuple[Any, str]],
    ) -> Response:
        who = "-"
        status = 500
        try:
            token = tokens.identify(_bearer(request))
            who = token.name
            tokens.require(token, scope)
            data, target = work()
            status = 200
            return json_response(data)
        except AuthError as error:
            status = 401
            return error_response(401, str(error))
        except ForbiddenError as error:
            status = 403
            return error_response(403, str(error))
        except ValueError as error:
            status = 400
            return error_response(400, str(error))
        except NotFoundError as error:
            status = 404
            return error_response(404, str(error))
        except LogUnavailableError as error:
            status = 503
            return error_response(503, str(error))
        except CdpError as error:
            status = 400
            return error_response(400, str(error))
        finally:
            audit.info(
                "token=%s scope=%s route=%s target=%s status=%d",
                who,
                scope,
                route,
                target,
                status,
            )

    # Query parameters are parsed by hand (documented through openapi_extra) so
    # that a malformed one is a 400 in this API's error shape, not FastAPI's 422.
    @router.get(
        "/v1/profiles/{identifier:path}",
        response_model=None,
        responses={200: {"model": ProfileBody, "description": "The unified profile."}},
        openapi_extra={
            "parameters": [
                _query_doc(
                    "events",
                    "Recent events to return (default 10).",
                    {"type": "integer", "minimum": 0, "maximum": MAX_EVENTS},
                )
            ]
        },
    )
    async def get_profile(request: Request, identifier: str) -> Response:
        """Who is this? `type:value` (email, phone, user_id, anonymous_id, line, x,
        instagram) or a `cus_` id, URL-encoded. Scope `profiles:read`."""
        target = fingerprint(identifier)

        def work() -> tuple[Any, str]:
            events = int_param(request, "events", 10, 0, MAX_EVENTS)
            data, key = reader.profile(identifier, events)
            return data, fingerprint(key)

        call = functools.partial(answer, request, "profile", PROFILES_READ, target, work)
        if reader.in_memory(10):  # ~0.1 ms of Python: a thread hop would cost more
            events = request.query_params.get("events")
            if events is None or (events.isdigit() and int(events) <= RING):
                return call()
        return await in_thread(call)

    @router.get(
        "/v1/segments",
        response_model=None,
        responses={200: {"model": SegmentList, "description": "Every segment."}},
    )
    async def list_segments(request: Request) -> Response:
        """Built-in and saved segments with their last recorded count. Scope `segments:read`."""
        return await in_thread(
            lambda: answer(
                request,
                "segments",
                SEGMENTS_READ,
                "-",
                lambda: ({"segments": reader.segment_list()}, "-"),
            ),
            scans,
        )

    @router.get(
        "/v1/segments/{name}",
        response_model=None,
        responses={200: {"model": SegmentPage, "description": "One page of members."}},
        openapi_extra={
            "parameters": [
                _query_doc(
                    "limit",
                    "Members per page (default 1000).",
                    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                ),
                _query_doc("cursor", "`next_cursor` of the previous page.", {"type": "string"}),
            ]
        },
    )
    async def get_segment(request: Request, name: str) -> Response:
        """A segment evaluated now: count and members in customer-id order, paged by
        cursor (the union of the pages is the member list). Scope `segments:read`."""
        return await in_thread(
            lambda: answer(
                request,
                "segment",
                SEGMENTS_READ,
                f"segment:{name}",
                lambda: (
                    reader.segment_page(
                        name,
                        int_param(request, "limit", 1000, 1, MAX_PAGE),
                        request.query_params.get("cursor"),
                    ),
                    f"segment:{name}",
                ),
            ),
            scans,
        )

    if not audit.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s audit %(message)s"))
        audit.addHandler(handler)
        audit.setLevel(logging.INFO)
    return router
