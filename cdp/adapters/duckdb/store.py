"""Where the embedded runtime keeps projection state: tables in the DuckDB file.

Tables (``prefix`` lets a replay build a fresh set beside the live one):

- ``{p}customers``: one row per customer: ``customer_id``, the profile and
  lead-score states as JSON (the exact fold state, to resume from), and the
  flat summary columns of both projections (what SQL and segments read);
- ``{p}identity_graph``: the identity graph's snapshot rows
  (identifier → customer, plus merged-away customers);
- ``{p}merges`` / ``{p}identity_rejections``: every merge and refused link,
  with the event that caused it (append-only, the "why" of identity);
- ``{p}positions``: per projection set, the next log offset to fold and the
  hash of the configuration it was built with.

Tables of an older layout are rebuilt from the log when opened for writing
(``create``), since the fold states in them mean something else.

Rows come from ``cdp.runtime.customer.customer_row`` (pure, shared with the
faust worker, which publishes the same rows without DuckDB).

``save`` writes changed rows and the read position in ONE transaction, so a
crash leaves either the old checkpoint or the new one, never a mix: restart
resumes from the saved position and re-folds the tail of the log.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from cdp.runtime.columns import CONTACT_DAYS_TYPE, LEAD_SCORE_COLUMNS, PROFILE_COLUMNS
from projections import identity

ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "DECIMAL(18,2)": pa.decimal128(18, 2),
    "VARCHAR[]": pa.list_(pa.string()),
    CONTACT_DAYS_TYPE: pa.list_(pa.struct([("day", pa.date32()), ("contacts", pa.int32())])),
    "JSON": pa.string(),
}

#: Columns of the customers table, in order: name → DuckDB type.
CUSTOMER_COLUMNS: dict[str, str] = {
    "customer_id": "VARCHAR",
    **PROFILE_COLUMNS,
    **LEAD_SCORE_COLUMNS,
    "profile_state": "JSON",
    "lead_state": "JSON",
}
_IDENTITY_TYPES = {
    "identifier": "VARCHAR",
    "customer_id": "VARCHAR",
    "seq": "BIGINT",
    "merged_into": "VARCHAR",
}


def _schema(columns: Mapping[str, str]) -> pa.Schema:
    return pa.schema([(name, ARROW_TYPES[kind]) for name, kind in columns.items()])


CUSTOMER_SCHEMA = _schema(CUSTOMER_COLUMNS)
_EMPTY_CUSTOMERS = CUSTOMER_SCHEMA.empty_table()
IDENTITY_SCHEMA = _schema(_IDENTITY_TYPES)


def ddl(prefix: str = "") -> list[str]:
    """CREATE statements for one set of projection tables."""
    columns = ",\n    ".join(f'"{name}" {kind}' for name, kind in CUSTOMER_COLUMNS.items())
    return [
        f"CREATE TABLE IF NOT EXISTS {prefix}customers (\n    {columns}\n)",
        f"""CREATE TABLE IF NOT EXISTS {prefix}identity_graph (
            identifier VARCHAR NOT NULL, customer_id VARCHAR NOT NULL,
            seq BIGINT NOT NULL, merged_into VARCHAR NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}merges (
            from_customer VARCHAR, into_customer VARCHAR, via VARCHAR, reason VARCHAR,
            message_id VARCHAR, "offset" BIGINT, "at" TIMESTAMPTZ)""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}identity_rejections (
            customer_id VARCHAR, identifier VARCHAR, reason VARCHAR,
            message_id VARCHAR, "offset" BIGINT, "at" TIMESTAMPTZ)""",
        f"""CREATE TABLE IF NOT EXISTS {prefix}positions (
            name VARCHAR NOT NULL, next_offset BIGINT NOT NULL, config_hash VARCHAR NOT NULL)""",
    ]


TABLES = ("customers", "identity_graph", "merges", "identity_rejections", "positions")
POSITION_NAME = "customers"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything needed to resume folding but the customer states (which stay in
    the table: ``cdp.adapters.duckdb.states``): graph rows, read position."""

    graph_rows: list[identity.Row]
    next_offset: int
    config_hash: str | None


def create(con: duckdb.DuckDBPyConnection, prefix: str = "") -> None:
    """Create the projection tables if missing; rebuild them if they are outdated.

    Tables written by a release with other ``customers`` columns (and so with
    another fold-state version, ``profile.JSON_VERSION``) are dropped: they are
    derived from the log, and the runtime restored from empty tables folds the
    whole log again (``Engine.open`` catches up from offset 0), which is what
    ``cdp replay`` would do.
    """
    if outdated(con, prefix):
        drop(con, prefix)
    for statement in ddl(prefix):
        con.execute(statement)


def outdated(con: duckdb.DuckDBPyConnection, prefix: str = "") -> bool:
    """A ``customers`` table exists under ``prefix`` with other columns than this release's."""
    names = [
        str(row[0])
        for row in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_catalog = "
            "current_database() AND table_schema = current_schema() AND table_name = ? "
            "ORDER BY ordinal_position",
            [f"{prefix}customers"],
        ).fetchall()
    ]
    return bool(names) and names != list(CUSTOMER_COLUMNS)


def drop(con: duckdb.DuckDBPyConnection, prefix: str) -> None:
    """Drop one set of projection tables (used for replay scratch tables)."""
    for table in TABLES:
        con.execute(f"DROP TABLE IF EXISTS {prefix}{table}")


def load(con: duckdb.DuckDBPyConnection, prefix: str = "") -> Snapshot:
    """Read a saved checkpoint's identity graph and read position back."""
    # The columns are NOT NULL VARCHAR / BIGINT, so DuckDB's tuples are the rows
    # as they are (no second copy: a million customers' graph is millions of rows),
    # in creation order, the order ``IdentityGraph.from_rows`` restores them in.
    graph_rows = cast(
        list[identity.Row],
        con.execute(
            f"SELECT identifier, customer_id, seq, merged_into FROM {prefix}identity_graph "
            "ORDER BY seq, identifier"
        ).fetchall(),
    )
    position = con.execute(
        f"SELECT next_offset, config_hash FROM {prefix}positions WHERE name = ?", [POSITION_NAME]
    ).fetchone()
    return Snapshot(
        graph_rows,
        int(position[0]) if position else 0,
        str(position[1]) if position else None,
    )


CHUNK_ROWS = 20_000
"""Customer rows per insert within a checkpoint's transaction (bounds memory)."""


MERGE_COLUMNS = {
    "from_customer": "VARCHAR",
    "into_customer": "VARCHAR",
    "via": "VARCHAR",
    "reason": "VARCHAR",
    "message_id": "VARCHAR",
    "offset": "BIGINT",
    "at": "TIMESTAMPTZ",
}
REJECTION_COLUMNS = {
    "customer_id": "VARCHAR",
    "identifier": "VARCHAR",
    "reason": "VARCHAR",
    "message_id": "VARCHAR",
    "offset": "BIGINT",
    "at": "TIMESTAMPTZ",
}


def _arrow(columns: Mapping[str, str], items: Iterable[Any]) -> pa.Table:
    """Dataclass instances as an Arrow table with the given columns."""
    return pa.Table.from_pylist(
        [{name: getattr(item, name) for name in columns} for item in items],
        schema=_schema(columns),
    )


def _replace(
    con: duckdb.DuckDBPyConnection, table: str, key: str, keys: list[str], data: pa.Table
) -> None:
    """Delete rows whose ``key`` is in ``keys`` and insert ``data`` (an upsert without
    an ART index, which would slow every bulk insert)."""
    if keys:
        con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT unnest(?))", [keys])
    if data.num_rows:
        con.register("_cdp_rows", data)
        con.execute(f"INSERT INTO {table} SELECT * FROM _cdp_rows")
        con.unregister("_cdp_rows")


def save(
    con: duckdb.DuckDBPyConnection,
    *,
    customer_rows: Iterable[dict[str, Any]],
    removed_customers: Iterable[str],
    changes: identity.Changes,
    next_offset: int,
    config_hash: str,
    prefix: str = "",
    staged: bool = False,
) -> int:
    """Write a checkpoint atomically: changed customers, graph changes, position.

    ``customer_rows`` may be a generator: rows are written ``CHUNK_ROWS`` at a
    time inside the one transaction, so a checkpoint of a million customers
    never holds every row in memory at once. With ``staged``, the rows written
    by ``stage`` are moved in as well (and the staging table dropped). Returns
    the customer rows written.
    """
    # Column by column: a replay's first checkpoint holds every identifier (millions
    # of rows), and a dict per row cost ~300 bytes each.
    graph = IDENTITY_SCHEMA.empty_table()
    if changes.rows:
        columns = [list(column) for column in zip(*changes.rows, strict=True)]
        graph = pa.table(columns, schema=IDENTITY_SCHEMA)
    written = 0
    con.execute("BEGIN TRANSACTION")
    try:
        removed = list(removed_customers)
        if removed:
            _replace(con, f"{prefix}customers", "customer_id", removed, _EMPTY_CUSTOMERS)
        if staged:
            written += _unstage(con, prefix)
        rows = iter(customer_rows)
        while chunk := list(itertools.islice(rows, CHUNK_ROWS)):
            customers = pa.Table.from_pylist(list(chunk), schema=CUSTOMER_SCHEMA)
            keys = [r["customer_id"] for r in chunk]
            _replace(con, f"{prefix}customers", "customer_id", keys, customers)
            written += len(keys)
        identifiers = [r[0] for r in changes.rows if r[0]]
        merged = [r[1] for r in changes.rows if not r[0]]
        if identifiers:
            con.execute(
                f"DELETE FROM {prefix}identity_graph WHERE identifier IN (SELECT unnest(?))",
                [identifiers],
            )
        if merged:
            con.execute(
                f"DELETE FROM {prefix}identity_graph "
                "WHERE identifier = '' AND customer_id IN (SELECT unnest(?))",
                [merged],
            )
        _replace(con, f"{prefix}identity_graph", "identifier", [], graph)
        if changes.merges:
            _replace(con, f"{prefix}merges", "", [], _arrow(MERGE_COLUMNS, changes.merges))
        if changes.rejections:
            _replace(
                con,
                f"{prefix}identity_rejections",
                "",
                [],
                _arrow(REJECTION_COLUMNS, changes.rejections),
            )
        con.execute(f"DELETE FROM {prefix}positions WHERE name = ?", [POSITION_NAME])
        con.execute(
            f"INSERT INTO {prefix}positions VALUES (?, ?, ?)",
            [POSITION_NAME, next_offset, config_hash],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return written


STAGE_ROWS = 2_000
"""Rows per staged row group (a row holds both fold states as JSON: ~5 KB)."""
STAGED = "cdp-staged-customers.parquet"
"""File (in DuckDB's temp directory) of the rows of a large catch-up (``stage``)."""


def _staged_path(con: duckdb.DuckDBPyConnection) -> Path:
    found = con.execute("SELECT current_setting('temp_directory')").fetchall()
    directory = Path(str(found[0][0]) or ".tmp")
    directory.mkdir(parents=True, exist_ok=True)
    return directory / STAGED


def stage(con: duckdb.DuckDBPyConnection, customer_rows: Iterable[dict[str, Any]]) -> int:
    """Write customer rows to a Parquet file beside the database, ``STAGE_ROWS`` per
    row group, so a catch-up of a million customers holds neither the rows nor an
    open transaction, and DuckDB's memory is left to the sort that feeds them;
    ``save(staged=True)`` moves them in atomically. Returns the rows staged."""
    staged = 0
    rows = iter(customer_rows)
    with pq.ParquetWriter(_staged_path(con), CUSTOMER_SCHEMA) as writer:
        while chunk := list(itertools.islice(rows, STAGE_ROWS)):
            writer.write_table(pa.Table.from_pylist(chunk, schema=CUSTOMER_SCHEMA))
            staged += len(chunk)
    return staged


def _unstage(con: duckdb.DuckDBPyConnection, prefix: str) -> int:
    path = str(_staged_path(con))
    con.execute(
        f"DELETE FROM {prefix}customers "
        "WHERE customer_id IN (SELECT customer_id FROM read_parquet(?))",
        [path],
    )
    found = con.execute("SELECT count(*) FROM read_parquet(?)", [path]).fetchall()
    con.execute(f"INSERT INTO {prefix}customers SELECT * FROM read_parquet(?)", [path])
    return int(found[0][0])


def drop_staged(con: duckdb.DuckDBPyConnection) -> None:
    """Remove the staged rows of an interrupted catch-up (or of one just saved)."""
    _staged_path(con).unlink(missing_ok=True)
