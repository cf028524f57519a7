"""DuckDB over the archive: the same SQL surface as the embedded data directory.

``ArchiveSession.open(root)`` builds an in-memory DuckDB session whose

- ``event_log`` is a view over the events Parquet files *named by the
  manifest* (never a directory glob, so a file written but not yet recorded
  is never read twice), with the hive column ``event_date`` added and the
  repeated copies of a ``messageId`` left out (as the worker skips them);
- ``customers`` holds the latest profile snapshot of each customer from the
  archived ``cdp.profiles`` records (a tombstone removes the customer);
- ``identity_graph`` holds the latest row of each key of the archived
  ``cdp.identity.assignments``; ``merges`` and ``identity_rejections`` come
  from ``cdp.identity.merges``.

Then the views of ``cdp.adapters.duckdb.views`` are created over them, so ``cdp sql``,
segments and exports run unchanged. The session is locked down before it is
handed out: file access is limited to the archive's recorded files,
configuration is locked, and ``query`` accepts only SELECT / EXPLAIN
statements (DuckDB could otherwise ``COPY`` over an allowed file).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from cdp.adapters.archive.layout import ASSIGNMENTS, EVENTS, MERGES, PROFILES, resolve
from cdp.adapters.archive.manifest import Manifest
from cdp.adapters.duckdb import store, views
from cdp.adapters.duckdb.log import EVENT_LOG_DDL
from cdp.closing import Closing
from cdp.errors import QueryError
from cdp.services.query import QueryResult, run_sql
from projections import lead_score

EVENT_COLUMNS = (
    '"offset", message_id, type, event, user_id, anonymous_id, timestamp, received_at, '
    "schema_version, source, payload"
)
READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN"}


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _files_sql(paths: list[Path]) -> str:
    return "[" + ", ".join(_literal(str(p)) for p in paths) + "]"


def _field(name: str, kind: str) -> str:
    """SQL reading one column of a JSON record value as its table type."""
    path = _literal(f'$."{name}"')
    if kind in {"VARCHAR", "JSON"}:
        text = f"json_extract_string(value, {path})"
        return text if kind == "VARCHAR" else f"CAST({text} AS JSON)"
    if kind.endswith("[]"):
        return f"CAST(json_extract(value, {path}) AS {kind})"
    return f"CAST(json_extract_string(value, {path}) AS {kind})"


def _latest(files: list[Path]) -> str:
    """The last value of each key (per partition by offset, then by publish time)."""
    return f"""(SELECT key, value FROM (
        SELECT key, value FROM (
            SELECT key, value, kafka_partition, kafka_offset, published_at
            FROM read_parquet({_files_sql(files)})
            QUALIFY row_number() OVER (
                PARTITION BY key, kafka_partition ORDER BY kafka_offset DESC) = 1)
        QUALIFY row_number() OVER (
            PARTITION BY key ORDER BY published_at DESC, kafka_partition DESC) = 1)
        WHERE value IS NOT NULL)"""


class ArchiveSession(Closing):
    """A read-only DuckDB session over an archive directory."""

    def __init__(self, root: Path, con: duckdb.DuckDBPyConnection, manifest: Manifest) -> None:
        self.root = root
        self.con = con
        self.manifest = manifest

    @classmethod
    def open(cls, root: Path, rules: lead_score.Rules = lead_score.DEFAULT_RULES) -> ArchiveSession:
        """Build the session from the manifest as it stands now (``ArchiveError`` if none)."""
        root = root.resolve()
        manifest = Manifest.read(root)
        files = {
            kind: [resolve(root, f) for f in manifest.files(kind)]
            for kind in (EVENTS, PROFILES, ASSIGNMENTS, MERGES)
        }
        con = duckdb.connect()
        try:
            _build(con, files, rules)
            every = [str(p) for paths in files.values() for p in paths]
            con.execute(f"SET allowed_paths = [{', '.join(_literal(p) for p in every)}]")
            con.execute("SET enable_external_access = false")
            con.execute("SET lock_configuration = true")
        except BaseException:
            con.close()
            raise
        return cls(root, con, manifest)

    def query(self, sql: str, limit: int | None = None) -> QueryResult:
        """Run read-only SQL (SELECT / EXPLAIN only); ``QueryError`` otherwise."""
        try:
            statements = self.con.extract_statements(sql)
        except duckdb.Error as error:
            raise QueryError(str(error).strip()) from None
        for statement in statements:
            kind = statement.type.name
            if kind not in READ_ONLY_STATEMENTS:
                raise QueryError(
                    f"only SELECT queries run over an archive, not {kind}: "
                    f"{statement.query.strip()[:60]!r}"
                )
        return run_sql(self.con, sql, limit)

    def close(self) -> None:
        """Release the DuckDB session."""
        self.con.close()


def _build(
    con: duckdb.DuckDBPyConnection, files: dict[str, list[Path]], rules: lead_score.Rules
) -> None:
    store.create(con)
    if files[EVENTS]:
        con.execute(
            f"""CREATE VIEW event_log AS SELECT {EVENT_COLUMNS}, event_date
                FROM read_parquet({_files_sql(files[EVENTS])}, hive_partitioning = true,
                                  hive_types = {{'event_date': DATE}})
                WHERE duplicate_of IS NULL"""
        )
    else:
        con.execute(EVENT_LOG_DDL)
    if files[PROFILES]:
        columns = ", ".join(_field(n, k) for n, k in store.CUSTOMER_COLUMNS.items())
        con.execute(f"INSERT INTO customers SELECT {columns} FROM {_latest(files[PROFILES])}")
    if files[ASSIGNMENTS]:
        con.execute(
            f"""INSERT INTO identity_graph
                SELECT {_field("identifier", "VARCHAR")}, {_field("customer_id", "VARCHAR")},
                       {_field("seq", "BIGINT")}, {_field("merged_into", "VARCHAR")}
                FROM {_latest(files[ASSIGNMENTS])}"""
        )
    if files[MERGES]:
        records = f"read_parquet({_files_sql(files[MERGES])})"
        for table, table_columns, kind in (
            ("merges", store.MERGE_COLUMNS, "merge"),
            ("identity_rejections", store.REJECTION_COLUMNS, "rejection"),
        ):
            fields = ", ".join(_field(n, k) for n, k in table_columns.items())
            con.execute(
                f"""INSERT INTO {table} SELECT {fields} FROM {records}
                    WHERE json_extract_string(value, '$.kind') = {_literal(kind)}
                    ORDER BY kafka_partition, kafka_offset"""
            )
    views.create(con, rules)
