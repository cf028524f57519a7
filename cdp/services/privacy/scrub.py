"""The files a data directory keeps besides ``cdp.duckdb``: lines naming a person removed.

Exports (``exports/*.csv``, ad-platform upload files), the demo's input file
and any other text file the platform wrote under the data directory may name
the person: plain, normalised, or as the SHA-256 an ad platform is sent. An
erasure rewrites each such file without those lines (atomically; a CSV keeps
its header). Binary files other than the database (Parquet exports) are
rewritten row by row when pyarrow can read them. ``privacy/`` (tokens only),
DuckDB's own files and its spill directory are not touched here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from cdp.atomic import write_atomically

SKIP: Final = frozenset({"privacy", "duckdb-tmp", "sync"})
"""Directories left alone here: ``privacy/`` holds tokens only, ``duckdb-tmp/`` is
DuckDB's, and ``sync/`` (what was pushed to each audience) is emptied of the person
by the audience withdrawal, which needs it to send the removals first."""
DATABASE_SUFFIXES: Final = (".duckdb", ".duckdb.wal", ".rewrite")
MIN_NEEDLE: Final = 4
"""Shorter values (a one-letter id) would match unrelated lines."""


def needles(values: Iterable[str]) -> list[bytes]:
    """What a line naming the person contains: each value as given, lower-cased, and
    the SHA-256 hex of both (what ad platforms are sent)."""
    found: set[bytes] = set()
    for value in values:
        if len(value) < MIN_NEEDLE:
            continue
        for form in {value, value.lower(), value.strip().lower()}:
            found.add(form.encode())
            found.add(hashlib.sha256(form.encode()).hexdigest().encode())
    return sorted(found)


def _files(data_dir: Path) -> list[Path]:
    out = []
    for path in sorted(data_dir.rglob("*")):
        relative = path.relative_to(data_dir).parts
        if not path.is_file() or relative[0] in SKIP or path.name.startswith("."):
            continue
        if path.name.endswith(DATABASE_SUFFIXES) or path.name == "cdp.sock":
            continue
        out.append(path)
    return out


def _scrub_text(path: Path, marks: list[bytes]) -> int:
    data = path.read_bytes()
    if b"\0" in data[:4096]:
        return 0  # binary: not a text file
    lines = data.splitlines(keepends=True)
    kept = [line for line in lines if not any(m in line.lower() for m in marks)]
    if len(kept) == len(lines):
        return 0
    write_atomically(path, b"".join(kept))
    return len(lines) - len(kept)


def _scrub_parquet(path: Path, marks: list[bytes]) -> int:
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415

    data = pq.read_table(path)
    text_rows = [
        b"\x1f".join(str(v).lower().encode() for v in row.values()) for row in data.to_pylist()
    ]
    keep = [not any(m in row for m in marks) for row in text_rows]
    if all(keep):
        return 0
    kept = data.filter(pa.array(keep))
    fresh = path.with_name(f".{path.name}.scrub")
    pq.write_table(kept, fresh)
    write_atomically(path, fresh.read_bytes())
    fresh.unlink()
    return len(keep) - sum(keep)


def scrub(data_dir: Path, values: Iterable[str]) -> dict[str, int]:
    """Remove the lines (rows) naming any of ``values`` from every file of the data
    directory but the database; rows removed per file (relative path)."""
    marks = [m.lower() for m in needles(values)]
    if not marks:
        return {}
    removed = {}
    for path in _files(data_dir):
        count = (
            _scrub_parquet(path, marks) if path.suffix == ".parquet" else _scrub_text(path, marks)
        )
        if count:
            removed[str(path.relative_to(data_dir))] = count
    return removed
