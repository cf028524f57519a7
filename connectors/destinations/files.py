"""Atomic file writing shared by every file destination.

A reader (or an upload job watching a folder) never sees a half-written file:
the content goes to a temporary file in the same directory, which is fsynced
and then renamed over the target.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path``; renamed over it when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        yield Path(temp)
        with open(temp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_text(path: Path, newline: str | None = "") -> Iterator[IO[str]]:
    """A UTF-8 text handle whose content replaces ``path`` atomically on success."""
    with atomic_path(path) as temp, temp.open("w", encoding="utf-8", newline=newline) as handle:
        yield handle
        handle.flush()


def write_lines(path: Path, lines: list[str]) -> int:
    """One value per line (``\\n``), no header; return the line count."""
    with atomic_text(path) as handle:
        for line in lines:
            handle.write(f"{line}\n")
    return len(lines)
