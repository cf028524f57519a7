"""What a query sent to ``cdp serve``'s local socket may do: read the database.

The direct read path (``Engine.open_read_only``) is made safe by DuckDB
itself: ``read_only=True`` refuses writes, ``enable_external_access=false``
refuses files, URLs and extensions. The server's connection must be able to
write and may spill to disk, so a statement forwarded to it is checked first,
and only what passes runs (on a cursor of its own, see ``cdp.adapters.socket.server``):

- exactly one statement, which DuckDB parses as a ``SELECT`` (``WITH``,
  ``VALUES``, ``FROM t``, ``DESCRIBE``, ``SHOW``, ``SUMMARIZE`` included) or
  as transaction control (``BEGIN``/``COMMIT``/``ROLLBACK``, harmless on a
  cursor that cannot write; the lookups read in one transaction);
- every table it names is a table or view of the database (schema ``main``),
  a system view (``information_schema``, ``pg_catalog``) or a common table
  expression of an enclosing query whose name is a plain identifier. A
  quoted path (``FROM '/etc/passwd'``) or a name DuckDB would resolve by a
  replacement scan (files, Python variables) is refused;
- table functions only from ``ALLOWED_TABLE_FUNCTIONS`` (series, unnest,
  JSON over values, catalog metadata): no ``read_csv``, ``read_text``,
  ``glob``, ``query``, ``iceberg_scan``...;
- no scalar function that reaches outside the query (``getenv``) or changes
  state (sequences).

The parse tree is DuckDB's own (``json_serialize_sql``), so the check sees
what DuckDB will run, subqueries and CTE bodies included.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import duckdb
import orjson

ALLOWED_TABLE_FUNCTIONS = frozenset(
    {
        "range",
        "generate_series",
        "unnest",
        "json_each",
        "json_tree",
        "duckdb_columns",
        "duckdb_constraints",
        "duckdb_databases",
        "duckdb_dependencies",
        "duckdb_functions",
        "duckdb_indexes",
        "duckdb_keywords",
        "duckdb_schemas",
        "duckdb_sequences",
        "duckdb_settings",
        "duckdb_tables",
        "duckdb_types",
        "duckdb_views",
        "pragma_table_info",
    }
)
DENIED_FUNCTIONS = frozenset({"getenv", "nextval", "setval", "currval", "query", "query_table"})
_DENIED_PREFIXES = ("read_", "parquet_", "sqlite_", "iceberg_", "delta_", "glob")
SYSTEM_SCHEMAS = frozenset({"information_schema", "pg_catalog"})
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Kind(enum.Enum):
    """What an accepted statement is."""

    SELECT = "select"
    TRANSACTION = "transaction"


class Refused(duckdb.PermissionException):
    """The statement may not run through the local socket (a one-line reason)."""


def check(con: duckdb.DuckDBPyConnection, sql: str) -> Kind:
    """Accept one read statement or raise ``Refused`` saying why.

    ``con`` is the cursor the statement will run on: it parses the text and
    lists the database's tables and views."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as error:
        raise duckdb.ParserException(str(error).strip()) from None
    if len(statements) != 1:
        raise Refused(f"give exactly one SQL statement, not {len(statements)}")
    kind = statements[0].type
    if kind == duckdb.StatementType.TRANSACTION:
        return Kind.TRANSACTION
    if kind == duckdb.StatementType.MULTI:  # PIVOT statements expand to several
        raise Refused("this statement runs as several (PIVOT?); write it as one SELECT")
    if kind != duckdb.StatementType.SELECT:
        raise Refused(
            f"{kind.name} is not allowed: cdp serve owns the data directory and runs only "
            "read queries (SELECT) for other commands"
        )
    row = con.execute("SELECT json_serialize_sql($q)", {"q": sql}).fetchall()
    tree = orjson.loads(row[0][0]) if row else {"error": True}
    if tree.get("error"):
        raise Refused(f"cannot check this query: {tree.get('error_message', 'unparsable')}")
    relations, database = _catalog(con)
    for problem in _problems(tree, _Scope(relations, database, frozenset())):
        raise Refused(problem)
    return Kind.SELECT


def _catalog(con: duckdb.DuckDBPyConnection) -> tuple[frozenset[str], str]:
    """The tables and views of schema ``main`` (lower case) and the database's name."""
    rows = con.execute(
        "SELECT lower(table_name) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'main' "
        "UNION ALL SELECT lower(view_name) FROM duckdb_views() "
        "WHERE database_name = current_database() AND schema_name = 'main'"
    ).fetchall()
    database = con.execute("SELECT lower(current_database())").fetchall()
    return frozenset(r[0] for r in rows), str(database[0][0])


@dataclass(frozen=True, slots=True)
class _Scope:
    relations: frozenset[str]
    database: str
    ctes: frozenset[str]


def _problems(node: Any, scope: _Scope) -> Iterator[str]:
    """Why ``node`` may not run (nothing if it may)."""
    if isinstance(node, list):
        for item in node:
            yield from _problems(item, scope)
        return
    if not isinstance(node, dict):
        return
    entries = (node.get("cte_map") or {}).get("map") or []
    if entries:  # a CTE is visible in the query that declares it and all inside it
        names = {str(e["key"]).lower() for e in entries if isinstance(e, dict) and "key" in e}
        scope = _Scope(scope.relations, scope.database, scope.ctes | names)
    kind = node.get("type")
    # SHOW/DESCRIBE name a table like FROM does (SHOW TABLES is SHOW_SPECIAL).
    named = kind == "SHOW_REF" and node.get("show_type") != "SHOW_SPECIAL"
    if kind == "BASE_TABLE" or (named and node.get("table_name")):
        yield from _table_problem(node, scope)
    elif kind == "TABLE_FUNCTION":
        function = node.get("function") or {}
        name = str(function.get("function_name", "?")).lower()
        if name not in ALLOWED_TABLE_FUNCTIONS or function.get("schema") or function.get("catalog"):
            yield (
                f"table function {name}() is not allowed: queries sent to cdp serve read only "
                "the database (no files, no URLs)"
            )
    elif node.get("class") in ("FUNCTION", "WINDOW"):
        name = str(node.get("function_name", "")).lower()
        if name in DENIED_FUNCTIONS or name.startswith(_DENIED_PREFIXES):
            yield f"function {name}() is not allowed in queries sent to cdp serve"
    for value in node.values():
        if isinstance(value, dict | list):
            yield from _problems(value, scope)


def _table_problem(node: dict[str, Any], scope: _Scope) -> Iterator[str]:
    name = str(node.get("table_name", ""))
    schema = str(node.get("schema_name") or "").lower()
    catalog = str(node.get("catalog_name") or "").lower()
    lowered = name.lower()
    if catalog and catalog != scope.database:
        yield f"reads {catalog}.{schema}.{name}: only this data directory's database can be read"
    elif schema in SYSTEM_SCHEMAS and _IDENTIFIER.match(name):
        return
    elif schema not in ("", "main"):
        yield f"reads {schema}.{name}: only the tables and views of schema main can be read"
    elif lowered in scope.relations:
        return
    elif schema or lowered not in scope.ctes or not _IDENTIFIER.match(name):
        # Not a CTE in scope either; a plain identifier keeps replacement scans
        # (which need a file extension, or a Python variable) out of reach.
        yield (
            f"reads {name!r}, which is not a table or view of the database: queries sent to "
            "cdp serve cannot read files"
        )
