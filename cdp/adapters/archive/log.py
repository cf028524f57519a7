"""A read-only ``EventLog`` over the archive's events files (distributed replay).

``read`` yields the archived events in offset order, exactly as the log topic
held them but without the repeated copies of a ``messageId`` (the worker
skips those too), so ``EmbeddedRuntime.catch_up(ArchiveEventLog(root))`` folds the
full history without a broker. Only files named by the manifest are read, and
only those of the rolls overlapping the requested range.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import duckdb

from cdp.adapters.archive.layout import EVENTS, resolve
from cdp.adapters.archive.manifest import Manifest
from cdp.adapters.duckdb.log import decode_rows
from cdp.errors import ArchiveError
from cdp.ports.log import AppendResult, Record, StoredEvent


class ArchiveEventLog:
    """``EventLog`` adapter (read side only) over an archive directory."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.rolls = sorted(Manifest.read(self.root).rolls_of(EVENTS), key=lambda r: r.first)
        self._con = duckdb.connect()

    def append(self, records: Sequence[Record]) -> AppendResult:
        """Refused: the archive is written only by the archiver, from the log topic."""
        raise ArchiveError(f"the archive {self.root} is read-only; append to the log topic")

    def high_water(self) -> int:
        """One past the highest archived offset (0 when nothing is archived)."""
        return max((r.last + 1 for r in self.rolls), default=0)

    def read(
        self, start: int = 0, stop: int | None = None, batch_size: int = 10_000
    ) -> Iterator[list[StoredEvent]]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        end = self.high_water() if stop is None else min(stop, self.high_water())
        position = start
        while position < end:
            upper = min(position + batch_size, end)
            files = [
                str(resolve(self.root, f))
                for r in self.rolls
                if r.first < upper and r.last >= position
                for f in r.files
            ]
            if files:
                rows = self._con.execute(
                    'SELECT "offset", encode(payload) FROM read_parquet(?) '
                    'WHERE "offset" >= ? AND "offset" < ? AND duplicate_of IS NULL ORDER BY "offset"',
                    [files, position, upper],
                ).fetchall()
                batch = decode_rows(rows, f"archived event in {self.root}")
                if batch:
                    yield batch
            position = upper

    def close(self) -> None:
        """Release the DuckDB connection used for reading."""
        self._con.close()
