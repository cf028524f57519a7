"""A customer's history read from the DuckDB tables: the merges that formed it
and its most recent events (the SQL lookup, ``cdp.read.lookup``)."""

from __future__ import annotations

from typing import Any

import duckdb

from cdp.read.merges import merge_chain


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def merges_of(con: duckdb.DuckDBPyConnection, customer_id: str) -> list[dict[str, Any]]:
    """Every merge that formed ``customer_id``, transitively, in log order."""
    return [
        dict(m)
        for m in merge_chain(
            customer_id,
            lambda into: _rows(
                con.execute(
                    """SELECT from_customer, into_customer, via, reason, message_id, "offset",
                              "at" FROM merges WHERE into_customer = ?""",
                    [into],
                )
            ),
        )
    ]


_EVENT_COLUMNS = '"offset", timestamp, type, event, message_id, source'


def recent_events(
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
