"""The embedded ``EventLog``: an append-only table in the data directory's DuckDB file.

Durability: each ``append`` is one DuckDB transaction; DuckDB writes and
fsyncs its write-ahead log before ``COMMIT`` returns, and on restart replays
only complete commits. So an acknowledged batch survives ``kill -9`` and a
half-written one leaves nothing behind.

Dedup: DuckDB's ART indexes make bulk inserts with a uniqueness check slow
(and ``ON CONFLICT`` far slower), and a join against the whole log grows with
it. The log is single-writer (DuckDB locks the file to one process), so the
writer keeps the set of stored ``blake2b-64(messageId)`` values in memory
(``cdp.adapters.duckdb.hashes``: 8 bytes per event), rebuilt at open from the
``message_hash`` column; a hash hit is confirmed against the stored
``message_id`` (one query per batch with hits) before a record is called a
duplicate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from cdp.adapters.duckdb.hashes import HashSet
from cdp.errors import LogCorruptError
from cdp.ports.log import AppendResult, Record, StoredEvent
from schemas import EventValidationError, decode_stored

EVENT_LOG_DDL = """
CREATE TABLE IF NOT EXISTS event_log (
    "offset"        BIGINT      NOT NULL,
    message_id      VARCHAR     NOT NULL,
    message_hash    BIGINT      NOT NULL,
    type            VARCHAR     NOT NULL,
    event           VARCHAR,
    user_id         VARCHAR,
    anonymous_id    VARCHAR,
    timestamp       TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    schema_version  INTEGER     NOT NULL,
    source          VARCHAR,
    payload         VARCHAR     NOT NULL
)
"""

_SCHEMA = pa.schema(
    [
        ("offset", pa.int64()),
        ("message_id", pa.string()),
        ("message_hash", pa.int64()),
        ("type", pa.string()),
        ("event", pa.string()),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("schema_version", pa.int32()),
        ("source", pa.string()),
        ("payload", pa.string()),
    ]
)


def insert_rows(con: duckdb.DuckDBPyConnection, table: pa.Table) -> None:
    """Insert Arrow rows (``event_log``'s columns, in order) in one transaction:
    all of them durably, or none."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("_cdp_event_rows", table)
        con.execute("INSERT INTO event_log SELECT * FROM _cdp_event_rows")
        con.unregister("_cdp_event_rows")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def message_hash(message_id: str) -> int:
    """Signed 64-bit blake2b of a messageId (stable across processes, unlike hash())."""
    digest = hashlib.blake2b(message_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def decode_rows(rows: Sequence[tuple[Any, Any]], what: str) -> list[StoredEvent]:
    """``(offset, payload bytes)`` rows as stored events; a payload that no longer
    decodes is a ``LogCorruptError`` naming ``what`` and its offset."""
    batch = []
    for offset, payload in rows:
        try:
            batch.append(StoredEvent(int(offset), decode_stored(payload)))
        except EventValidationError as error:
            raise LogCorruptError(f"{what} at offset {offset}: {error}") from None
    return batch


class DuckDBEventLog:
    """``EventLog`` adapter over a DuckDB connection owned by the caller."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self._con = connection
        self._con.execute(EVENT_LOG_DDL)
        self._hashes = HashSet()
        self._high_water = 0
        self._load_index()

    def _load_index(self) -> None:
        column = (
            self._con.sql("SELECT message_hash FROM event_log ORDER BY message_hash")
            .to_arrow_table()
            .column(0)
            .combine_chunks()
        )
        values = column.buffers()[1]
        start = column.offset * 8
        self._hashes = HashSet.from_sorted_bytes(
            values.to_pybytes()[start : start + 8 * len(column)] if values else b""
        )
        found = self._con.execute('SELECT max("offset") FROM event_log').fetchall()
        self._high_water = 0 if found[0][0] is None else int(found[0][0]) + 1

    def high_water(self) -> int:
        return self._high_water

    def _stored_ids(self, hashes: list[int]) -> dict[str, int]:
        """messageId → offset of the stored events with one of these hashes."""
        if not hashes:
            return {}
        rows = self._con.execute(
            'SELECT message_id, "offset" FROM event_log WHERE message_hash IN (SELECT unnest(?))',
            [hashes],
        ).fetchall()
        return {str(m): int(o) for m, o in rows}

    def append(self, records: Sequence[Record]) -> AppendResult:
        hashes = [message_hash(r.message_id) for r in records]
        # Confirm hash hits against the stored messageIds (one query per batch
        # with hits; a true 64-bit collision is then simply not a duplicate).
        known = self._hashes
        stored_ids = self._stored_ids(sorted({h for h in hashes if h in known}))

        offsets: list[int] = []
        new: list[bool] = []
        batch: dict[str, int] = {}
        next_offset = self._high_water
        for record in records:
            mid = record.message_id
            existing = batch.get(mid)
            if existing is None:
                existing = stored_ids.get(mid)
            if existing is not None:
                offsets.append(existing)
                new.append(False)
                continue
            batch[mid] = next_offset
            offsets.append(next_offset)
            new.append(True)
            next_offset += 1

        fresh = [(r, h, o) for r, h, o, n in zip(records, hashes, offsets, new, strict=True) if n]
        if fresh:
            self._insert(fresh)
            for _, h, _ in fresh:
                known.add(h)
            self._high_water = next_offset
        return AppendResult(tuple(offsets), tuple(new))

    def _insert(self, fresh: list[tuple[Record, int, int]]) -> None:
        events = [r.event for r, _, _ in fresh]
        # Fields are read from __dict__: getattr() with a default on a pydantic
        # model costs microseconds when the field is absent (it raises inside).
        fields = [e.__dict__ for e in events]
        columns = {
            "offset": [o for _, _, o in fresh],
            "message_id": [f["message_id"] for f in fields],
            "message_hash": [h for _, h, _ in fresh],
            "type": [f["type"] for f in fields],
            "event": [f.get("event") for f in fields],
            "user_id": [f["user_id"] for f in fields],
            "anonymous_id": [f["anonymous_id"] for f in fields],
            "timestamp": [f["timestamp"] for f in fields],  # Arrow converts aware times to UTC
            "received_at": [f["received_at"] for f in fields],
            "schema_version": [f["schema_version"] for f in fields],
            "source": [r.source for r, _, _ in fresh],
            "payload": [r.data.decode() for r, _, _ in fresh],
        }
        insert_rows(self._con, pa.table(columns, schema=_SCHEMA))

    def read(
        self, start: int = 0, stop: int | None = None, batch_size: int = 10_000
    ) -> Iterator[list[StoredEvent]]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        end = self._high_water if stop is None else min(stop, self._high_water)
        position = start
        while position < end:
            upper = min(position + batch_size, end)
            rows = self._con.execute(
                # encode() hands the UTF-8 bytes over as they are stored: fetching
                # a str and re-encoding it for orjson costs ~5 µs per event.
                'SELECT "offset", encode(payload) FROM event_log '
                'WHERE "offset" >= ? AND "offset" < ? ORDER BY "offset"',
                [position, upper],
            ).fetchall()
            batch = decode_rows(rows, "stored event")
            if batch:
                yield batch
            position = upper

    def close(self) -> None:
        """Nothing to release: the connection belongs to the caller."""
