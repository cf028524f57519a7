"""The archive's manifest: the one record of which file holds which offsets.

``manifest.jsonl`` is append-only, one JSON object per *roll* (a contiguous
offset range of one topic partition, and the files it was written to)::

    {"topic": "cdp.log", "kind": "events", "partition": 0, "first": 0,
     "last": 49999, "records": 50000, "files": ["events/event_date=.../part-....parquet"],
     "written_at": "2026-11-23T06:00:00+00:00"}

A roll's files are fsynced and renamed into place *before* its line is
appended and fsynced, so a line names only complete files. The manifest, not
consumer-group commits, says where to resume: ``next_offsets()`` is one past
the last recorded offset of each partition. A crash while appending leaves at
most a torn last line, which is dropped (the archiver truncates it); the
files of that roll are then unrecorded and removed, and the roll is written
again. Readers use only the files listed here, never a directory glob.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from cdp.adapters.archive.layout import MANIFEST_FILE
from cdp.errors import ArchiveError


@dataclass(frozen=True, slots=True)
class Roll:
    """One manifest line: offsets ``first..last`` of a topic partition and their files."""

    topic: str
    kind: str
    partition: int
    first: int
    last: int
    records: int
    files: tuple[str, ...]
    written_at: str

    def to_line(self) -> bytes:
        data = asdict(self)
        data["files"] = list(self.files)
        return orjson.dumps(data) + b"\n"

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Roll:
        return cls(
            topic=str(data["topic"]),
            kind=str(data["kind"]),
            partition=int(data["partition"]),
            first=int(data["first"]),
            last=int(data["last"]),
            records=int(data["records"]),
            files=tuple(str(f) for f in data["files"]),
            written_at=str(data["written_at"]),
        )


def _parse(path: Path, data: bytes) -> tuple[list[Roll], int]:
    """Rolls of the complete lines, and how many bytes they take.

    A line is written with its newline in one append, so only the text after
    the last newline can be torn by a crash; a complete line that does not
    parse means the file was damaged otherwise, which is an error.
    """
    good = data.rfind(b"\n") + 1
    rolls: list[Roll] = []
    for number, line in enumerate(data[:good].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rolls.append(Roll.from_json(orjson.loads(line)))
        except (ValueError, KeyError, TypeError) as error:
            raise ArchiveError(f"{path}: line {number} is not a manifest entry: {error}") from None
    return rolls, good


@contextmanager
def manifest_lock(root: Path) -> Iterator[None]:
    """Hold the manifest's writer lock: an ``flock`` on the archive directory itself.

    The archiver appends under it and an erasure (``cdp.adapters.archive.erase``)
    replaces the manifest under it, so no appended line is lost to a replace.
    Held only for one append or one rewrite, never for a whole run."""
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


class Manifest:
    """The rolls recorded in an archive directory (read, and appended by the archiver)."""

    def __init__(self, root: Path, rolls: list[Roll]) -> None:
        self.root = root
        self.path = root / MANIFEST_FILE
        self.rolls = rolls

    @classmethod
    def read(cls, root: Path) -> Manifest:
        """The manifest as it stands (a torn last line is ignored, not repaired)."""
        path = root / MANIFEST_FILE
        if not root.is_dir():
            raise ArchiveError(f"no archive at {root}: the directory does not exist")
        data = path.read_bytes() if path.exists() else b""
        return cls(root, _parse(path, data)[0])

    @classmethod
    def open_for_append(cls, root: Path) -> Manifest:
        """The manifest with any torn last line cut off (the archiver holds the lock)."""
        path = root / MANIFEST_FILE
        with manifest_lock(root):
            data = path.read_bytes() if path.exists() else b""
            rolls, good = _parse(path, data)
            if good < len(data):
                with path.open("r+b") as handle:
                    handle.truncate(good)
                    handle.flush()
                    os.fsync(handle.fileno())
        return cls(root, rolls)

    def append(self, roll: Roll) -> None:
        """Record a roll durably (its files must already be in place and fsynced)."""
        with manifest_lock(self.root), self.path.open("ab") as handle:
            handle.write(roll.to_line())
            handle.flush()
            os.fsync(handle.fileno())
        self.rolls.append(roll)

    def next_offsets(self) -> dict[tuple[str, int], int]:
        """``{(topic, partition): next offset to archive}`` for every partition seen."""
        positions: dict[tuple[str, int], int] = {}
        for roll in self.rolls:
            where = (roll.topic, roll.partition)
            positions[where] = max(positions.get(where, 0), roll.last + 1)
        return positions

    def files(self, kind: str | None = None) -> list[str]:
        """Relative paths of the recorded files (of one dataset kind), in record order."""
        return [f for roll in self.rolls if kind is None or roll.kind == kind for f in roll.files]

    def topics(self) -> dict[str, set[str]]:
        """``{kind: topics recorded for it}``."""
        seen: dict[str, set[str]] = {}
        for roll in self.rolls:
            seen.setdefault(roll.kind, set()).add(roll.topic)
        return seen

    def rolls_of(self, kind: str) -> Iterable[Roll]:
        """The rolls of one dataset kind."""
        return (roll for roll in self.rolls if roll.kind == kind)
