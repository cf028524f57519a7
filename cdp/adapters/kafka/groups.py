"""Consumer groups as an operator sees them: members, assignments, committed
offsets, partition ends and lag.

``GroupReader.status(group, topics)`` asks the broker once: ``DescribeGroups``
(state, members, their assignments), ``OffsetFetch`` (what the group
committed) through kafka-python's ``KafkaAdminClient``, and the partition
ends through one consumer that fetches each partition at the committed
offset. That fetch gives two things ``ListOffsets`` cannot: the high
watermark also on tansu (which answers ``ListOffsets(latest)`` with the base
of the last batch + 1, see ``cdp.adapters.kafka.consumers``), and the
timestamp of the oldest record the group has not processed yet, so the lag is
also an age. The reader keeps its two connections open between calls.

``GroupWatcher`` refreshes a status in a background thread every few
seconds and hands out the latest: ``cdp serve --kafka`` reads the workers'
lag from it for ``/health``, ``/metrics`` and the freshness of lookups, so
no request opens a broker connection or waits on one.

What the brokers report differs: noida-db and Apache Kafka give each member's
client id, host and assignment; tansu leaves them empty (``Member.assignment``
is then ``None``: unknown, not nothing). Committed offsets and ends are right
on both.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cdp.adapters.kafka.consumers import kafka_python, open_consumer
from cdp.errors import LogUnavailableError

FETCH_WAIT_MS = 100
"""How long the broker may hold the end-offset fetch of a caught-up partition."""


@dataclass(frozen=True, slots=True)
class Member:
    """One member of a group."""

    member_id: str
    client_id: str
    host: str
    instance_id: str | None
    #: (topic, partition) pairs assigned to it; ``None`` when the broker does not say (tansu).
    assignment: tuple[tuple[str, int], ...] | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "member_id": self.member_id,
            "client_id": self.client_id,
            "host": self.host,
            "instance_id": self.instance_id,
            "assignment": None
            if self.assignment is None
            else [{"topic": t, "partition": p} for t, p in self.assignment],
        }


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """Where a group is in one partition."""

    topic: str
    partition: int
    #: The next offset the group will process; ``None`` when it never committed.
    committed: int | None
    #: One past the last record in the partition.
    end: int
    #: Records the group has not processed (from the partition's start when never committed).
    lag: int
    #: Epoch milliseconds of the oldest record not processed yet; ``None`` when none or unknown.
    oldest_ms: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "committed": self.committed,
            "end": self.end,
            "lag": self.lag,
            "oldest_unprocessed_ms": self.oldest_ms,
        }


@dataclass(frozen=True, slots=True)
class GroupStatus:
    """A group at one moment (``measured_at``, epoch seconds)."""

    group: str
    state: str
    members: tuple[Member, ...]
    partitions: tuple[PartitionLag, ...]
    measured_at: float

    def lag(self, topic: str | None = None) -> int:
        """Records not processed yet, over every reported partition (or of ``topic``)."""
        return sum(p.lag for p in self.partitions if topic is None or p.topic == topic)

    def lag_by_topic(self) -> dict[str, int]:
        """topic → records not processed yet."""
        totals: dict[str, int] = {}
        for p in self.partitions:
            totals[p.topic] = totals.get(p.topic, 0) + p.lag
        return totals

    def oldest_age(self, now: float | None = None) -> float | None:
        """Seconds since the oldest record not processed yet was appended (None: none)."""
        stamps = [p.oldest_ms for p in self.partitions if p.lag and p.oldest_ms is not None]
        if not stamps:
            return None
        return max(0.0, (now if now is not None else time.time()) - min(stamps) / 1000)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (``cdp kafka status --json``)."""
        return {
            "group": self.group,
            "state": self.state,
            "members": [m.as_dict() for m in self.members],
            "lag": self.lag(),
            "lag_by_topic": self.lag_by_topic(),
            "oldest_unprocessed_age_seconds": self.oldest_age(),
            "partitions": [p.as_dict() for p in self.partitions],
        }


def _undecodable(record: logging.LogRecord) -> bool:
    """False for kafka-python's "Unable to decode member_metadata/assignment" lines.

    faust's members subscribe with a protocol of their own (its JSON assignor
    data), which kafka-python's consumer-protocol decoder does not read; it then
    logs the whole group, raw bytes included, at WARNING, for every description
    (the API describes the group every few seconds). ``_members`` takes the
    assignment either way, so the line says nothing an operator can act on."""
    return not record.getMessage().startswith("Unable to decode member_")


def _admin_class(kafka: Any) -> Any:
    decoder_log = logging.getLogger("kafka.admin._groups")
    if _undecodable not in decoder_log.filters:
        decoder_log.addFilter(_undecodable)

    class Admin(kafka.KafkaAdminClient):  # type: ignore[misc]  # kafka-python is untyped
        """kafka-python's admin client without the ACL part of ``DescribeGroups``:
        tansu answers it with bits kafka-python cannot decode (``ValueError: 15
        is not a valid ACLOperation``), and nothing here needs it."""

        def _describe_groups_request(self, group_ids: Any) -> Any:
            request = super()._describe_groups_request(group_ids)
            request.include_authorized_operations = False
            return request

        def _process_acl_operations(self, obj: dict[str, Any]) -> dict[str, Any]:
            obj.pop("authorized_operations", None)
            return obj

    return Admin


def _members(described: dict[str, Any]) -> tuple[Member, ...]:
    members = []
    for m in described.get("members") or ():
        assigned = m.get("member_assignment")
        assignment: tuple[tuple[str, int], ...] | None = None
        if isinstance(assigned, dict):
            assignment = tuple(
                sorted(
                    (a["topic"], p)
                    for a in assigned.get("assigned_partitions") or ()
                    for p in a["partitions"]
                )
            )
        members.append(
            Member(
                member_id=m.get("member_id") or "",
                client_id=m.get("client_id") or "",
                host=(m.get("client_host") or "").lstrip("/"),
                instance_id=m.get("group_instance_id"),
                assignment=assignment,
            )
        )
    return tuple(sorted(members, key=lambda m: (m.client_id, m.member_id)))


class GroupReader:
    """Reads group status from one broker cluster; keeps its connections open."""

    def __init__(self, bootstrap: str, timeout: float = 10.0) -> None:
        self.bootstrap = bootstrap
        kafka = kafka_python()
        self._kafka = kafka
        self._tp = kafka.TopicPartition
        try:
            self._admin = _admin_class(kafka)(
                bootstrap_servers=bootstrap,
                client_id="cdp-group-status",
                request_timeout_ms=int(timeout * 1000),
            )
        except kafka.errors.KafkaError as error:
            raise _unreachable(bootstrap, error) from None
        self._consumer = open_consumer(
            bootstrap,
            client_id="cdp-group-status",
            unreachable=lambda e: _unreachable(bootstrap, e),
            fetch_max_wait_ms=FETCH_WAIT_MS,
            max_partition_fetch_bytes=64 * 1024,
            request_timeout_ms=int(timeout * 1000) + FETCH_WAIT_MS,
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close both connections."""
        with contextlib.suppress(Exception):
            self._consumer.close()
        with contextlib.suppress(Exception):
            self._admin.close()

    def status(self, group: str, topics: Sequence[str] = ()) -> GroupStatus:
        """``group`` now, with lag for every partition of ``topics`` and every
        partition it committed; ``LogUnavailableError`` when the broker does not answer."""
        with self._lock:  # one consumer: one measurement at a time
            try:
                return self._status(group, topics)
            except self._kafka.errors.KafkaError as error:
                raise _unreachable(self.bootstrap, error) from None

    def _status(self, group: str, topics: Sequence[str]) -> GroupStatus:
        described = self._admin.describe_groups([group]).get(group) or {}
        offsets = self._admin.list_group_offsets({group: None}).get(group) or {}
        committed: dict[Any, int | None] = {
            tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0
        }
        for topic in topics:
            for partition in sorted(self._consumer.partitions_for_topic(topic) or ()):
                committed.setdefault(self._tp(topic, partition), None)
        partitions = self._measure(committed)
        return GroupStatus(
            group=group,
            state=str(described.get("group_state") or "Unknown"),
            members=_members(described),
            partitions=partitions,
            measured_at=time.time(),
        )

    def _measure(self, committed: dict[Any, int | None]) -> tuple[PartitionLag, ...]:
        """Fetch each partition at the group's position: its high watermark and the
        timestamp of the first record there (the oldest the group has not processed)."""
        wanted = sorted(committed, key=lambda tp: (tp.topic, tp.partition))
        if not wanted:
            return ()
        consumer = self._consumer
        consumer.assign(wanted)
        starts = consumer.beginning_offsets(wanted)
        listed = consumer.end_offsets(wanted)
        position = {tp: max(committed[tp] or 0, starts.get(tp) or 0) for tp in wanted}
        for tp in wanted:
            consumer.seek(tp, position[tp])
        first: dict[Any, int] = {}
        pending = {tp for tp in wanted if (listed.get(tp) or 0) > position[tp]}
        deadline = time.monotonic() + 1.0
        # One fetch round normally answers every partition; a few more only when
        # partitions live on brokers that answer later.
        while time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=FETCH_WAIT_MS * 3).items():
                if records and tp not in first:
                    first[tp] = records[0].timestamp
            if all(consumer.highwater(tp) is not None for tp in wanted) and pending <= set(first):
                break
        result = []
        for tp in wanted:
            end = max(listed.get(tp) or 0, consumer.highwater(tp) or 0, committed[tp] or 0)
            lag = max(0, end - position[tp])
            result.append(
                PartitionLag(tp.topic, tp.partition, committed[tp], end, lag, first.get(tp))
            )
        return tuple(result)


def _unreachable(bootstrap: str, error: Exception) -> LogUnavailableError:
    return LogUnavailableError(f"Kafka at {bootstrap} did not answer: {error}")


class GroupWatcher:
    """The latest status of one group, refreshed every ``every`` seconds in a
    background thread (see the module docstring)."""

    def __init__(
        self, bootstrap: str, group: str, topics: Sequence[str], every: float = 5.0
    ) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.topics = tuple(topics)
        self.every = every
        self._latest: GroupStatus | None = None
        #: Why the last refresh failed; ``None`` after a good one.
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> GroupWatcher:
        """Start refreshing (the first status arrives after one round trip)."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="group-watcher", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop refreshing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def latest(self) -> GroupStatus | None:
        """The last status measured (``None`` before the first, or while the broker is
        unreachable: an old status would claim a lag that may be gone)."""
        return None if self.error is not None else self._latest

    def _run(self) -> None:
        reader: GroupReader | None = None
        while not self._stop.is_set():
            try:
                if reader is None:
                    reader = GroupReader(self.bootstrap)
                self._latest = reader.status(self.group, self.topics)
                self.error = None
            except Exception as error:  # reported on /health and retried: never end the thread
                self.error = str(error)
                if reader is not None:
                    reader.close()
                    reader = None
            self._stop.wait(self.every)
        if reader is not None:
            reader.close()
