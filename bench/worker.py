"""One ``cdp worker`` catching up on a backlog: events/s through the folds.

Starts a Kafka-protocol broker from PyPI (``noida`` by default, or
``tansu``), fills ``cdp.log`` with the generated shop (``--customers``), and
times the raw kafka-python producer doing that (the baseline). Then it starts
one ``cdp worker`` (a real subprocess) and polls the published profiles
(``tests.kafka_snapshot.Follower``, one kafka-python consumer reading the
topics as they grow; ``snapshot.Parity`` re-checks only the customers whose
snapshot changed) until every customer the embedded runtime finds is there
with the same profile and lead states. Throughput is log events / (worker start → the
last profile published), which includes the worker's start-up and group join;
that time is printed separately, and so is the rate after it (first profile →
last). The identity stage on its own (``streams.sequencer.Sequencer`` over the
same records in batches of the worker's size, in this process, no broker) is
printed too: it is the one partition every event goes through, the ceiling of
the whole cluster.

The log is **sealed** as the collector writes it (issue 16: each event under
its identifiers' keys, stored first in ``bench.keys``; the producer's time
includes creating them and sealing); ``--plain`` writes it in the clear as
before sealing. Before the worker starts, a replay read of the whole log
(``KafkaEventLog.read``: fetch, unseal, decode, as the archiver and the
API's replay read it) is timed too.

``python -m bench.worker [--broker noida|tansu] [--customers 300] [--partitions 4] [--plain]``
"""

from __future__ import annotations

import argparse
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import machine
from bench.idle_cpu import cpu_seconds
from cdp.adapters.kafka import admin as kafka_admin
from cdp.adapters.kafka import codec as kafka_codec
from cdp.adapters.kafka import topics as kafka_topics
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.ports.log import Record, StoredEvent
from cdp.runtime.embedded import EmbeddedRuntime
from cdp.services.ingest import to_record
from projections import identity
from streams.app import WorkerConfig
from streams.sequencer import LogRecord, Sequencer
from tests import kafka_snapshot as snapshot
from tests.brokers import start as start_broker

PREFIX = "bench."


def records_of(customers: int) -> list[Record]:
    received = datetime(2026, 11, 1, tzinfo=UTC)
    return [to_record(raw, received, "bench") for raw in iter_events(GenerateConfig(7, customers))]


def sealed_messages(bootstrap: str, records: list[Record]) -> list[kafka_codec.Message]:
    """``records`` sealed as the collector's log adapter seals an append: per chunk
    of 500, the chunk's new keys stored first in one acknowledged write
    (``bench.keys``, a fresh installation's pepper), then its events sealed."""
    from cdp.adapters.kafka.keys import KeyRing  # noqa: PLC0415  (absent before issue 16)
    from cdp.adapters.kafka.log import encode_records  # noqa: PLC0415

    ring = KeyRing(bootstrap, PREFIX + "keys", pepper=secrets.token_bytes(32))
    try:
        out: list[kafka_codec.Message] = []
        for i in range(0, len(records), 500):
            out += encode_records(records[i : i + 500], ring)
        return out
    finally:
        ring.close()


def produce(bootstrap: str, records: list[Record], sealed: bool) -> float:
    """Seconds the raw producer (acks=all, idempotent) takes to append ``records``
    (sealing them first when ``sealed``: keys stored, events encrypted)."""
    from kafka import KafkaProducer  # noqa: PLC0415

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        started = time.perf_counter()
        if sealed:
            messages = sealed_messages(bootstrap, records)
        else:
            messages = [kafka_codec.encode(record) for record in records]
        for message in messages:
            producer.send(
                PREFIX + kafka_topics.LOG,
                key=message.key,
                value=message.value,
                headers=message.headers,
            )
        producer.flush()
        return time.perf_counter() - started
    finally:
        producer.close()


def replay_read(bootstrap: str) -> tuple[int, float]:
    """(events, seconds) of reading the whole log back as events (fetch, unseal, decode)."""
    from cdp.adapters.kafka.log import KafkaEventLog  # noqa: PLC0415

    log = KafkaEventLog(bootstrap, PREFIX + kafka_topics.LOG)  # indexes ids: not timed
    try:
        started = time.perf_counter()
        count = sum(len(batch) for batch in log.read())
        return count, time.perf_counter() - started
    finally:
        log.close()


def identity_stage(records: list[Record]) -> float:
    """Events/s of the identity agent's step alone (decode, dedup, identity, outputs)."""
    batch = WorkerConfig.__dataclass_fields__["log_batch"].default
    received = datetime(2026, 11, 1, tzinfo=UTC)
    log = [LogRecord(i, r.data, received) for i, r in enumerate(records)]
    sequencer = Sequencer(identity.Rules())
    started = time.perf_counter()
    for i in range(0, len(log), batch):
        sequencer.process(log[i : i + batch])
    return len(log) / (time.perf_counter() - started)


def expected(records: list[Record]) -> dict[str, dict[str, Any]]:
    """customer id → what the worker must publish for it, as the embedded runtime has it."""
    runtime = EmbeddedRuntime()
    runtime.apply([StoredEvent(i, r.event) for i, r in enumerate(records)])
    runtime.flush()
    return snapshot.embedded_profiles(runtime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=("noida", "tansu"), default="noida")
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--loglevel", default="warning", help="the worker's log level")
    parser.add_argument("--keep-log", type=Path, help="copy the worker's log here")
    parser.add_argument("--plain", action="store_true", help="write the log in the clear")
    args = parser.parse_args()
    if args.customers < 1 or args.partitions < 1:
        parser.error("--customers and --partitions must be at least 1")

    records = records_of(args.customers)
    want = expected(records)
    identity_rate = identity_stage(records)
    with tempfile.TemporaryDirectory(prefix="cdp-bench-worker-") as tmp:
        work = Path(tmp)
        broker = start_broker(args.broker, work / "broker")
        worker: subprocess.Popen[bytes] | None = None
        try:
            kafka_admin.init_topics(broker.bootstrap, PREFIX, args.partitions)
            produce_s = produce(broker.bootstrap, records, sealed=not args.plain)
            read_n, read_s = replay_read(broker.bootstrap)
            log_path = work / "worker.log"
            started = time.perf_counter()
            worker = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "cdp.cli",
                    "--data-dir",
                    str(work / "data"),
                    "worker",
                    "--bootstrap",
                    broker.bootstrap,
                    "--prefix",
                    PREFIX,
                    "--partitions",
                    str(args.partitions),
                    "--broker-profile",
                    args.broker,
                    "--loglevel",
                    args.loglevel,
                ],
                stdout=log_path.open("wb"),
                stderr=subprocess.STDOUT,
            )
            first_seen: float | None = None
            cpu_at_first = cpu_total = 0.0
            with snapshot.Follower(broker.bootstrap, PREFIX) as follower:
                parity = snapshot.Parity(follower, want)
                while True:
                    elapsed = time.perf_counter() - started
                    if elapsed > args.timeout:
                        raise RuntimeError(
                            f"{len(want.keys() & follower.profiles.keys())}/{len(want)} "
                            f"profiles after {args.timeout}s; see {log_path}"
                        )
                    if follower.poll() and first_seen is None:
                        first_seen = time.perf_counter() - started
                        cpu_at_first = cpu_seconds(worker.pid)
                    if parity.check():
                        cpu_total = cpu_seconds(worker.pid)
                        break
                    if worker.poll() is not None:
                        raise RuntimeError(f"worker exited; see {log_path}")
            total = time.perf_counter() - started
        finally:
            if worker is not None:
                worker.terminate()
                worker.wait(60)
            broker.stop()
            if args.keep_log is not None:
                args.keep_log.write_bytes((work / "worker.log").read_bytes())
    n = len(records)
    form = "plain" if args.plain else "sealed"
    print(f"# worker catch-up: {machine()}, broker {args.broker}, {args.partitions} partitions")
    print(f"{'log events':<36} {n:>10,}   customers {len(want):,}   log {form}")
    print(f"{'raw producer (baseline)':<36} {n / produce_s:>10,.0f} events/s  ({produce_s:.2f} s)")
    print(f"{'replay read of the log':<36} {read_n / read_s:>10,.0f} events/s  ({read_s:.2f} s)")
    print(f"{'worker start → first profile':<36} {first_seen or 0:>10.2f} s")
    print(f"{'worker end to end':<36} {n / total:>10,.0f} events/s  ({total:.2f} s)")
    if first_seen is not None and total > first_seen:
        steady = total - first_seen
        print(f"{'worker after start-up':<36} {n / steady:>10,.0f} events/s  ({steady:.2f} s)")
    cpu_steady = cpu_total - cpu_at_first
    print(
        f"{'worker CPU (user+sys)':<36} {cpu_total:>10.2f} s, after start-up {cpu_steady:.2f} s"
        f" ({cpu_steady / n * 1e6:,.0f} µs/event)"
    )
    print(f"{'identity stage alone (in process)':<36} {identity_rate:>10,.0f} events/s")
    print(f"{'ratio worker / raw producer':<36} {(n / total) / (n / produce_s):>10.3f}")


if __name__ == "__main__":
    main()
