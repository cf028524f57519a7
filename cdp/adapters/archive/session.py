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
from cdp.config import duckdb_memory_limit
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


def _typed(columns: dict[str, str], source: str, tail: str = "") -> str:
    """SELECT reading each column of the JSON record ``value`` of ``source`` as its
    table type.

    Each record is parsed once per query, not once per column: ``json_extract``
    with a list of paths parses the document once. One call per column (65 for
    a customer snapshot) held a parse of every value in a vector per call, which
    took 740 MB for 900 snapshots (6 MB of JSON). Scalars are read as text and
    cast (as ``CAST(value ->> path AS kind)`` would); lists are read as JSON and
    cast, so nested values keep their structure.
    """
    items = list(columns.items())
    scalars = [n for n, k in items if not k.endswith("[]")]
    nested = [n for n, k in items if k.endswith("[]")]

    def paths(names: list[str]) -> str:
        return "[" + ", ".join(_literal(f'$."{n}"') for n in names) + "]"

    lists = [f"json_extract_string(value, {paths(scalars)}) AS __scalars"]
    if nested:
        lists.append(f"json_extract(value, {paths(nested)}) AS __nested")
    fields = []
    for name, kind in items:
        if name in nested:
            fields.append(f"CAST(__nested[{nested.index(name) + 1}] AS {kind})")
            continue
        text = f"__scalars[{scalars.index(name) + 1}]"
        fields.append(text if kind == "VARCHAR" else f"CAST({text} AS {kind})")
    return f"SELECT {', '.join(fields)} FROM (SELECT *, {', '.join(lists)} FROM {source}) {tail}"


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
        # DuckDB's default limit is 80% of RAM, and its buffer pool keeps what it
        # read up to the limit: the platform's limit instead (cdp.config).
        con = duckdb.connect(config={"memory_limit": duckdb_memory_limit()})
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
        customers = _typed(store.CUSTOMER_COLUMNS, _latest(files[PROFILES]))
        con.execute(f"INSERT INTO customers {customers}")
    if files[ASSIGNMENTS]:
        assignments = _typed(
            {
                "identifier": "VARCHAR",
                "customer_id": "VARCHAR",
                "seq": "BIGINT",
                "merged_into": "VARCHAR",
            },
            _latest(files[ASSIGNMENTS]),
        )
        con.execute(f"INSERT INTO identity_graph {assignments}")
    if files[MERGES]:
        for table, table_columns, kind in (
            ("merges", store.MERGE_COLUMNS, "merge"),
            ("identity_rejections", store.REJECTION_COLUMNS, "rejection"),
        ):
            records = f"""(SELECT * FROM read_parquet({_files_sql(files[MERGES])})
                WHERE json_extract_string(value, '$.kind') = {_literal(kind)})"""
            rows = _typed(table_columns, records, "ORDER BY kafka_partition, kafka_offset")
            con.execute(f"INSERT INTO {table} {rows}")
    views.create(con, rules)
