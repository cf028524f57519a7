"""Durable, atomic replacement of small files (configuration, journals, saved segments),
and durable appends to logs of lines (the audit log, the APPI provision records).

A reader sees the old content or the new, never a mix: the bytes go to a
temporary file in the same directory, which is fsynced, given its mode and
renamed over the target; then the directory is fsynced so the rename itself
survives a power cut. An append is one ``O_APPEND`` write, fsynced; a file it
creates has its directory fsynced too.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically and durably (``mode``: e.g. 0o600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def fsync_directory(directory: Path) -> None:
    """Make the names in ``directory`` (a rename, a new file) survive a power cut."""
    handle = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def append_durably(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Append ``data`` to ``path`` in one write and fsync it (creating the file with
    ``mode``, and then fsyncing its directory). Callers serialise writers."""
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_directory(path.parent)
