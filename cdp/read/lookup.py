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
import math
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import orjson

from cdp.adapters.duckdb import views
from cdp.errors import NotFoundError
from cdp.runtime.clock import AS_OF_SQL
from projections import lead_score
from projections.outbound import CONTACT_WINDOWS
from schemas.identifiers import key, parse_key

CUSTOMER_PREFIX = "cus_"
#: Lead-score contributions a lookup explains by default (the heaviest).
DEFAULT_REASONS = 5
MAX_MERGE_DEPTH = 10_000

#: Index name → ``table(expression)``; created by ``ensure_indexes``.
INDEXES: dict[str, str] = {
    "lookup_identity_graph_identifier": "identity_graph(identifier)",
    "lookup_identity_graph_customer": "identity_graph(customer_id)",
    "lookup_customers_customer": "customers(customer_id)",
    "lookup_merges_into": "merges(into_customer)",
    "lookup_event_log_user": "event_log((trim(user_id)))",
    "lookup_event_log_anonymous": "event_log((trim(anonymous_id)))",
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
#: ``_derive`` reproduces. If ``cdp.adapters.duckdb.views`` changes, lookups fall back to SQL.
_DERIVED_VIEW_SHA256 = "0ea4b494c87a7c9c6095c1b0fd00fc0a0c8a5d82979c27fa19819f2e330af160"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DERIVABLE: dict[tuple[float, float], bool] = {}


def derivable(rules: lead_score.Rules) -> bool:
    """True when ``_derive`` computes exactly what the ``profiles`` view computes."""
    cache_key = (float(rules.half_life_days), float(rules.hot_threshold))
    if cache_key not in _DERIVABLE:
        text = next((s for s in views.statements(rules) if "VIEW profiles AS" in s), "")
        blanked = text.replace(str(cache_key[0]), "{half_life}").replace(str(cache_key[1]), "{hot}")
        digest = hashlib.sha256(blanked.encode()).hexdigest()
        _DERIVABLE[cache_key] = digest == _DERIVED_VIEW_SHA256
    return _DERIVABLE[cache_key]


def _epoch(moment: datetime) -> float:
    """DuckDB's ``epoch()``: microseconds since 1970 as a double, over 1e6."""
    return ((moment - _EPOCH) // timedelta(microseconds=1)) / 1_000_000


def _and3(*values: bool | None) -> bool | None:
    """SQL's three-valued AND."""
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _derive(
    row: dict[str, Any], as_of: datetime, rules: lead_score.Rules, zone: tzinfo
) -> dict[str, Any]:
    """The ``profiles`` view's "now" columns of one customers row, in Python.

    The same arithmetic in the same order as the SQL (``cdp.adapters.duckdb.views``): calendar
    values in the session time zone, day differences counted in boundaries
    crossed, ``epoch`` in double seconds, ``pow`` from the C library. Tests
    compare it with the view on every customer of a generated shop.
    """
    today = as_of.astimezone(zone).date()
    birthday: date | None = row.get("birthday")
    if birthday is None:
        age = None
        band = None
    else:
        age = (today.year - birthday.year) - (
            1 if today.strftime("%m%d") < birthday.strftime("%m%d") else 0
        )
        decades = 10 * math.floor(((today - birthday).days / 365.2425) / 10)
        band = f"{int(min(70.0, max(10.0, decades)))}s"
    score, score_time = row.get("lead_score"), row.get("score_time")
    if score_time is None:
        now_score: float | None = 0.0
        hot: bool | None = _and3(
            None
            if row.get("lifecycle_stage") is None
            else row["lifecycle_stage"] in ("lead", "hot_lead"),
            False,
        )
    else:
        elapsed = max(0.0, _epoch(as_of) - _epoch(score_time))
        decay = math.pow(0.5, elapsed / 86400.0 / float(rules.half_life_days))
        now_score = None if score is None else score * decay
        stage = row.get("lifecycle_stage")
        hot = _and3(
            None if stage is None else stage in ("lead", "hot_lead"),
            True,
            None if now_score is None else now_score >= float(rules.hot_threshold),
        )

    def days_since(moment: datetime | None) -> int | None:
        return None if moment is None else (today - moment.astimezone(zone).date()).days

    derived = {
        "age": age,
        "age_band": band,
        "lead_score_now": now_score,
        "hot_now": hot,
        "days_since_last_order": days_since(row.get("last_order_at")),
        "days_since_last_seen": days_since(row.get("last_seen")),
        "days_since_last_contact": days_since(row.get("last_contacted_at")),
    }
    # Contact counts are by UTC day whatever the session zone (see cdp.views).
    utc_today = as_of.astimezone(UTC).date()
    contact_days = row.get("contacts_by_day") or ()
    for window in CONTACT_WINDOWS:
        first = utc_today - timedelta(days=window)
        derived[f"contacts_{window}d"] = sum(
            d["contacts"] for d in contact_days if first < d["day"] <= utc_today
        )
    return derived


def now_columns(
    row: dict[str, Any], as_of: datetime, rules: lead_score.Rules, zone: tzinfo
) -> dict[str, Any]:
    """The ``profiles`` view's "now" columns (``age``, ``age_band``, ``lead_score_now``,
    ``hot_now``, ``days_since_last_order``, ``days_since_last_seen``,
    ``days_since_last_contact``, ``contacts_7d``/``_30d``/``_90d``) of a customers
    row, computed in Python exactly as the view does (check ``derivable`` first)."""
    return _derive(row, as_of, rules, zone)


def session_zone(con: duckdb.DuckDBPyConnection) -> tzinfo | None:
    """The connection's ``TimeZone`` as a ``tzinfo`` (None if Python does not know it)."""
    row = con.execute("SELECT current_setting('TimeZone')").fetchone()
    try:
        return ZoneInfo(str(row[0])) if row else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _survivor(con: duckdb.DuckDBPyConnection, customer_id: str) -> str | None:
    """The live customer a ``cus_`` id is now (following merges), or None."""
    current = customer_id
    for _ in range(MAX_MERGE_DEPTH):
        if con.execute("SELECT 1 FROM customers WHERE customer_id = ?", [current]).fetchone():
            return current
        row = con.execute(
            "SELECT merged_into FROM identity_graph WHERE identifier = '' AND customer_id = ?",
            [current],
        ).fetchone()
        if row is None or not row[0] or row[0] == current:
            return None
        current = str(row[0])
    return None


def parse(text: str) -> str:
    """The identifier key (``kind:normalised value``) or ``cus_`` id ``text`` names.

    ``ValueError`` naming the problem when it is malformed (unknown kind,
    missing or unusable value).
    """
    if text.startswith(CUSTOMER_PREFIX):
        if len(text) == len(CUSTOMER_PREFIX):
            raise ValueError(f"customer id {text!r} has nothing after {CUSTOMER_PREFIX!r}")
        return text
    kind, value = parse_key(text)
    return key(kind, value)


def resolve_key(con: duckdb.DuckDBPyConnection, identifier: str) -> str:
    """The live customer of a parsed identifier key or ``cus_`` id; ``NotFoundError``.

    A ``cus_`` id of a customer merged into another resolves to the survivor.
    """
    if identifier.startswith(CUSTOMER_PREFIX):
        survivor = _survivor(con, identifier)
        if survivor is None:
            raise NotFoundError(f"no customer {identifier!r}")
        return survivor
    row = con.execute(
        "SELECT customer_id FROM identity_graph WHERE identifier = ?", [identifier]
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no customer has identifier {identifier!r}")
    return str(row[0])


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


def _merges(con: duckdb.DuckDBPyConnection, customer_id: str) -> list[dict[str, Any]]:
    """Every merge that formed ``customer_id``, transitively, in log order."""
    seen = {customer_id}
    frontier = [customer_id]
    found: list[dict[str, Any]] = []
    while frontier:
        into = frontier.pop()
        rows = _rows(
            con.execute(
                """SELECT from_customer, into_customer, via, reason, message_id, "offset", "at"
                   FROM merges WHERE into_customer = ?""",
                [into],
            )
        )
        found.extend(rows)
        for row in rows:
            if row["from_customer"] not in seen:
                seen.add(row["from_customer"])
                frontier.append(row["from_customer"])
    found.sort(key=lambda m: (m["offset"], m["from_customer"] or "", m["into_customer"] or ""))
    return found


_EVENT_COLUMNS = '"offset", timestamp, type, event, message_id, source'


def _recent_events(
    con: duckdb.DuckDBPyConnection, customer_id: str, identifiers: list[str], limit: int
) -> list[dict[str, Any]]:
    """The customer's latest events, attributed exactly as the ``events`` view does.

    The view gives an event to the owner of its ``user_id`` if the graph knows
    it, else to the owner of its ``anonymous_id``. So an event of ours has one of
    our user or anonymous ids; one found by an anonymous id whose user id
    belongs to somebody else is theirs.
    """
    if limit <= 0:
        return []
    users = [i.partition(":")[2] for i in identifiers if i.startswith("user_id:")]
    anons = [i.partition(":")[2] for i in identifiers if i.startswith("anonymous_id:")]
    probes = [("user", v) for v in users] + [("anon", v) for v in anons]
    if not probes:
        return []
    branches = " UNION ALL ".join(
        f"SELECT {_EVENT_COLUMNS}, trim(user_id) AS _user FROM event_log "
        f"WHERE trim({'user_id' if kind == 'user' else 'anonymous_id'}) = ?"
        for kind, _ in probes
    )
    rows = con.execute(
        f'SELECT * FROM ({branches}) ORDER BY timestamp DESC, "offset" DESC',
        [v for _, v in probes],
    ).fetchall()
    ours = set(users)
    foreign = sorted({r[6] for r in rows if r[6] is not None and r[6] != "" and r[6] not in ours})
    owner: dict[str, str] = {}
    for user in foreign:
        found = con.execute(
            "SELECT customer_id FROM identity_graph WHERE identifier = ?", [f"user_id:{user}"]
        ).fetchone()
        if found is not None:
            owner[user] = str(found[0])
    names = ["offset", "timestamp", "type", "event", "message_id", "source"]
    events: list[dict[str, Any]] = []
    last_offset = None
    for row in rows:
        if row[0] == last_offset:  # one event found through two of our ids
            continue
        last_offset = row[0]
        if owner.get(row[6], customer_id) != customer_id:
            continue
        events.append(dict(zip(names, row[:6], strict=True)))
        if len(events) == limit:
            break
    return events


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
    if as_of is None:
        as_of = (clock or LogClock()).read(con)
    sql = _profile_sql(rules)
    if zone is None and as_of is not None and derivable(rules):
        zone = session_zone(con)
    if zone is not None and as_of is not None and derivable(rules):
        # The stored columns by index, the "now" columns computed here: the
        # view's calendar functions cost more than all the rest of a lookup.
        profile_rows = _rows(
            con.execute(
                "SELECT * EXCLUDE (profile_state) FROM customers WHERE customer_id = ?",
                [customer_id],
            )
        )
        for found in profile_rows:
            found["_lead_state"] = found.pop("lead_state")
            found.update(_derive(found, as_of, rules, zone))
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
        raise NotFoundError(f"customer {customer_id!r} has no profile yet")
    summary = profile_rows[0]
    state_json = summary.pop("_lead_state")
    lead_state = lead_score.from_json(orjson.loads(state_json)) if state_json else None
    lead = {
        "score_at_last_activity": summary.get("lead_score"),
        "score_now": summary.get("lead_score_now"),
        "as_of": as_of,
        "lifecycle_stage": summary.get("lifecycle_stage"),
        "funnel_stage": summary.get("funnel_stage"),
        "hot_now": summary.get("hot_now"),
        "explanation": (
            lead_score.explain(
                lead_state, rules, at=as_of, top=sys.maxsize if reasons is None else reasons
            )
            if lead_state
            else []
        ),
    }
    identifiers = [
        str(r[0])
        for r in con.execute(
            "SELECT identifier FROM identity_graph WHERE customer_id = ? AND identifier <> '' "
            "ORDER BY identifier",
            [customer_id],
        ).fetchall()
    ]
    merges = _merges(con, customer_id)
    events = _recent_events(con, customer_id, identifiers, recent)
    summary.pop("customer_id", None)
    return ProfileView(customer_id, matched, identifiers, summary, lead, merges, events)
