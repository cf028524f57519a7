"""The event-facts table: one narrow row per named event, extracted once from the log.

Segments over events (``event`` and ``sequence`` rules, the built-ins that
read orders) filter on the event name, time and a few order/product values.
Reading those from the JSON payload costs a parse per event per query; here
they are extracted once, when the writer checkpoints, into ``event_facts``:

- ``offset``, ``event``, ``timestamp``: as in ``event_log``;
- ``user_key`` / ``anonymous_key``: the identity-graph identifiers the event's
  user id and anonymous id would have (``user_key_sql``): the inputs of the
  attribution to customers, which stays a join at query time (a merge moves
  events between customers without touching this table; a sales event named
  only by its contact carries the contact's anonymous id,
  ``schemas.sales.contact_anonymous_id``);
- one column per path of ``FACT_PATHS``: exactly
  ``json_extract_string(payload, path)``, the expression the JSON-based SQL
  uses. Scalars stay text, so that a rule compares them exactly as it would
  compare the payload's string (the rule's value decides the cast; casting a
  short string is cheap, parsing the payload is not).

The same pass keeps the log clock (``cdp.runtime.clock``: a max, so the max
of the saved value and of the tail's is the max of the whole log) beside the
position: ``CLOCK_SQL`` reads it without scanning the log's times, which every
segment and the ``profiles`` view otherwise pay for.

The table depends on the log only: its read position (``event_facts_position``)
is committed in the same transaction as its rows, so it is exact, rebuildable
(drop it: the next open for writing recreates it and ``catch_up`` refills it)
and independent of the fold state (``cdp replay`` leaves it alone). Rows of events the log holds past that
position are read from the log by ``TAIL_SQL``: the ``facts`` view
(``views.py``) is the union of both, so it is exact whether or not
``catch_up`` has run; ``catch_up`` only makes it fast.
"""

from __future__ import annotations

import hashlib
from typing import Final

import duckdb

from cdp.runtime.clock import AS_OF_SQL

TABLE: Final = "event_facts"
POSITION_TABLE: Final = "event_facts_position"

#: JSON path of the payload → (column, DuckDB type). Only paths whose
#: ``json_extract_string`` is the column's exact value belong here.
FACT_PATHS: Final[dict[str, tuple[str, str]]] = {
    "$.properties.products[*].product_id": ("product_ids", "VARCHAR[]"),
    "$.properties.products[*].category": ("product_categories", "VARCHAR[]"),
    "$.properties.order_id": ("order_id", "VARCHAR"),
    "$.properties.revenue": ("revenue", "VARCHAR"),
    "$.properties.campaign_id": ("campaign_id", "VARCHAR"),
    "$.properties.variant": ("variant", "VARCHAR"),
}

#: Offsets per insert transaction when catching up a long log (bounds memory).
CHUNK: Final = 2_000_000


def user_key_sql(alias: str) -> str:
    """The identity-graph identifier of a log row's user id (``alias``: the row)."""
    return f"'user_id:' || trim({alias}.user_id)"


def anonymous_key_sql(alias: str) -> str:
    """The identity-graph identifier of a log row's anonymous id."""
    return f"'anonymous_id:' || trim({alias}.anonymous_id)"


_COLUMNS: Final[dict[str, str]] = {
    "offset": "BIGINT NOT NULL",
    "event": "VARCHAR NOT NULL",
    "timestamp": "TIMESTAMPTZ NOT NULL",
    "user_key": "VARCHAR",
    "anonymous_key": "VARCHAR",
    **dict(FACT_PATHS.values()),
}
_DDL: Final = (
    f"CREATE TABLE {TABLE} (\n    "
    + ",\n    ".join(f'"{name}" {kind}' for name, kind in _COLUMNS.items())
    + "\n)"
)
_POSITION_DDL: Final = (
    f"CREATE TABLE {POSITION_TABLE} "
    "(next_offset BIGINT NOT NULL, layout VARCHAR NOT NULL, as_of TIMESTAMPTZ)"
)
#: Changes when the columns do: tables of another layout are rebuilt from the log.
LAYOUT: Final = hashlib.blake2b((_DDL + _POSITION_DDL).encode(), digest_size=8).hexdigest()

#: The fact rows of ``event_log`` rows (alias ``l``); callers add the offset range.
ROWS_SQL: Final = (
    'SELECT l."offset", l.event, l.timestamp, '
    f"{user_key_sql('l')} AS user_key, {anonymous_key_sql('l')} AS anonymous_key, "
    + ", ".join(
        f"json_extract_string(l.payload, '{path}') AS {column}"
        for path, (column, _) in FACT_PATHS.items()
    )
    + " FROM event_log l WHERE l.event IS NOT NULL"
)

_POSITION: Final = f"(SELECT coalesce(max(next_offset), 0) FROM {POSITION_TABLE})"

#: The fact rows of the log past the saved position (not yet in the table).
TAIL_SQL: Final = f'{ROWS_SQL} AND l."offset" >= {_POSITION}'

#: The log clock (one row, ``as_of``): the saved one and the tail's, whichever is later.
CLOCK_SQL: Final = (
    f"SELECT max(as_of) AS as_of FROM (SELECT as_of FROM {POSITION_TABLE} "
    f'UNION ALL SELECT {AS_OF_SQL} FROM event_log WHERE "offset" >= {_POSITION})'
)


def column(json_path: str) -> str | None:
    """The fact column holding ``json_extract_string(payload, json_path)``, if any."""
    known = FACT_PATHS.get(json_path)
    return known[0] if known else None


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE schema_name = current_schema() "
        "AND database_name = current_database() AND table_name IN (?, ?)",
        [TABLE, POSITION_TABLE],
    ).fetchall()
    return {str(r[0]) for r in rows}


def log_is_stored(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``event_log`` is a table (a data directory), not a view of files."""
    rows = con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE schema_name = current_schema() "
        "AND database_name = current_database() AND table_name = 'event_log'"
    ).fetchall()
    return bool(rows)


def create(con: duckdb.DuckDBPyConnection) -> None:
    """Create the tables, empty at position 0; rebuild them if their layout changed
    (or one is missing): the next ``catch_up`` refills them from the log."""
    if _tables(con) == {TABLE, POSITION_TABLE}:
        (layout,) = con.execute(f"SELECT max(layout) FROM {POSITION_TABLE}").fetchall()[0]
        if layout == LAYOUT:
            return
    con.execute("BEGIN TRANSACTION")
    try:
        # DROP then CREATE (not IF NOT EXISTS): an older layout's rows go too.
        con.execute(f"DROP TABLE IF EXISTS {TABLE}")
        con.execute(f"DROP TABLE IF EXISTS {POSITION_TABLE}")
        con.execute(_DDL)
        con.execute(_POSITION_DDL)
        con.execute(f"INSERT INTO {POSITION_TABLE} VALUES (0, ?, NULL)", [LAYOUT])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def position(con: duckdb.DuckDBPyConnection) -> int:
    """The next log offset the table has not read."""
    # fetchall, not fetchone: the result is then finished, and the writer's next
    # Arrow insert may use the connection.
    (saved,) = con.execute(f"SELECT max(next_offset) FROM {POSITION_TABLE}").fetchall()[0]
    return 0 if saved is None else int(saved)


def catch_up(con: duckdb.DuckDBPyConnection) -> int:
    """Append the facts of every event past the saved position and move the saved
    log clock; the number of log offsets read. Each chunk's rows, clock and
    position commit together.
    Cheap when nothing is new: one range query the offset zone maps answer."""
    try:
        start = position(con)
    except duckdb.ConnectionException:  # a second Engine.close(): the file is released
        return 0
    (last,) = con.execute(
        'SELECT max("offset") FROM event_log WHERE "offset" >= ?', [start]
    ).fetchall()[0]
    if last is None:
        return 0
    end = int(last) + 1
    at = start
    while at < end:
        upper = min(at + CHUNK, end)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                f'INSERT INTO {TABLE} {ROWS_SQL} AND l."offset" >= ? AND l."offset" < ? '
                'ORDER BY l."offset"',
                [at, upper],
            )
            # max() skips NULLs: the saved clock, the chunk's, or both.
            con.execute(
                f"UPDATE {POSITION_TABLE} SET next_offset = ?, as_of = (SELECT max(a) FROM "
                f"(SELECT as_of AS a FROM {POSITION_TABLE} UNION ALL SELECT {AS_OF_SQL} "
                'FROM event_log WHERE "offset" >= ? AND "offset" < ?))',
                [upper, at, upper],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        at = upper
    return end - start
