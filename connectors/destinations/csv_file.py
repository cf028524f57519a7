"""Audience export to a CSV file, written atomically (temp file, then rename)."""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write a header and rows to ``path`` atomically; return the row count.

    A reader never sees a half-written file: the rows go to a temporary file
    in the same directory, which is fsynced and renamed over ``path``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in rows:
                writer.writerow(["" if v is None else v for v in row])
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return count
