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

import duckdb
import pyarrow as pa
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, OffsetOutOfRangeError

from cdp.adapters.archive.layout import DATASETS, EVENTS, LOCK_FILE, ArchiveTopics, resolve
from cdp.adapters.archive.manifest import Manifest, Roll
from cdp.adapters.kafka.codec import decode_event, source_of
from cdp.adapters.kafka.log import id_digest
from cdp.errors import ArchiveError, EventValidationError
from connectors.destinations.archive.files import BeforeRecord, clean_unrecorded, write_roll


@dataclass(frozen=True, slots=True)
class RollPolicy:
    """When a partition's buffer becomes files (whichever limit comes first)."""

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


class _Buffer:
    """The records of one partition not yet written, as columns per date."""

    def __init__(self, kind: str, topic: str, partition: int) -> None:
        self.kind, self.topic, self.partition = kind, topic, partition
        self.days: dict[str, dict[str, list[Any]]] = {}
        self.first = -1
        self.last = -1
        self.count = 0
        self.bytes = 0
        self.started = 0.0

    def add(self, offset: int, day: str, row: dict[str, Any], size: int, now: float) -> None:
        if not self.count:
            self.first, self.started = offset, now
        columns = self.days.get(day)
        if columns is None:
            columns = self.days[day] = {name: [] for name in row}
        for name, value in row.items():
            columns[name].append(value)
        self.last = offset
        self.count += 1
        self.bytes += size

    def full(self, policy: RollPolicy) -> bool:
        return self.count >= policy.max_records or self.bytes >= policy.max_bytes

    def due(self, policy: RollPolicy, now: float) -> bool:
        return self.count > 0 and (self.full(policy) or now - self.started >= policy.max_seconds)


def _utc(milliseconds: int | None) -> datetime:
    if milliseconds is None or milliseconds < 0:  # no timestamp on the record
        return datetime.now(UTC)
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


class _FirstCopies:
    """``messageId`` → offset of its first copy in the log topic (blake2b-128 keys).

    Rebuilt at start from the recorded events files, then kept current.
    """

    def __init__(self, root: Path, files: list[str]) -> None:
        self.index: dict[bytes, int] = {}
        if files:
            con = duckdb.connect()
            try:
                rows = con.execute(
                    'SELECT message_id, "offset" FROM read_parquet(?) '
                    'WHERE duplicate_of IS NULL ORDER BY "offset"',
                    [[str(resolve(root, f)) for f in files]],
                ).fetchall()
            finally:
                con.close()
            self.index = {id_digest(m): int(o) for m, o in rows}

    def first(self, message_id: str, offset: int) -> int:
        """The offset of the first copy of ``message_id`` (``offset`` itself if new)."""
        return self.index.setdefault(id_digest(message_id), offset)


def _event_row(message: Any, first_copies: _FirstCopies) -> tuple[str, dict[str, Any]]:
    try:
        event = decode_event(message.value)
    except EventValidationError as error:
        raise ArchiveError(
            f"{message.topic}[{message.partition}] offset {message.offset} is not a stored "
            f"event ({error}); the log topic must hold only validated events"
        ) from None
    fields = event.__dict__
    first = first_copies.first(fields["message_id"], message.offset)
    row = {
        "offset": message.offset,
        "message_id": fields["message_id"],
        "type": fields["type"],
        "event": fields.get("event"),
        "timestamp": fields["timestamp"],
        "received_at": fields["received_at"],
        "user_id": fields["user_id"],
        "anonymous_id": fields["anonymous_id"],
        "source": source_of(message.headers),
        "schema_version": fields["schema_version"],
        "payload": message.value.decode(),
        "duplicate_of": None if first == message.offset else first,
    }
    return fields["timestamp"].astimezone(UTC).date().isoformat(), row


def _text(message: Any, data: bytes | None, what: str) -> str | None:
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ArchiveError(
            f"{message.topic}[{message.partition}] offset {message.offset}: {what} is not UTF-8"
        ) from None


def _record_row(message: Any) -> tuple[str, dict[str, Any]]:
    published = _utc(message.timestamp)
    row = {
        "kafka_partition": message.partition,
        "kafka_offset": message.offset,
        "key": _text(message, message.key, "key"),
        "value": _text(message, message.value, "value"),
        "published_at": published,
    }
    return published.date().isoformat(), row


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
            report.positions = {
                f"{topic}[{partition}]": offset
                for (topic, partition), offset in sorted(manifest.next_offsets().items())
            }
        return report

    def _check_topics(self, manifest: Manifest) -> None:
        for kind, seen in manifest.topics().items():
            wanted = self.topics.by_kind().get(kind)
            if seen - {wanted}:
                raise ArchiveError(
                    f"archive {self.root} holds {kind} from topic(s) {sorted(seen)}, "
                    f"not {wanted!r}; use another directory for other topics"
                )

    def _consumer(self) -> KafkaConsumer:
        try:
            return KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                client_id="cdp-archiver",
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="none",  # never skip silently: a lost offset is a gap
                allow_auto_create_topics=False,
                max_poll_records=5_000,
            )
        except KafkaError as error:
            raise ArchiveError(f"cannot reach Kafka at {self.bootstrap}: {error}") from None

    def _assign(
        self, consumer: KafkaConsumer, manifest: Manifest, positions: dict[TopicPartition, int]
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
        consumer: KafkaConsumer,
        manifest: Manifest,
        report: ArchiveRun,
        once: bool,
        stop: threading.Event,
    ) -> None:
        first_copies = _FirstCopies(self.root, manifest.files(EVENTS))
        positions: dict[TopicPartition, int] = {}
        buffers: dict[TopicPartition, _Buffer] = {}
        self._assign(consumer, manifest, positions)
        rescanned = time.monotonic()
        idle = 0
        while not stop.is_set():
            try:
                batches = consumer.poll(timeout_ms=500)
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
                    day, row = (
                        _event_row(message, first_copies)
                        if kind == EVENTS
                        else _record_row(message)
                    )
                    size = len(message.value or b"") + len(message.key or b"")
                    buffer.add(message.offset, day, row, size, now)
                    positions[tp] = message.offset + 1
                    if buffer.full(self.policy):
                        self._roll(buffers, buffer, manifest, report)
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
    def _caught_up(consumer: KafkaConsumer, positions: dict[TopicPartition, int]) -> bool:
        """Every partition read up to its end: by its end offset and by the high
        watermark of a fetch response (some brokers report wrong end offsets)."""
        ends = consumer.end_offsets(list(positions))
        for tp, position in positions.items():
            highwater = consumer.highwater(tp)
            if highwater is None or position < max(highwater, ends.get(tp, 0)):
                return False
        return True

    def _roll(
        self,
        buffers: dict[TopicPartition, _Buffer],
        buffer: _Buffer,
        manifest: Manifest,
        report: ArchiveRun,
    ) -> None:
        dataset = DATASETS[buffer.kind]
        tables = {
            dataset.relative_path(day, buffer.partition, buffer.first, buffer.last): pa.table(
                buffer.days[day], schema=dataset.schema
            )
            for day in sorted(buffer.days)
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
