"""Copy an archive's events into a local data directory (``cdp replay --archive``).

The events are appended to the data directory's embedded ``event_log`` with
their archived offsets, so the copy is an ordinary embedded data directory:
``cdp sql``, ``cdp profile``, segments, ``cdp replay --verify`` and
``--as-of`` all work on it, offline. Copying again appends only the offsets
past what the copy already holds. A data directory that holds a log of its
own (not copied from this archive) is refused rather than mixed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from cdp.adapters.archive.layout import EVENTS, resolve
from cdp.adapters.archive.manifest import Manifest
from cdp.adapters.duckdb.log import DuckDBEventLog, insert_rows, message_hash
from cdp.config import duckdb_memory_limit
from cdp.errors import ArchiveError
from cdp.runtime.engine import Engine

COPIES_DDL = "CREATE TABLE IF NOT EXISTS archive_copies (archive VARCHAR NOT NULL)"
LOG_COLUMNS = (
    "offset",
    "message_id",
    "message_hash",
    "type",
    "event",
    "user_id",
    "anonymous_id",
    "timestamp",
    "received_at",
    "schema_version",
    "source",
    "payload",
)


def _check_origin(engine: Engine, root: Path) -> None:
    con = engine.con
    con.execute(COPIES_DDL)
    origins = {str(r[0]) for r in con.execute("SELECT archive FROM archive_copies").fetchall()}
    if engine.log.high_water() and origins != {str(root)}:
        raise ArchiveError(
            f"data directory {engine.settings.data_dir} already holds an event log "
            + (f"copied from {sorted(origins)}" if origins else "of its own")
            + f"; copy {root} into an empty --data-dir"
        )
    if not origins:
        con.execute("INSERT INTO archive_copies VALUES (?)", [str(root)])


def copy_events(
    engine: Engine,
    root: Path,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 50_000,
) -> int:
    """Append the archived events past the copy's high water; return how many.

    The engine's projections are caught up afterwards (folded in memory and
    checkpointed), exactly as when it opens a log that grew.
    """
    root = root.resolve()
    _check_origin(engine, root)
    start = engine.log.high_water()
    files = [
        str(resolve(root, f))
        for roll in Manifest.read(root).rolls_of(EVENTS)
        if roll.last >= start
        for f in roll.files
    ]
    copied = 0
    if files:
        reader_con = duckdb.connect(config={"memory_limit": duckdb_memory_limit()})
        try:
            reader: pa.RecordBatchReader = reader_con.sql(
                "SELECT * EXCLUDE (event_date, duplicate_of) "
                "FROM read_parquet($files, hive_partitioning = true) "
                'WHERE "offset" >= $start AND duplicate_of IS NULL ORDER BY "offset"',
                params={"files": files, "start": start},
            ).to_arrow_reader(batch_size)
            for batch in reader:
                copied += _append(engine.con, batch)
                if progress is not None:
                    progress(batch.num_rows)
        finally:
            reader_con.close()
    if copied:
        engine.log = DuckDBEventLog(engine.con)  # reload its dedup index and high water
        engine.runtime.catch_up(engine.log)
        engine.checkpoint()
    return copied


def _append(con: duckdb.DuckDBPyConnection, batch: pa.RecordBatch) -> int:
    hashes = pa.array([message_hash(m) for m in batch.column("message_id").to_pylist()])
    table = pa.Table.from_batches([batch]).append_column("message_hash", hashes)
    table = table.select(list(LOG_COLUMNS))
    insert_rows(con, table)
    return int(table.num_rows)


def directory_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (what a copy costs on disk); 0 if absent."""
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
