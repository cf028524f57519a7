"""Printing the rows of a query without ever cutting them silently.

``cdp sql`` prints a table of at most ``--limit`` rows (100 by default) and
then says how many rows were not printed and how to get them all. ``--json``
streams every row as one JSON array (one object per line) unless ``--limit``
is given explicitly, and ``--out FILE.csv`` writes every row to a CSV file.
Rows are fetched from DuckDB in chunks, so neither the JSON stream nor the CSV
holds the whole result in Python memory.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from cdp.jsonable import json_default

if TYPE_CHECKING:
    import duckdb

#: Rows fetched from DuckDB at a time when streaming or counting.
CHUNK = 10_000
#: Rows a table shows when no --limit is given.
DEFAULT_TABLE_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Printed:
    """How many rows a command printed of how many the query returned."""

    shown: int
    total: int

    @property
    def cut(self) -> bool:
        return self.shown < self.total


def execute(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    """Run one query and return the cursor holding its rows; ``QueryError`` when
    the text holds no statement, fails, or returns no rows (a ``SET``...)."""
    import duckdb  # noqa: PLC0415  (the caller already loaded it with the connection)

    from cdp.errors import QueryError  # noqa: PLC0415

    if not sql.strip():
        raise QueryError('no SQL given: pass one statement, e.g. cdp sql "SELECT 1"')
    try:
        cursor = con.execute(sql)
    except duckdb.Error as error:
        raise QueryError(str(error).strip()) from None
    if cursor is None or cursor.description is None:
        # DuckDB returns no cursor for a text that is only comments or blanks.
        raise QueryError(f"the query returned no result set: {sql.strip()[:60]!r}")
    return cursor


def columns_of(cursor: duckdb.DuckDBPyConnection) -> list[str]:
    """The result's column names."""
    return [d[0] for d in cursor.description or []]


def chunks(cursor: duckdb.DuckDBPyConnection) -> Iterator[list[tuple[Any, ...]]]:
    """Every remaining row, ``CHUNK`` at a time."""
    while True:
        rows = cursor.fetchmany(CHUNK)
        if not rows:
            return
        yield rows


def head_and_count(
    cursor: duckdb.DuckDBPyConnection, limit: int | None
) -> tuple[list[tuple[Any, ...]], int]:
    """The first ``limit`` rows (all with ``None``) and how many rows there are."""
    if limit is None:
        rows = [row for chunk in chunks(cursor) for row in chunk]
        return rows, len(rows)
    head = cursor.fetchmany(limit)
    total = len(head) + sum(len(chunk) for chunk in chunks(cursor))
    return head, total


def stream_json(cursor: duckdb.DuckDBPyConnection, limit: int | None) -> Printed:
    """Write the rows to stdout as a JSON array of objects, one per line."""
    columns = columns_of(cursor)
    out = sys.stdout
    out.write("[")
    written = 0
    source = chunks(cursor) if limit is None else iter([cursor.fetchmany(limit)])
    for chunk in source:
        for row in chunk:
            line = orjson.dumps(dict(zip(columns, row, strict=True)), default=json_default)
            out.write(("\n  " if written == 0 else ",\n  ") + line.decode())
            written += 1
    out.write("\n]\n" if written else "]\n")
    return Printed(written, written)


def write_csv(cursor: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Write every row (with a header) to a CSV file; the number of rows written."""
    from cdp.errors import InputFileError  # noqa: PLC0415

    written = 0
    try:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns_of(cursor))
            for chunk in chunks(cursor):
                writer.writerows(chunk)
                written += len(chunk)
    except OSError as error:
        raise InputFileError(f"cannot write {path}: {error.strerror}") from None
    return written


def cut_note(printed: Printed, what: str, how: str) -> str | None:
    """``"100 of 1,234 rows shown; HOW"`` when rows were left out, else ``None``."""
    if not printed.cut:
        return None
    return f"{printed.shown:,} of {printed.total:,} {what} shown; {how}"
