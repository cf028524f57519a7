"""Audience export to a Parquet file with an explicit schema (pyarrow)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.destinations.files import atomic_path

#: Arrow types of the audience columns that are not text.
COLUMN_TYPES: Final[dict[str, pa.DataType]] = {
    "lead_score_now": pa.float64(),
    "birthday": pa.date32(),
}


def schema_for(columns: Sequence[str]) -> pa.Schema:
    """The Parquet schema of an audience: text unless listed in ``COLUMN_TYPES``."""
    return pa.schema([pa.field(c, COLUMN_TYPES.get(c, pa.string())) for c in columns])


def write_parquet(path: Path, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    """Write the rows under ``schema_for(columns)`` (zstd), atomically; return the row count."""
    schema = schema_for(columns)
    arrays = []
    for i, field in enumerate(schema):
        values = [row[i] for row in rows]
        if field.type == pa.float64():
            values = [None if v is None else float(v) for v in values]
        elif field.type == pa.string():
            values = [None if v is None else str(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    table = pa.Table.from_arrays(arrays, schema=schema)
    with atomic_path(path) as temp:
        pq.write_table(table, temp, compression="zstd")
    return int(table.num_rows)
