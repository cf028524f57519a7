"""Audience export to a CSV file, written atomically (temp file, then rename)."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from connectors.destinations.files import atomic_text


def write_csv(path: Path, columns: Sequence[str] | None, rows: Iterable[Sequence[Any]]) -> int:
    """Write a header (unless ``columns`` is None) and rows to ``path``; return the row count.

    UTF-8 without a byte-order mark, comma-separated, CRLF line ends (RFC 4180);
    ``None`` is written as an empty cell. A reader never sees a half-written file.
    """
    count = 0
    with atomic_text(path) as handle:
        writer = csv.writer(handle)
        if columns is not None:
            writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else v for v in row])
            count += 1
    return count
