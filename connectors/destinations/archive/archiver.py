"""The archiver: a kafka-python consumer that copies topics into Parquet files.

It reads ``cdp.log`` (raw events) and the worker's ``cdp.profiles``,
``cdp.identity.assignments`` and ``cdp.identity.merges`` with manually
assigned partitions (no consumer group, no commits: the manifest is the only
record of progress), buffers each partition's records and *rolls* them into
files when a buffer holds ``max_records`` records, ``max_bytes`` bytes, or
has waited ``max_seconds``. A roll is written file by file (temp, fsync,
rename), then recorded in the manifest (``cdp.adapters.archive.manifest``).

Restart is where correctness lives: on start the archiver takes the
directory's lock, cuts a torn manifest line, removes temp files and files
the manifest does not name, and seeks every partition to one past its last
recorded offset. So every offset lands in exactly one recorded file, whatever
moment a crash hits. A partition whose next offset is no longer in the topic
(retention deleted it before it was archived) stops the archiver with an
``ArchiveError`` naming the missing range, because that is a gap.

Records become rows in ``connectors.destinations.archive.rows``.

Dependencies: an archive destination is a Kafka client, so it uses the Kafka
adapter's shared pieces (``cdp.adapters.kafka.codec`` for the record format
and the ``messageId`` digest, in ``rows``; ``cdp.adapters.kafka.consumers``
for its consumer), never the log adapter (``cdp.adapters.kafka.log``): the digest it
needed from there moved into the codec, where both read it. It writes through
the archive adapter's layout and manifest (``cdp.adapters.archive``).
"""

from __future__ import annotations

import fcntl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from kafka import TopicPartition
from kafka.errors import OffsetOutOfRangeError

from cdp.adapters.archive.layout import DATASETS, EVENTS, LOCK_FILE, ArchiveTopics
from cdp.adapters.archive.manifest import Manifest, Roll
from cdp.adapters.kafka.consumers import known_ends, open_consumer, poll
from cdp.adapters.kafka.keys import KeyRing
from cdp.errors import ArchiveError
from connectors.destinations.archive.files import BeforeRecord, clean_unrecorded, write_roll
from connectors.destinations.archive.rows import FirstCopies, event_row, record_row

FETCH_MAX_BYTES = 8 * 1024 * 1024
"""Largest fetch response the archiver asks for (all partitions together)."""


@dataclass(frozen=True, slots=True)
class RollPolicy:
    """When a partition's buffer becomes files (whichever limit comes first).

    ``max_bytes`` also bounds the buffers of all partitions together: past it,
    the largest buffer is rolled (what the archiver holds in memory)."""

    max_records: int = 50_000
    max_bytes: int = 64 * 1024 * 1024
    max_seconds: float = 60.0


@dataclass(slots=True)
class ArchiveRun:
    """What one run did."""

    records: int = 0
    rolls: int = 0
    files: int = 0
    removed_on_start: list[str] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "rolls": self.rolls,
            "files": self.files,
            "removed_on_start": self.removed_on_start,
            "positions": self.positions,
        }


CHUNK_ROWS = 2_000
"""Rows a buffer keeps as Python objects before it moves them into Arrow columns.

Kept as Python values (a dict per row's fields, a ``str`` per payload), a row
takes several times its record's size, and a roll of 26k events held about
200 MB that way; in Arrow it takes about its size, so a buffer's memory
follows ``RollPolicy.max_bytes`` and not the Python object count."""


class _Buffer:
    """The records of one partition not yet written, as Arrow columns per date."""

    def __init__(self, kind: str, topic: str, partition: int) -> None:
        self.kind, self.topic, self.partition = kind, topic, partition
        self.schema = DATASETS[kind].schema
        self.pending: dict[str, dict[str, list[Any]]] = {}  # the newest rows, per date
        self.pending_rows = 0
        self.batches: dict[str, list[pa.RecordBatch]] = {}
        self.first = -1
        self.last = -1
        self.count = 0
        self.bytes = 0
        self.started = 0.0

    def add(self, offset: int, day: str, row: dict[str, Any], size: int, now: float) -> None:
        if not self.count:
            self.first, self.started = offset, now
        columns = self.pending.get(day)
        if columns is None:
            columns = self.pending[day] = {name: [] for name in row}
        for name, value in row.items():
            columns[name].append(value)
        self.last = offset
        self.count += 1
        self.bytes += size
        self.pending_rows += 1
        if self.pending_rows >= CHUNK_ROWS:
            self._compact()

    def _compact(self) -> None:
        for day, columns in self.pending.items():
            batch = pa.record_batch(columns, schema=self.schema)
            self.batches.setdefault(day, []).append(batch)
        self.pending, self.pending_rows = {}, 0

    def tables(self) -> dict[str, pa.Table]:
        """``{date: table}`` of everything buffered (the batches are not copied)."""
        self._compact()
        return {
            day: pa.Table.from_batches(self.batches[day], schema=self.schema)
            for day in sorted(self.batches)
        }

    def full(self, policy: RollPolicy) -> bool:
        return self.count >= policy.max_records or self.bytes >= policy.max_bytes

    def due(self, policy: RollPolicy, now: float) -> bool:
        return self.count > 0 and (self.full(policy) or now - self.started >= policy.max_seconds)


@contextmanager
def _locked(root: Path) -> Iterator[None]:
    """Hold the archive directory's lock: one archiver per directory."""
    handle = (root / LOCK_FILE).open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveError(
                f"archive {root} is in use by another archiver; one archiver per directory"
            ) from None
        yield
    finally:
        handle.close()


class Archiver:
    """Copies the configured topics into the archive directory ``root``."""

    def __init__(
        self,
        root: Path,
        bootstrap: str,
        topics: ArchiveTopics | None = None,
        policy: RollPolicy | None = None,
        *,
        accept_gap: bool = False,
        before_record: BeforeRecord | None = None,
        on_roll: Callable[[Roll], None] | None = None,
        rescan_seconds: float = 30.0,
    ) -> None:
        self.root = root
        self.bootstrap = bootstrap
        self.topics = topics or ArchiveTopics()
        self.policy = policy or RollPolicy()
        self.accept_gap = accept_gap
        self.before_record = before_record
        self.on_roll = on_roll
        self.rescan_seconds = rescan_seconds
        self._kind_of = {topic: kind for kind, topic in self.topics.by_kind().items()}
        self._ring: KeyRing | None = None  # opened at the first sealed event

    # ------------------------------------------------------------------ run
    def run(self, once: bool = False, stop: threading.Event | None = None) -> ArchiveRun:
        """Archive until caught up (``once``) or until ``stop`` is set; roll what is buffered."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root):
            manifest = Manifest.open_for_append(self.root)
            self._check_topics(manifest)
            report = ArchiveRun(removed_on_start=clean_unrecorded(self.root, manifest.files()))
            consumer = self._consumer()
            try:
                self._loop(consumer, manifest, report, once, stop or threading.Event())
            finally:
                consumer.close()
                if self._ring is not None:
                    self._ring.close()
                    self._ring = None
            report.positions = {
                f"{topic}[{partition}]": offset
                for (topic, partition), offset in sorted(manifest.next_offsets().items())
            }
        return report

    def _secret_of(self, kid: bytes) -> bytes | None:
        if self._ring is None:
            self._ring = KeyRing(self.bootstrap, self.topics.keys, client_id="cdp-archiver-keys")
        return self._ring.secret_of(kid)

    def _check_topics(self, manifest: Manifest) -> None:
        for kind, seen in manifest.topics().items():
            wanted = self.topics.by_kind().get(kind)
            if seen - {wanted}:
                raise ArchiveError(
                    f"archive {self.root} holds {kind} from topic(s) {sorted(seen)}, "
                    f"not {wanted!r}; use another directory for other topics"
                )

    def _consumer(self) -> Any:
        return open_consumer(
            self.bootstrap,
            client_id="cdp-archiver",
            unreachable=lambda error: ArchiveError(
                f"cannot reach Kafka at {self.bootstrap}: {error}"
            ),
            auto_offset_reset="none",  # never skip silently: a lost offset is a gap
            max_poll_records=500,  # records handed over per poll, as Python objects
            # At most this much fetched data in flight (kafka-python's default is
            # 50 MB per fetch, 1 MB per partition); noida-db ignores both limits.
            fetch_max_bytes=FETCH_MAX_BYTES,
        )

    def _assign(
        self, consumer: Any, manifest: Manifest, positions: dict[TopicPartition, int]
    ) -> None:
        """(Re)assign every existing partition of the topics, at its archive position."""
        wanted: list[TopicPartition] = []
        for kind, topic in self.topics.by_kind().items():
            partitions = consumer.partitions_for_topic(topic) or set()
            if kind == EVENTS:
                if not partitions:
                    raise ArchiveError(
                        f"topic {topic!r} does not exist at {self.bootstrap}: "
                        "create the topics first (`cdp kafka init`)"
                    )
                if len(partitions) != 1:
                    raise ArchiveError(
                        f"topic {topic!r} has {len(partitions)} partitions; the log topic has "
                        "one (its offsets are the log's total order)"
                    )
            wanted.extend(TopicPartition(topic, p) for p in sorted(partitions))
        new = [tp for tp in wanted if tp not in positions]
        consumer.assign(wanted)
        recorded = manifest.next_offsets()
        beginnings = consumer.beginning_offsets(new) if new else {}
        for tp in new:
            start = recorded.get((tp.topic, tp.partition), 0)
            oldest = beginnings.get(tp, 0)
            if start < oldest:
                if not self.accept_gap:
                    raise ArchiveError(
                        f"{tp.topic}[{tp.partition}]: offsets {start}..{oldest - 1} are no "
                        "longer in the topic (retention deleted them before they were "
                        "archived); rerun with --accept-gap to start at the oldest offset"
                    )
                start = oldest
            positions[tp] = start
        for tp in wanted:
            consumer.seek(tp, positions[tp])

    def _loop(
        self,
        consumer: Any,
        manifest: Manifest,
        report: ArchiveRun,
        once: bool,
        stop: threading.Event,
    ) -> None:
        first_copies = FirstCopies(self.root, manifest.files(EVENTS))
        positions: dict[TopicPartition, int] = {}
        buffers: dict[TopicPartition, _Buffer] = {}
        self._assign(consumer, manifest, positions)
        rescanned = time.monotonic()
        idle = 0
        while not stop.is_set():
            try:
                batches = poll(consumer, 500)  # idle: 2 fetches/s on any broker
            except OffsetOutOfRangeError as error:
                raise ArchiveError(
                    f"offsets {error} are no longer in the topic: retention deleted them "
                    "before they were archived"
                ) from None
            now = time.monotonic()
            for tp, messages in batches.items():
                kind = self._kind_of[tp.topic]
                for message in messages:
                    buffer = buffers.get(tp)
                    if buffer is None:
                        buffer = buffers[tp] = _Buffer(kind, tp.topic, tp.partition)
                    if kind != EVENTS:
                        day, row = record_row(message)
                    else:
                        built = event_row(message, first_copies, self._secret_of)
                        if built is None:  # sealed under a destroyed key: erased
                            positions[tp] = message.offset + 1
                            continue
                        day, row = built
                    size = len(message.value or b"") + len(message.key or b"")
                    buffer.add(message.offset, day, row, size, now)
                    positions[tp] = message.offset + 1
                    if buffer.full(self.policy):
                        self._roll(buffers, buffer, manifest, report)
                    elif sum(b.bytes for b in buffers.values()) >= self.policy.max_bytes:
                        # max_bytes bounds all partitions together, not each one:
                        # else they could hold (partitions x max_bytes) in memory.
                        biggest = max(buffers.values(), key=lambda b: b.bytes)
                        self._roll(buffers, biggest, manifest, report)
            for buffer in list(buffers.values()):
                if buffer.due(self.policy, now):
                    self._roll(buffers, buffer, manifest, report)
            idle = 0 if batches else idle + 1
            if once and idle >= 2 and self._caught_up(consumer, positions):
                break
            if not once and now - rescanned >= self.rescan_seconds:
                self._assign(consumer, manifest, positions)
                rescanned = now
        for buffer in list(buffers.values()):
            if buffer.count:
                self._roll(buffers, buffer, manifest, report)

    @staticmethod
    def _caught_up(consumer: Any, positions: dict[TopicPartition, int]) -> bool:
        """Every partition fetched at least once and read up to its end (``known_ends``:
        the end offset or the fetched high watermark, as some brokers misreport the first)."""
        ends = known_ends(consumer, positions)
        return all(
            consumer.highwater(tp) is not None and position >= ends[tp]
            for tp, position in positions.items()
        )

    def _roll(
        self,
        buffers: dict[TopicPartition, _Buffer],
        buffer: _Buffer,
        manifest: Manifest,
        report: ArchiveRun,
    ) -> None:
        dataset = DATASETS[buffer.kind]
        tables = {
            dataset.relative_path(day, buffer.partition, buffer.first, buffer.last): table
            for day, table in buffer.tables().items()
        }
        write_roll(self.root, tables)
        files = list(tables)
        if self.before_record is not None:
            self.before_record(files)
        roll = Roll(
            topic=buffer.topic,
            kind=buffer.kind,
            partition=buffer.partition,
            first=buffer.first,
            last=buffer.last,
            records=buffer.count,
            files=tuple(files),
            written_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        manifest.append(roll)
        report.records += buffer.count
        report.rolls += 1
        report.files += len(files)
        del buffers[TopicPartition(buffer.topic, buffer.partition)]
        if self.on_roll is not None:
            self.on_roll(roll)
