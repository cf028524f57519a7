"""Point reads for the lookup read model (``cdp.read.model``): one customer, or one
checkpoint's tail, read from the checkpointed tables and the log.

Each read filters on a column the lookup's ART indexes cover
(``cdp.read.lookup.INDEXES``), so its cost does not grow with the customers:
``owner`` (identifier → customer), ``customer_parts`` (identifiers, merges
into the customer and current segments, one statement), ``customer_row``,
``ring`` (the newest events below the checkpoint, attributed as the
``events`` view does), ``read_version`` / ``position`` (the read position and
the log clock) and, on the writer's thread after a checkpoint, ``tail_owners``
(who the newly folded events belong to) and ``segment_stamp``. Times come back
as aware datetimes in the session's zone. ``EVENT_SQL`` is the statement over
``event_log`` whose rows become ring items (``cdp.read.entry.event_json``).
"""

from __future__ import annotations

from datetime import tzinfo
from typing import Any

import duckdb

from cdp.adapters.duckdb import store
from cdp.read.entry import ANON_PREFIX, RING, USER_PREFIX, Version, event_json, merge_rings
from cdp.runtime.clock import AS_OF_SQL

EVENT_SQL = """SELECT "offset", epoch_us(timestamp) AS us, timestamp, type, event, message_id,
                       source, trim(user_id) AS u, trim(anonymous_id) AS a FROM event_log"""
_MERGE_FIELDS = ("from_customer", "into_customer", "via", "reason", "message_id", "offset", "at")


def _dicts(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def position(con: duckdb.DuckDBPyConnection) -> tuple[int, str | None]:
    """(the checkpoint's next offset, its config hash); (0, None) before the first."""
    rows = con.execute(
        "SELECT next_offset, config_hash FROM positions WHERE name = ?", [store.POSITION_NAME]
    ).fetchall()
    return (int(rows[0][0]), str(rows[0][1])) if rows else (0, None)


def read_version(
    con: duckdb.DuckDBPyConnection, zone: tzinfo, known: Version | None = None
) -> Version:
    """The checkpoint ``con`` sees, with the log clock below it; ``known``: an earlier
    version whose clock is already counted (only the log between is read)."""
    next_offset, config_hash = position(con)
    start = 0 if known is None or known.next_offset > next_offset else known.next_offset
    (moment,) = con.execute(
        f'SELECT {AS_OF_SQL} FROM event_log WHERE "offset" >= ? AND "offset" < ?',
        [start, next_offset],
    ).fetchall()[0]
    latest = known.as_of if known is not None and start else None
    if moment is not None and (latest is None or moment > latest):
        latest = moment.astimezone(zone)
    return Version(next_offset, config_hash, latest)


def owner(con: duckdb.DuckDBPyConnection, identifier: str) -> str | None:
    """The customer the graph gives an identifier key, or None."""
    rows = con.execute(
        "SELECT customer_id FROM identity_graph WHERE identifier = ?", [identifier]
    ).fetchall()
    return str(rows[0][0]) if rows else None


def has_row(con: duckdb.DuckDBPyConnection, customer: str) -> bool:
    """True when the customer has a profile row."""
    found = con.execute("SELECT 1 FROM customers WHERE customer_id = ?", [customer]).fetchall()
    return bool(found)


def merged_into(con: duckdb.DuckDBPyConnection, customer: str) -> str | None:
    """The customer ``customer`` was merged into, if any."""
    rows = con.execute(
        "SELECT merged_into FROM identity_graph WHERE identifier = '' AND customer_id = ?",
        [customer],
    ).fetchall()
    return str(rows[0][0]) if rows and rows[0][0] else None


def merges_into(con: duckdb.DuckDBPyConnection, customer: str) -> list[dict[str, Any]]:
    """The merges whose survivor is ``customer``."""
    columns = ", ".join(f'"{c}"' for c in _MERGE_FIELDS)
    return _dicts(con.execute(f"SELECT {columns} FROM merges WHERE into_customer = ?", [customer]))


def customer_parts(
    con: duckdb.DuckDBPyConnection, customer: str, segments: bool
) -> tuple[tuple[str, ...], list[dict[str, Any]], tuple[str, ...]]:
    """(identifiers sorted, merges into the customer, current segments) in one
    statement; ``segments``: whether the ``segment_membership`` table exists."""
    fields = ", ".join(f'"{c}"' for c in _MERGE_FIELDS)
    member = (
        "(SELECT list(DISTINCT segment ORDER BY segment) FROM segment_membership "
        "WHERE customer_id = $c AND left_run IS NULL)"
        if segments
        else "NULL"
    )
    row = con.execute(
        f"""SELECT (SELECT list(identifier ORDER BY identifier) FROM identity_graph
                    WHERE customer_id = $c AND identifier <> ''),
                   (SELECT list(struct_pack({fields})) FROM merges WHERE into_customer = $c),
                   {member}""",
        {"c": customer},
    ).fetchall()
    identifiers, merges, current = row[0]
    return tuple(identifiers or ()), list(merges or ()), tuple(current or ())


def customer_row(con: duckdb.DuckDBPyConnection, customer: str) -> dict[str, Any] | None:
    """The customer's ``customers`` row without ``profile_state``, or None."""
    rows = _dicts(
        con.execute(
            "SELECT * EXCLUDE (profile_state) FROM customers WHERE customer_id = ?", [customer]
        )
    )
    return rows[0] if rows else None


def ring(
    con: duckdb.DuckDBPyConnection,
    customer: str,
    identifiers: tuple[str, ...],
    end: int,
) -> list[Any]:
    """The customer's ``RING`` newest events below offset ``end`` (ring items, newest
    first), attributed as the ``events`` view does: an event found through one of
    our anonymous ids is someone else's when the graph gives its user id to them."""
    users = [i[len(USER_PREFIX) :] for i in identifiers if i.startswith(USER_PREFIX)]
    anons = [i[len(ANON_PREFIX) :] for i in identifiers if i.startswith(ANON_PREFIX)]
    probes = [
        f'{EVENT_SQL} WHERE trim(user_id) = $u{n} AND "offset" < $end' for n in range(len(users))
    ]
    probes += [
        f'{EVENT_SQL} WHERE trim(anonymous_id) = $a{n} AND "offset" < $end'
        for n in range(len(anons))
    ]
    if not probes:
        return []
    params: dict[str, Any] = {"end": end} | {f"u{n}": u for n, u in enumerate(users)}
    params |= {f"a{n}": a for n, a in enumerate(anons)}
    rows = _dicts(con.execute(" UNION ALL ".join(probes), params))
    ours, theirs = set(users), {}
    items: dict[int, list[Any]] = {}
    for row in rows:
        user = row["u"]
        if user is not None and user not in ours:
            if user not in theirs:
                theirs[user] = owner(con, USER_PREFIX + user)
            if theirs[user] not in (None, customer):
                continue
        items[row["offset"]] = event_json(row)
    return merge_rings([list(items.values())], RING)


def tail_owners(con: duckdb.DuckDBPyConnection, start: int, end: int) -> tuple[set[str], Any]:
    """(the customers the events in ``[start, end)`` belong to now, the latest time
    among them that moves the log clock)."""
    rows = con.execute(
        f"""SELECT DISTINCT coalesce(iu.customer_id, ia.customer_id)
            FROM ({EVENT_SQL} WHERE "offset" >= $start AND "offset" < $end) l
            LEFT JOIN identity_graph iu ON iu.identifier = '{USER_PREFIX}' || l.u
            LEFT JOIN identity_graph ia ON ia.identifier = '{ANON_PREFIX}' || l.a""",
        {"start": start, "end": end},
    ).fetchall()
    (moment,) = con.execute(
        f'SELECT {AS_OF_SQL} FROM event_log WHERE "offset" >= ? AND "offset" < ?', [start, end]
    ).fetchall()[0]
    return {str(r[0]) for r in rows if r[0] is not None}, moment


def segment_stamp(con: duckdb.DuckDBPyConnection) -> object:
    """A stamp of the recorded segment runs (None: no segment was ever run)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'segment_membership'"
    ).fetchall()
    if not exists[0][0]:
        return None
    return tuple(con.execute("SELECT max(run_id), count(*) FROM segment_runs").fetchall()[0])
