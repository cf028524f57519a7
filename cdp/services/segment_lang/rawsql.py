"""Raw SQL segments for experts: one read-only SELECT over the platform's views.

The text is checked before it runs, whatever connection it runs on:

- exactly one statement, and DuckDB must parse it as a SELECT (``WITH`` included);
- every table it reads is one of ``ALLOWED_TABLES`` or a CTE it defines itself:
  no files (``FROM '/etc/passwd'``), no other catalogs or schemas;
- no table functions (``read_csv``, ``glob``, ``query``…) except ``unnest``,
  ``range`` and ``generate_series``, and no scalar functions that reach outside
  the query (``getenv``, ``current_setting``, sequences).

On top of that the CLI runs raw SQL on the read-only connection
(``Engine.open_read_only``: no writes, no external access) unless recording.
Parameters are DuckDB named parameters (``$days``) taken from ``params``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import duckdb
import orjson

from cdp.services.segment_lang.errors import SegmentRuleError

ALLOWED_TABLES = frozenset(
    {
        "profiles",
        "events",
        "facts",
        "identities",
        "log_clock",
        "customers",
        "merges",
        "identity_rejections",
    }
)
ALLOWED_TABLE_FUNCTIONS = frozenset({"unnest", "range", "generate_series"})
DENIED_FUNCTIONS = frozenset(
    {"getenv", "current_setting", "nextval", "setval", "currval", "query", "query_table"}
)
_DENIED_PREFIXES = ("read_", "duckdb_", "pragma_", "sqlite_", "parquet_", "glob")
_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


def _fail(message: str, segment: str | None) -> SegmentRuleError:
    return SegmentRuleError([("sql", message)], segment)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def check(sql: str, segment: str | None = None) -> None:
    """Refuse anything but one SELECT over the allowed views (``SegmentRuleError``)."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise _fail(f"not valid SQL: {str(error).strip()}", segment) from None
    if len(statements) != 1:
        raise _fail(f"give exactly one statement, not {len(statements)}", segment)
    if statements[0].type != duckdb.StatementType.SELECT:
        raise _fail(
            f"only SELECT (or WITH … SELECT) is allowed, not {statements[0].type.name}", segment
        )
    con = duckdb.connect(config={"enable_external_access": False})
    try:
        row = con.execute("SELECT json_serialize_sql($q)", {"q": sql}).fetchone()
    finally:
        con.close()
    tree = orjson.loads(row[0]) if row else {"error": True}
    if tree.get("error"):
        raise _fail(f"not valid SQL: {tree.get('error_message', 'cannot be parsed')}", segment)
    nodes = list(_walk(tree))
    defined = {
        str(entry["key"]).lower()
        for node in nodes
        for entry in (node.get("cte_map") or {}).get("map", [])
        if isinstance(entry, dict) and "key" in entry
    }
    for node in nodes:
        kind = node.get("type")
        if kind == "BASE_TABLE":
            table = str(node.get("table_name", ""))
            if node.get("schema_name") or node.get("catalog_name"):
                raise _fail(f"reads {table!r} from another schema or catalog", segment)
            if table.lower() not in ALLOWED_TABLES | defined:
                allowed = ", ".join(sorted(ALLOWED_TABLES))
                raise _fail(f"reads {table!r}; raw SQL may read only {allowed}", segment)
        elif kind == "TABLE_FUNCTION":
            function = (node.get("function") or {}).get("function_name", "?")
            if str(function).lower() not in ALLOWED_TABLE_FUNCTIONS:
                raise _fail(f"table function {function}() is not allowed", segment)
        elif node.get("class") == "FUNCTION":
            function = str(node.get("function_name", "")).lower()
            if function in DENIED_FUNCTIONS or function.startswith(_DENIED_PREFIXES):
                raise _fail(f"function {function}() is not allowed", segment)


def prepare(
    sql: str, params: Mapping[str, Any], segment: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The checked SQL and the declared parameters it uses (``$name``)."""
    check(sql, segment)
    used = dict.fromkeys(_PARAM.findall(sql))
    missing = [name for name in used if name not in params]
    if missing:
        raise _fail(f"uses undeclared parameter ${missing[0]}; declare it under params", segment)
    return sql.strip().rstrip(";"), {name: params[name] for name in used}
