"""Distributed runtime end to end: collector → Kafka → faust → profile lookup.

Starts, on this machine: a Kafka-protocol broker from PyPI (``noida`` by
default, or ``tansu``), ``cdp kafka init``, one ``cdp worker`` and one
``cdp serve --kafka`` (each a real subprocess), then:

1. **Raw producer baseline**: the same kafka-python client (acks=all,
   idempotent) sending the same event bytes to a scratch topic, in this
   process: what the broker and client can take.
2. **End to end**: ``--events`` events in ``/v1/batch`` requests of
   ``--batch`` from ``--clients`` threads. Every batch starts with a page view
   of a new anonymous id; when the batch is acknowledged, a poller asks
   ``GET /v1/profiles/anonymous_id:<id>`` until it answers 200. Freshness is
   acknowledged → visible in the lookup, p50/p99 over those probes. End-to-end
   throughput is events / (first send → last probe visible).

``python -m bench.freshness [--broker noida|tansu] [--events 3000]``
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.common import machine
from cdp.adapters.kafka import admin as kafka_admin
from tests.brokers import start as start_broker
from tests.loopback import free_port

PREFIX = "bench."


def cdp_command(data_dir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "cdp.cli", "--data-dir", str(data_dir), *args]


def run_json(data_dir: Path, *args: str) -> Any:
    out = subprocess.run(
        cdp_command(data_dir, "--json", *args), check=True, capture_output=True, text=True
    )
    return orjson.loads(out.stdout)


def page(anonymous_id: str, n: int) -> dict[str, Any]:
    return {
        "type": "page",
        "name": "bench",
        "anonymousId": anonymous_id,
        "messageId": f"bench-{uuid.uuid4().hex}",
        "properties": {"path": f"/bench/{n}"},
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def raw_producer(bootstrap: str, payloads: list[bytes]) -> float:
    """Events/s of kafka-python sending ``payloads`` (acks=all, idempotent), flushed."""
    from kafka import KafkaProducer  # noqa: PLC0415
    from kafka.admin import KafkaAdminClient, NewTopic  # noqa: PLC0415

    topic = f"{PREFIX}raw-baseline"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    try:
        started = time.perf_counter()
        for data in payloads:
            producer.send(topic, data)
        producer.flush()
        return len(payloads) / (time.perf_counter() - started)
    finally:
        producer.close()


class Probe:
    """Pending lookups: anonymous id → acknowledged-at; visible-at once found."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.pending: dict[str, float] = {}
        self.freshness: list[float] = []
        self.last_visible = 0.0
        self.lock = threading.Lock()
        self.done = threading.Event()

    def add(self, anonymous_id: str, acked_at: float) -> None:
        with self.lock:
            self.pending[anonymous_id] = acked_at

    def run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.url, headers=headers, timeout=10) as client:
            while not (self.done.is_set() and not self.pending):
                with self.lock:
                    waiting = list(self.pending.items())
                if not waiting:
                    time.sleep(0.005)
                    continue
                for anonymous_id, acked_at in waiting:
                    response = client.get(f"/v1/profiles/anonymous_id:{anonymous_id}")
                    if response.status_code == 200:
                        now = time.perf_counter()
                        with self.lock:
                            self.pending.pop(anonymous_id, None)
                            self.freshness.append(now - acked_at)
                            self.last_visible = now
                    elif response.status_code != 404:
                        raise RuntimeError(f"lookup failed: {response.status_code} {response.text}")


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("noida", "tansu"), default="noida")
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="events/s to offer (0: as fast as the collector acknowledges)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="cdp-freshness-"))
    data = work / "data"
    broker = start_broker(args.broker, work / "broker")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        kafka_admin.init_topics(broker.bootstrap, PREFIX, args.partitions)
        write_key = run_json(data, "sources", "add", "bench")["write_key"]
        token = run_json(data, "tokens", "add", "bench", "--scope", "profiles:read")["token"]
        env = {**os.environ, "CDP_KAFKA_PREFIX": PREFIX}
        logs = work / "logs"
        logs.mkdir()
        worker_log = (logs / "worker.log").open("wb")
        serve_log = (logs / "serve.log").open("wb")
        processes.append(
            subprocess.Popen(
                cdp_command(
                    work / "worker",
                    "worker",
                    "--bootstrap",
                    broker.bootstrap,
                    "--partitions",
                    str(args.partitions),
                    "--broker-profile",
                    args.broker,
                    "--prefix",
                    PREFIX,
                ),
                stdout=worker_log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        processes.append(
            subprocess.Popen(
                cdp_command(
                    data,
                    "serve",
                    "--kafka",
                    broker.bootstrap,
                    "--prefix",
                    PREFIX,
                    "--port",
                    str(port),
                ),
                stdout=serve_log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        wait_http(url)

        # Warm-up: wait until the worker has joined and one event round-trips.
        probe = Probe(url, token)
        warm = f"warm-{uuid.uuid4().hex}"
        with httpx.Client(base_url=url, auth=(write_key, ""), timeout=30) as client:
            assert client.post("/v1/page", json=page(warm, 0)).status_code == 200
        probe.add(warm, time.perf_counter())
        poller = threading.Thread(target=probe.run, daemon=True)
        poller.start()
        deadline = time.monotonic() + 180
        while probe.pending and time.monotonic() < deadline:
            time.sleep(0.1)
        if probe.pending:
            raise RuntimeError(f"worker never made the warm-up event visible; see {logs}")
        probe.freshness.clear()

        batches = args.events // args.batch
        bodies = []
        for b in range(batches):
            anonymous_id = f"fresh-{uuid.uuid4().hex}"
            items = [page(anonymous_id, b)]
            items += [page(f"other-{uuid.uuid4().hex}", i) for i in range(args.batch - 1)]
            bodies.append((anonymous_id, {"batch": items}))
        raw_rate = raw_producer(
            broker.bootstrap, [orjson.dumps(item) for _, body in bodies for item in body["batch"]]
        )

        acks: list[float] = []
        started = time.perf_counter()

        gap = args.batch * args.clients / args.rate if args.rate else 0.0

        def client_loop(mine: list[tuple[str, dict[str, Any]]]) -> None:
            with httpx.Client(base_url=url, auth=(write_key, ""), timeout=60) as client:
                for n, (anonymous_id, body) in enumerate(mine):
                    due = started + n * gap
                    if gap and time.perf_counter() < due:
                        time.sleep(due - time.perf_counter())
                    sent = time.perf_counter()
                    response = client.post("/v1/batch", json=body)
                    if response.status_code != 200:
                        raise RuntimeError(f"batch refused: {response.status_code} {response.text}")
                    acked = time.perf_counter()
                    acks.append(acked - sent)
                    probe.add(anonymous_id, acked)

        threads = [
            threading.Thread(target=client_loop, args=(bodies[i :: args.clients],))
            for i in range(args.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent_all = time.perf_counter()
        probe.done.set()
        poller.join(timeout=600)
        total = batches * args.batch
        end_to_end = total / (probe.last_visible - started)
        print(f"distributed runtime end to end ({machine()}, broker {args.broker})")
        offered = (
            f"offered {args.rate:,.0f} events/s" if args.rate else "offered as fast as acknowledged"
        )
        print(
            f"  events {total:,} in {batches:,} batches of {args.batch}, {args.clients} clients, "
            + offered
        )
        print(f"  raw producer (kafka-python, acks=all) {raw_rate:>10,.0f} events/s")
        print(
            f"  collector acknowledged                {total / (sent_all - started):>10,.0f} events/s"
        )
        print(f"  end to end (ack → visible in lookup)   {end_to_end:>10,.0f} events/s")
        print(f"  ratio end-to-end / raw producer       {end_to_end / raw_rate:>10.4f}")
        print(
            f"  ack latency  p50 {statistics.median(acks) * 1000:7.1f} ms  "
            f"p99 {percentile(acks, 0.99) * 1000:7.1f} ms"
        )
        print(
            f"  freshness    p50 {statistics.median(probe.freshness) * 1000:7.1f} ms  "
            f"p99 {percentile(probe.freshness, 0.99) * 1000:7.1f} ms  "
            f"max {max(probe.freshness) * 1000:7.1f} ms  (target p99 < 2000 ms)"
        )
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        broker.stop()


if __name__ == "__main__":
    main()
