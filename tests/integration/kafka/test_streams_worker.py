"""The faust worker against real brokers: parity, identity, recovery, rebalance, dead letters.

Every test runs ``cdp worker`` as a real subprocess (``python -m cdp.cli
worker``) against each broker of the fixture, so SIGTERM and SIGKILL are
real. The expected result is always computed independently, by the embedded runtime
(``cdp.runtime.embedded.EmbeddedRuntime``) folding the same records in the same order
as they sit in the log topic; the distributed result is read back from the
topics with ``tests.kafka_snapshot``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaProducer

from cdp.adapters.kafka import admin as kafka_admin
from cdp.adapters.kafka import codec as kafka_codec
from cdp.adapters.kafka import topics as kafka_topics
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.demo.generate.config import DEFAULT_CUSTOMERS
from cdp.errors import NotFoundError
from cdp.ports.log import Record, StoredEvent
from cdp.runtime.embedded import EmbeddedRuntime
from cdp.services.ingest import to_record
from projections import identity
from tests import kafka_snapshot as snapshot
from tests.brokers import Broker

pytestmark = pytest.mark.integration

RECEIVED = datetime(2026, 11, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[3]


def generated(customers: int, seed: int = 7) -> list[Record]:
    """Validated records of a generated shop (``cdp.demo.generate``)."""
    return [
        to_record(raw, RECEIVED, "test") for raw in iter_events(GenerateConfig(seed, customers))
    ]


def produce(broker: Broker, prefix: str, values: Sequence[bytes | Record]) -> None:
    """Append to the log topic in order (records in the log format, or raw bytes)."""
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        for value in values:
            if isinstance(value, Record):
                message = kafka_codec.encode(value)
                producer.send(
                    prefix + kafka_topics.LOG,
                    key=message.key,
                    value=message.value,
                    headers=message.headers,
                )
            else:
                producer.send(prefix + kafka_topics.LOG, key=b"junk", value=value)
        producer.flush()
    finally:
        producer.close()


def embedded(records: Sequence[Record]) -> EmbeddedRuntime:
    """The embedded runtime after folding ``records`` in this order (offsets 0..n-1)."""
    runtime = EmbeddedRuntime()
    runtime.apply([StoredEvent(i, r.event) for i, r in enumerate(records)])
    runtime.flush()
    return runtime


def expected_merges(runtime: EmbeddedRuntime) -> list[tuple[str, str, str, str, str, int]]:
    """Every merge the embedded runtime made (``take_changes`` releases them)."""
    changes = runtime.graph.take_changes()
    return [
        (m.from_customer, m.into_customer, m.via, m.reason, m.message_id, m.offset)
        for m in changes.merges
    ]


def published_merges(state: snapshot.DistributedState) -> list[tuple[str, str, str, str, str, int]]:
    return [
        (
            m["from_customer"],
            m["into_customer"],
            m["via"],
            m["reason"],
            m["message_id"],
            m["offset"],
        )
        for m in state.merges
    ]


class Worker:
    """``python -m cdp.cli worker`` as a real subprocess (so SIGTERM and SIGKILL are real)."""

    def __init__(
        self,
        broker: Broker,
        prefix: str,
        partitions: int | None,
        workdir: Path,
        name: str = "w",
        store: str = "memory",
        extra: Sequence[str] = (),
    ) -> None:
        """``partitions``: passed as ``--partitions`` (the worker's check against the
        topics); ``None``: the worker follows the topics alone, as in production."""
        self.log_path = workdir / f"{name}.log"
        self.command = [
            sys.executable,
            "-m",
            "cdp.cli",
            "worker",
            "--bootstrap",
            broker.bootstrap,
            "--prefix",
            prefix,
            *(["--partitions", str(partitions)] if partitions is not None else []),
            "--broker-profile",
            broker.kind if broker.kind in ("tansu", "noida") else "kafka",
            "--data-dir",
            str(workdir / f"data-{name}"),  # its own disk, as in production
            "--loglevel",
            "info",
            "--store",
            store,
            *extra,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Worker:
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=REPO,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        finally:
            log.close()
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int | None:
        """Send ``sig`` and reap; SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(30)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""


def wait_for(
    broker: Broker,
    prefix: str,
    runtime: EmbeddedRuntime,
    workers: Sequence[Worker],
    timeout: float = 240.0,
    stall: float = 60.0,
) -> snapshot.DistributedState:
    """Follow the published result until it equals the embedded one; assert with a diff if not.

    Gives up early when nothing published changes for ``stall`` seconds: a worker
    that is never assigned partitions (noida-db's rejoin bug, excused where it
    applies) would otherwise hold a test worker for the whole ``timeout``."""
    want_profiles = snapshot.embedded_profiles(runtime)
    want_rows = runtime.graph.to_rows()
    started = time.monotonic()
    deadline = started + timeout
    with snapshot.Follower(broker.bootstrap, prefix) as follower:
        parity = snapshot.Parity(follower, want_profiles)
        state = follower.catch_up(timeout)
        seen: tuple[int, ...] = ()
        changed = started
        while time.monotonic() < deadline:
            if parity.check() and state.identity_rows == want_rows:
                # The incremental check agreed; the full comparison is the verdict.
                assert state.comparable_profiles() == want_profiles
                return state
            if not any(w.alive() for w in workers):
                break
            now = (len(parity.differ), len(state.profiles), len(state.identity_rows))
            if now != seen:
                seen, changed = now, time.monotonic()
            elif time.monotonic() - changed > stall:
                break
            time.sleep(1.0)
            state = follower.catch_up(max(deadline - time.monotonic(), 0.0))
    got = state.comparable_profiles()
    differ = sorted(
        c for c in want_profiles.keys() | got.keys() if want_profiles.get(c) != got.get(c)
    )
    raise AssertionError(
        f"distributed result differs after {time.monotonic() - started:.0f}s "
        f"(nothing changed for the last {time.monotonic() - changed:.0f}s): "
        f"{len(differ)} customers differ "
        f"(e.g. {differ[:3]}), {len(got)} published vs {len(want_profiles)} expected, "
        f"identity rows equal: {state.identity_rows == want_rows}\n"
        + "\n".join(f"--- {w.log_path.name}\n{w.tail()}" for w in workers)
    )


def wait_progress(broker: Broker, prefix: str, at_least: int, timeout: float = 120.0) -> int:
    """Wait until at least ``at_least`` profiles are published (the worker is mid-stream)."""
    deadline = time.monotonic() + timeout
    with snapshot.Follower(broker.bootstrap, prefix) as follower:
        while time.monotonic() < deadline:
            count = len(follower.catch_up(timeout).profiles)
            if count >= at_least:
                return count
            time.sleep(0.3)
    raise AssertionError(f"fewer than {at_least} profiles published after {timeout}s")


# ── tests ───────────────────────────────────────────────────────────────────

SMALL = 15  # customers: ~700 events, seconds per run on both brokers


@pytest.fixture(scope="module")
def small_records() -> list[Record]:
    return generated(SMALL)


NOIDA_REJOIN = (
    "noida-db 0.2.3 sometimes never completes a consumer-group rebalance after a member "
    "leaves, is killed or a second one joins: the faust worker logs 'Joined group ... "
    "(generation N)' again every session timeout and is never assigned partitions. Seen "
    "in about 1 of 10 recovery and rebalance runs, with either table store (it passes "
    "otherwise; tansu passes them every time and is not excused)"
)


def _excuse_noida_rejoin(broker: Broker, request: pytest.FixtureRequest) -> None:
    """On noida-db the test still runs; only its broker's rejoin loop is excused."""
    if broker.kind == "noida":
        request.applymarker(pytest.mark.xfail(strict=False, reason=NOIDA_REJOIN))


def _init(broker: Broker, prefix: str, partitions: int) -> None:
    kafka_admin.init_topics(broker.bootstrap, prefix, partitions)


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_parity_with_the_embedded_runtime(
    broker: Broker, topic_prefix: str, tmp_path: Path, small_records: list[Record], store: str
) -> None:
    """Profiles, lead scores, identities and merges equal the embedded runtime's,
    with tables in memory (tests) and in RocksDB (production: one database per
    partition, so every read must look in its record's partition)."""
    _init(broker, topic_prefix, 4)
    produce(broker, topic_prefix, small_records)
    runtime = embedded(small_records)
    worker = Worker(broker, topic_prefix, 4, tmp_path, store=store).start()
    try:
        state = wait_for(broker, topic_prefix, runtime, [worker])
    finally:
        worker.stop()
    assert published_merges(state) == expected_merges(runtime)
    assert len(state.profiles) == len(runtime.profiles) > SMALL // 2


@pytest.mark.parametrize("partitions", [1, 4])
def test_identity_equals_a_union_find_over_the_shuffled_stream(
    broker: Broker, topic_prefix: str, tmp_path: Path, small_records: list[Record], partitions: int
) -> None:
    """Any arrival order, any partition count: the assignment is a union-find of the stream."""
    shuffled = list(small_records)
    random.Random(partitions).shuffle(shuffled)
    _init(broker, topic_prefix, partitions)
    produce(broker, topic_prefix, shuffled)
    runtime = embedded(shuffled)
    worker = Worker(broker, topic_prefix, partitions, tmp_path).start()
    try:
        state = wait_for(broker, topic_prefix, runtime, [worker])
    finally:
        worker.stop()
    assert state.assignments() == union_find_oracle(shuffled)


def union_find_oracle(records: Sequence[Record]) -> dict[str, str]:
    """Identifier → customer by plain union-find over each event's identifiers.

    Only for conflict-free streams (no two user ids joined, anonymous cap not
    reached): then identity is exactly the connected components. The customer
    id of a component is the one derived from its first identifier ever seen.
    """
    parent: dict[str, str] = {}
    first: dict[str, int] = {}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    graph = identity.IdentityGraph()
    for n, record in enumerate(records):
        keys = identity.identifiers_of(record.event, graph.customer_of)
        resolution = identity.apply(graph, record.event, n)
        assert not resolution.rejections, "the oracle needs a conflict-free stream"
        for k in keys:
            if k not in parent:
                parent[k] = k
                first[k] = len(first)
        for k in keys[1:]:
            a, b = find(keys[0]), find(k)
            if a != b:
                # keep the older root, so the root is the first identifier seen
                a, b = (a, b) if first[a] < first[b] else (b, a)
                parent[b] = a
    return {k: identity.customer_id_for(find(k)) for k in parent}


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_recovery_after_sigterm_and_kill_9(
    broker: Broker,
    topic_prefix: str,
    tmp_path: Path,
    small_records: list[Record],
    request: pytest.FixtureRequest,
    store: str,
) -> None:
    """Stopped and killed mid-stream, restarted: tables recover, every count exact.

    With ``memory`` the tables come back from their changelogs alone; with
    ``rocksdb`` (production) from the worker's local RocksDB files, which a
    ``kill -9`` may leave ahead of the changelog, plus the changelog's tail."""
    _excuse_noida_rejoin(broker, request)
    half = len(small_records) // 2
    _init(broker, topic_prefix, 4)
    produce(broker, topic_prefix, small_records[:half])
    worker = Worker(broker, topic_prefix, 4, tmp_path, store=store).start()
    try:
        wait_progress(broker, topic_prefix, 5)
        assert worker.stop(signal.SIGTERM) is not None
        produce(broker, topic_prefix, small_records[half:])
        worker.start()
        wait_progress(broker, topic_prefix, len(embedded(small_records[:half]).profiles))
        worker.stop(signal.SIGKILL)
        worker.start()
        wait_for(broker, topic_prefix, embedded(small_records), [worker])
    finally:
        worker.stop()


@pytest.mark.parametrize("store", ["memory", "rocksdb"])
def test_rebalance_two_workers_then_one(
    broker: Broker,
    topic_prefix: str,
    tmp_path: Path,
    small_records: list[Record],
    request: pytest.FixtureRequest,
    store: str,
) -> None:
    """Two workers share the partitions; one leaves mid-stream; the other finishes exactly
    (with ``rocksdb``, taking over partitions it has no local database for)."""
    _excuse_noida_rejoin(broker, request)
    _init(broker, topic_prefix, 4)
    first = Worker(broker, topic_prefix, 4, tmp_path, "first", store).start()
    second = Worker(broker, topic_prefix, 4, tmp_path, "second", store).start()
    try:
        produce(broker, topic_prefix, small_records)
        wait_progress(broker, topic_prefix, 5)
        first.stop(signal.SIGTERM)
        wait_for(broker, topic_prefix, embedded(small_records), [second])
    finally:
        first.stop()
        second.stop()


def test_undecodable_records_go_to_dead_letters(
    broker: Broker, topic_prefix: str, tmp_path: Path, small_records: list[Record]
) -> None:
    """Broken records are dead-lettered with reason and offset; the log keeps moving."""
    records = small_records[:300]
    junk = [b"\xff not json", b'{"type": "track", "messageId": "m-1"}']
    _init(broker, topic_prefix, 2)
    produce(
        broker, topic_prefix, [*records[:100], junk[0], *records[100:200], junk[1], *records[200:]]
    )
    worker = Worker(broker, topic_prefix, 2, tmp_path).start()
    try:
        wait_for(broker, topic_prefix, embedded(records), [worker])
    finally:
        worker.stop()
    letters = [
        kafka_codec.decode_dead_letter(r.value)
        for r in snapshot.records(broker.bootstrap, topic_prefix + kafka_topics.DEADLETTERS, 30)
    ]
    assert sorted(letter.body for letter in letters) == sorted(junk)
    by_body = {letter.body: letter for letter in letters}
    assert by_body[junk[0]].origin == f"{topic_prefix}log@100"
    assert "not JSON" in by_body[junk[0]].reason
    assert by_body[junk[1]].origin == f"{topic_prefix}log@201"
    assert "invalid event" in by_body[junk[1]].reason


#: Customers of the shop the long parity test runs: a quarter of the default
#: demo on both brokers (~1,300 customers, ~54,000 events), so that each broker
#: still sees tens of thousands of events, thousands of merges and table
#: recovery at scale while the suite keeps to its 10 minutes on two cores
#: (under pytest -n 4 the full demo took 243 s on tansu, whose producers send
#: one record per batch; alone, noida-db takes 364 s for it). The shorter
#: parity tests above run the same checks on both brokers.
LONG_PARITY_CUSTOMERS = DEFAULT_CUSTOMERS // 4


@pytest.mark.long
def test_parity_on_a_demo_shop_at_scale(broker: Broker, topic_prefix: str, tmp_path: Path) -> None:
    """A quarter of the default demo (``LONG_PARITY_CUSTOMERS``) through Kafka + faust.

    The worker starts first and folds while the log is still being produced and
    the expected result computed, as a live worker would: the test's own work
    stays off its critical path."""
    _init(broker, topic_prefix, 4)
    worker = Worker(broker, topic_prefix, 4, tmp_path).start()
    try:
        config = GenerateConfig(customers=LONG_PARITY_CUSTOMERS)
        records = [to_record(raw, RECEIVED, "demo") for raw in iter_events(config)]
        produce(broker, topic_prefix, records)
        runtime = embedded(records)
        state = wait_for(broker, topic_prefix, runtime, [worker], timeout=4 * 3600)
    finally:
        worker.stop()
    assert published_merges(state) == expected_merges(runtime)


def test_reading_results_under_a_prefix_with_no_topics_names_them(broker: Broker) -> None:
    """A wrong prefix (or no ``cdp kafka init``) is an error naming the topics, not an empty result."""
    with pytest.raises(NotFoundError, match=r"no topic nosuch\.profiles.*'nosuch\.'"):
        snapshot.read(broker.bootstrap, "nosuch.", timeout=10)
