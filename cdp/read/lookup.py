"""Profile lookup: "who is this?" by any identifier → the unified profile.

Reads the checkpointed projections in DuckDB, so it works on a read-only
connection. The answer carries the profile summary, the lead score (at last
activity and decayed to the log clock) with the contributions that explain
it, every identifier of the customer, the merges that formed them and the most
recent events.

Speed. The analyst views (``cdp.adapters.duckdb.views``) scan: ``events`` joins the identity
graph for every row of the log and ``log_clock`` is ``max(timestamp)`` (of
the events that count, ``cdp.runtime.clock``) over the whole log. A lookup
answers the same questions with point reads instead:

- ART indexes (``ensure_indexes``; ``cdp serve`` creates them) on the identity
  graph (by identifier and by customer), customers, merges (by survivor) and
  the log's ``trim(user_id)`` / ``trim(anonymous_id)``, the very expressions
  the ``events`` view joins on;
- the customer's events are found through their own user and anonymous ids
  (one indexed probe each) and attributed exactly as the view does (a user
  id's owner wins over an anonymous id's);
- the profile row is the ``profiles`` view's own SQL (taken from
  ``cdp.adapters.duckdb.views``) restricted to one customer, with the log clock passed in;
- the log clock is maintained (``LogClock``): only the tail of the log past
  the last offset seen is read, which DuckDB's zone maps make cheap.

Every statement runs in one read transaction, so a lookup never mixes two
checkpoints. The answer equals what the views give (tests compare them).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import orjson

from cdp.adapters.duckdb import views
from cdp.errors import NotFoundError
from cdp.read.answer import DEFAULT_REASONS, Freshness, profile_answer
from cdp.read.history import merges_of, recent_events
from cdp.read.keys import CUSTOMER_PREFIX, no_profile, not_found, parse
from cdp.read.merges import survivor
from cdp.read.now import NOW_COLUMNS
from cdp.runtime.clock import AS_OF_SQL
from projections import lead_score

#: Index name → ``table(expression)``; created by ``ensure_indexes``.
INDEXES: dict[str, str] = {
    "lookup_identity_graph_identifier": "identity_graph(identifier)",
    "lookup_identity_graph_customer": "identity_graph(customer_id)",
    "lookup_customers_customer": "customers(customer_id)",
    "lookup_merges_into": "merges(into_customer)",
    "lookup_event_log_user": "event_log((trim(user_id)))",
    "lookup_event_log_anonymous": "event_log((trim(anonymous_id)))",
}
#: Indexes on tables that exist once a segment was run (made when they exist).
LATER_INDEXES: dict[str, tuple[str, str]] = {
    "lookup_segment_membership_customer": ("segment_membership", "segment_membership(customer_id)"),
}


@dataclass(frozen=True, slots=True)
class ProfileView:
    """The unified answer for one customer."""

    customer_id: str
    matched: str
    identifiers: list[str]
    profile: dict[str, Any]
    lead: dict[str, Any]
    merges: list[dict[str, Any]]
    recent_events: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "matched": self.matched,
            "identifiers": self.identifiers,
            "profile": self.profile,
            "lead": self.lead,
            "merges": self.merges,
            "recent_events": self.recent_events,
        }


def ensure_indexes(con: duckdb.DuckDBPyConnection) -> None:
    """Create the lookup's ART indexes if missing (needs a writable connection).

    They cost a few µs per appended event and per checkpointed row; a replay
    that swaps tables drops them, and the next ``cdp serve`` makes them again.
    """
    for name, target in INDEXES.items():
        con.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")
    tables = {str(r[0]) for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    for name, (table, target) in LATER_INDEXES.items():
        if table in tables:
            con.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


@contextmanager
def snapshot(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the enclosed reads in one transaction (unless one is open already)."""
    try:
        con.execute("BEGIN TRANSACTION")
    except duckdb.TransactionException:  # the caller's transaction holds already
        yield
        return
    try:
        yield
    finally:
        con.execute("ROLLBACK")  # read only: nothing to commit


class LogClock:
    """``log_clock.as_of`` (the latest event time that counts, ``cdp.runtime.clock``)
    without scanning the whole log.

    Remembers the next offset it has not seen and the latest time before it;
    each read folds in only the log's tail, which DuckDB's zone maps on the
    ever-growing ``offset`` column find without a scan. Shared by threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = 0
        self._as_of: datetime | None = None

    def position(self) -> tuple[int, datetime | None]:
        """``(first offset not folded in yet, latest time before it)``, read together."""
        with self._lock:
            return self._next, self._as_of

    def advance(self, last_offset: int | None, latest: datetime | None) -> datetime | None:
        """Fold in what a read of the tail found: its last offset and latest time."""
        with self._lock:
            if latest is not None and (self._as_of is None or latest > self._as_of):
                self._as_of = latest
            if last_offset is not None and last_offset + 1 > self._next:
                self._next = last_offset + 1
            return self._as_of

    def read(self, con: duckdb.DuckDBPyConnection) -> datetime | None:
        """The log clock as ``con`` sees the log (events are only ever appended)."""
        row = con.execute(
            f'SELECT max("offset"), {AS_OF_SQL} FROM event_log WHERE "offset" >= ?',
            [self.position()[0]],
        ).fetchone()
        return self.advance(*row) if row is not None else self.advance(None, None)


_PROFILE_SQL: dict[tuple[float, float], str | None] = {}


def _profile_sql(rules: lead_score.Rules) -> str | None:
    """The ``profiles`` view's SQL for one customer with the clock passed in.

    Taken from ``cdp.adapters.duckdb.views`` so the two cannot drift; None if the view's text
    no longer has the expected shape (the caller then queries the view).
    """
    cache_key = (float(rules.half_life_days), float(rules.hot_threshold))
    if cache_key in _PROFILE_SQL:
        return _PROFILE_SQL[cache_key]
    prefix = "CREATE OR REPLACE VIEW profiles AS"
    source = "FROM customers c, log_clock k"
    sql = None
    for statement in views.statements(rules):
        text = statement.strip()
        if text.startswith(prefix) and text.count(source) == 1:
            sql = text[len(prefix) :].replace(
                source,
                ", c.lead_state AS _lead_state FROM customers c, "
                "(SELECT $as_of::TIMESTAMPTZ AS as_of) k WHERE c.customer_id = $customer_id",
            )
    _PROFILE_SQL[cache_key] = sql
    return sql


#: SHA-256 of the ``profiles`` view's text (numbers of the rules blanked) that
#: ``cdp.read.now.now_columns`` reproduces. If ``cdp.adapters.duckdb.views`` changes, lookups fall back to SQL.
_DERIVED_VIEW_SHA256 = "0ea4b494c87a7c9c6095c1b0fd00fc0a0c8a5d82979c27fa19819f2e330af160"
_DERIVABLE: dict[tuple[float, float], bool] = {}


def derivable(rules: lead_score.Rules) -> bool:
    """True when ``cdp.read.now.now_columns`` computes exactly what the ``profiles`` view computes."""
    cache_key = (float(rules.half_life_days), float(rules.hot_threshold))
    if cache_key not in _DERIVABLE:
        text = next((s for s in views.statements(rules) if "VIEW profiles AS" in s), "")
        blanked = text.replace(str(cache_key[0]), "{half_life}").replace(str(cache_key[1]), "{hot}")
        digest = hashlib.sha256(blanked.encode()).hexdigest()
        _DERIVABLE[cache_key] = digest == _DERIVED_VIEW_SHA256
    return _DERIVABLE[cache_key]


def session_zone(con: duckdb.DuckDBPyConnection) -> tzinfo | None:
    """The connection's ``TimeZone`` as a ``tzinfo`` (None if Python does not know it)."""
    rows = con.execute("SELECT current_setting('TimeZone')").fetchall()
    try:
        return ZoneInfo(str(rows[0][0])) if rows else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def resolve_key(con: duckdb.DuckDBPyConnection, identifier: str) -> str:
    """The live customer of a parsed identifier key or ``cus_`` id; ``NotFoundError``.

    A ``cus_`` id of a customer merged into another resolves to the survivor.
    """
    if identifier.startswith(CUSTOMER_PREFIX):
        live = survivor(
            identifier,
            lambda c: (
                con.execute("SELECT 1 FROM customers WHERE customer_id = ?", [c]).fetchone()
                is not None
            ),
            lambda c: _merged_into(con, c),
        )
        if live is None:
            raise NotFoundError(not_found(identifier))
        return live
    row = con.execute(
        "SELECT customer_id FROM identity_graph WHERE identifier = ?", [identifier]
    ).fetchone()
    if row is None:
        raise NotFoundError(not_found(identifier))
    return str(row[0])


def _merged_into(con: duckdb.DuckDBPyConnection, customer_id: str) -> str | None:
    row = con.execute(
        "SELECT merged_into FROM identity_graph WHERE identifier = '' AND customer_id = ?",
        [customer_id],
    ).fetchone()
    return str(row[0]) if row is not None and row[0] else None


def resolve(con: duckdb.DuckDBPyConnection, text: str) -> tuple[str, str]:
    """``(customer_id, matched identifier key)`` for ``kind:value`` or a ``cus_`` id.

    ``NotFoundError`` when nobody has it, and when ``text`` is malformed (with
    the reason; ``parse`` tells the two apart).
    """
    try:
        identifier = parse(text)
    except ValueError as error:
        raise NotFoundError(str(error)) from None
    return resolve_key(con, identifier), identifier


def lookup(
    con: duckdb.DuckDBPyConnection,
    text: str,
    rules: lead_score.Rules = lead_score.DEFAULT_RULES,
    recent: int = 10,
    clock: LogClock | None = None,
    reasons: int | None = DEFAULT_REASONS,
) -> ProfileView:
    """The unified profile of whoever ``text`` identifies; ``NotFoundError`` if nobody.

    ``clock`` (shared by a server's requests) saves reading the whole log for
    its latest time; without one the tail is read from offset 0.
    ``reasons``: how many lead-score contributions ``lead.explanation`` holds,
    heaviest first (``None``: all of them, as ``cdp --json profile`` shows).
    Raises ``NotFoundError`` also for malformed identifiers, as ``cdp profile``
    always did; ``parse`` tells the two apart.
    """
    with snapshot(con):
        customer_id, matched = resolve(con, text)
        return lookup_customer(con, customer_id, matched, rules, recent, clock, reasons=reasons)


def lookup_customer(
    con: duckdb.DuckDBPyConnection,
    customer_id: str,
    matched: str,
    rules: lead_score.Rules = lead_score.DEFAULT_RULES,
    recent: int = 10,
    clock: LogClock | None = None,
    as_of: datetime | None = None,
    zone: tzinfo | None = None,
    reasons: int | None = DEFAULT_REASONS,
) -> ProfileView:
    """The unified profile of a resolved, live ``customer_id`` (see ``lookup``).

    ``as_of``: the log clock when the caller has just read it in this snapshot;
    ``zone``: the connection's time zone when the caller knows it.
    """
    answer = profile_dict(
        con, customer_id, matched, rules, recent, clock, as_of, zone, reasons=reasons
    )
    return ProfileView(
        customer_id,
        matched,
        answer["identifiers"],
        answer["profile"],
        answer["lead"],
        answer["merges"],
        answer["recent_events"],
    )


def profile_dict(
    con: duckdb.DuckDBPyConnection,
    customer_id: str,
    matched: str,
    rules: lead_score.Rules = lead_score.DEFAULT_RULES,
    recent: int = 10,
    clock: LogClock | None = None,
    as_of: datetime | None = None,
    zone: tzinfo | None = None,
    segments: list[str] | None = None,
    freshness: Freshness | None = None,
    reasons: int | None = DEFAULT_REASONS,
) -> dict[str, Any]:
    """The answer (``cdp.read.answer.profile_answer``) for a resolved, live
    ``customer_id``; ``segments`` and ``freshness`` as the caller read them."""
    if as_of is None:
        as_of = (clock or LogClock()).read(con)
    sql = _profile_sql(rules)
    if zone is None and as_of is not None and derivable(rules):
        zone = session_zone(con)
    derive = zone is not None and as_of is not None and derivable(rules)
    if derive:
        # The stored columns only; the builder computes the "now" columns: the
        # view's calendar functions cost more than all the rest of a lookup.
        profile_rows = _rows(
            con.execute(
                "SELECT * EXCLUDE (profile_state) FROM customers WHERE customer_id = ?",
                [customer_id],
            )
        )
        for found in profile_rows:
            found["_lead_state"] = found.pop("lead_state")
    elif sql is not None:
        profile_rows = _rows(con.execute(sql, {"as_of": as_of, "customer_id": customer_id}))
    else:  # the view changed shape: ask it directly (slower, same answer)
        profile_rows = _rows(
            con.execute(
                "SELECT p.*, c.lead_state AS _lead_state FROM profiles p "
                "JOIN customers c USING (customer_id) WHERE p.customer_id = ?",
                [customer_id],
            )
        )
        as_row = con.execute("SELECT as_of FROM log_clock").fetchone()
        as_of = as_row[0] if as_row else None
    if not profile_rows:
        raise NotFoundError(no_profile(customer_id))
    summary = profile_rows[0]
    state_json = summary.pop("_lead_state")
    summary.pop("customer_id", None)
    # SQL computed the "now" columns unless ``derive``: the builder takes them as given.
    now = None if derive else {name: summary.pop(name, None) for name in NOW_COLUMNS}
    identifiers = [
        str(r[0])
        for r in con.execute(
            "SELECT identifier FROM identity_graph WHERE customer_id = ? AND identifier <> '' "
            "ORDER BY identifier",
            [customer_id],
        ).fetchall()
    ]
    return profile_answer(
        matched=matched,
        customer_id=customer_id,
        identifiers=identifiers,
        stored=summary,
        facts=summary,
        lead_state=lead_score.from_json(orjson.loads(state_json)) if state_json else None,
        rules=rules,
        as_of=as_of,
        zone=zone,
        merges=merges_of(con, customer_id),
        recent_events=recent_events(con, customer_id, identifiers, recent),
        segments=segments or [],
        freshness=freshness,
        now=now,
        reasons=reasons,
    )
