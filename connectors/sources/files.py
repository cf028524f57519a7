"""Bulk import of Segment-format events from JSONL, CSV or Parquet files.

Each reader yields ``(location, raw)`` pairs for ``cdp.services.ingest.ingest``:
``location`` is ``file:line`` (JSONL, CSV) or ``file:row`` (Parquet) so every
error points at the offending record.

- JSONL (``.jsonl``, ``.ndjson``, ``.json``; ``.gz`` compressed too): one event
  object per line; blank lines are skipped. Lines go on as bytes, so the
  size limit is checked on exactly what the producer wrote.
- CSV: a header row; columns are envelope fields (``type``, ``event``,
  ``messageId``, ``userId``, ...) or dotted paths (``properties.order_id``,
  ``traits.email``, ``context.campaign.source``); a cell of ``properties``,
  ``traits``, ``context`` or ``integrations`` may hold a whole JSON object.
  Empty cells are left out. Values are strings; the contracts convert
  numbers and dates.
- Parquet: one event per row; struct columns become objects, string columns
  holding JSON objects for the four object fields are parsed. Id and name
  columns (``userId``, ``anonymousId``, ``messageId``, ``event``...) must be
  string columns: the contract refuses numbers there, so cast an integer
  customer-id column to string when exporting.

Items are yielded in file order and nothing is skipped silently but blank
JSONL lines: ``cdp.services.ingest`` gives a row without ``messageId`` an id from its
content and its occurrence in the file, so identical rows are distinct events
and importing the same file again adds nothing.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import pyarrow.parquet as pq

from cdp.errors import InputFileError

Item = tuple[str, bytes | dict[str, Any]]
OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")


def _format_of(path: Path) -> tuple[str, bool]:
    suffixes = [s.lower() for s in path.suffixes]
    compressed = bool(suffixes) and suffixes[-1] == ".gz"
    if compressed:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in JSONL_SUFFIXES:
        return "jsonl", compressed
    if last == ".csv":
        return "csv", compressed
    if last == ".parquet" and not compressed:
        return "parquet", False
    raise InputFileError(
        f"{path}: unknown file type {''.join(path.suffixes) or '(none)'}; "
        "use .jsonl/.ndjson/.json, .csv (optionally .gz) or .parquet"
    )


def _open(path: Path, compressed: bool) -> IO[bytes]:
    try:
        # The caller closes it (a with-block); GzipFile is a binary IO.
        handle: IO[bytes] = gzip.open(path, "rb") if compressed else path.open("rb")  # type: ignore[assignment]  # noqa: SIM115
        return handle
    except OSError as error:
        raise InputFileError(f"cannot open {path}: {error.strerror or error}") from None


def read_items(path: Path) -> Iterator[Item]:
    """Every event of a file as ``(location, raw)``; ``InputFileError`` if unreadable."""
    kind, compressed = _format_of(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    if kind == "jsonl":
        yield from _jsonl(path, compressed)
    elif kind == "csv":
        yield from _csv(path, compressed)
    else:
        yield from _parquet(path)


def _jsonl(path: Path, compressed: bool) -> Iterator[Item]:
    with _open(path, compressed) as handle:
        try:
            for number, line in enumerate(handle, start=1):
                stripped = line.strip()
                if stripped:
                    yield f"{path.name}:{number}", stripped
        except (OSError, EOFError) as error:
            raise InputFileError(f"{path}: read failed: {error}") from None


def _set_path(target: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = target
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def csv_row_to_event(row: dict[str, str]) -> dict[str, Any]:
    """One CSV row as a raw event dict (dotted columns nest; JSON object cells parse)."""
    event: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or cell is None or cell == "":
            continue
        name = column.strip()
        value: Any = cell
        if name in OBJECT_FIELDS and cell.lstrip().startswith("{"):
            try:
                value = orjson.loads(cell)
            except orjson.JSONDecodeError:
                value = cell  # validation names the field
        existing = event.get(name)
        if isinstance(value, dict) and isinstance(existing, dict):
            value = {**value, **existing}  # dotted columns seen earlier refine the cell
        _set_path(event, name, value)
    return event


def _csv(path: Path, compressed: bool) -> Iterator[Item]:
    with _open(path, compressed) as raw_handle:
        text = io.TextIOWrapper(raw_handle, encoding="utf-8-sig", newline="")
        try:
            reader = csv.DictReader(text)
            for row in reader:
                yield f"{path.name}:{reader.line_num}", csv_row_to_event(row)
        except (UnicodeDecodeError, csv.Error) as error:
            raise InputFileError(f"{path}: not readable as UTF-8 CSV: {error}") from None


def _drop_nulls(value: Any) -> Any:
    """A struct's null fields are fields the row does not have."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _parquet(path: Path) -> Iterator[Item]:
    try:
        parquet = pq.ParquetFile(path)
    except Exception as error:  # pyarrow raises several types for bad files
        raise InputFileError(f"{path}: not a readable Parquet file: {error}") from None
    row_number = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for row in batch.to_pylist():
            row_number += 1
            event = _drop_nulls(row)
            for name in OBJECT_FIELDS:
                value = event.get(name)
                if isinstance(value, str) and value.lstrip().startswith("{"):
                    with contextlib.suppress(orjson.JSONDecodeError):  # validation names it
                        event[name] = orjson.loads(value)
            for name in ("timestamp", "receivedAt", "sentAt", "originalTimestamp"):
                moment = event.get(name)
                if isinstance(moment, datetime) and moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)  # naive Parquet timestamps mean UTC
                if isinstance(moment, datetime | date):
                    event[name] = moment.isoformat()
            yield f"{path.name}:row {row_number}", event
