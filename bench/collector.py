"""Collector benchmark: sustained events/s through ``POST /v1/batch`` on loopback.

Starts ``cdp serve`` as a subprocess on a free port with a fresh data
directory (the durable embedded log, group commit, projections folded in
process), then ``--clients`` threads, each with its own keep-alive httpx
client, post batches of ``--batch`` generated events (``cdp.demo.generate``,
realistic payloads, serialised with orjson before timing) until ``--events``
are acknowledged. A 503 is retried after its ``Retry-After``, as an SDK would,
and counts towards that request's latency. Printed:

- events/s acknowledged (a 2xx means durable in the log) and the p50/p99
  acknowledgement latency per request;
- beside it, measured in the same run on the same bodies, the raw
  parse-and-validate rate of the collector (``cdp.services.collector.parse`` +
  ``cdp.services.collector.to_records`` in-process, one core, no HTTP, no log), and the
  ratio of the two.

With ``--kafka noida|tansu`` the benchmark starts that broker (``tests.brokers``),
creates the topics (prefix ``bench.``) and runs ``cdp serve --kafka``: a 2xx
then means the broker acknowledged the request's events on ``bench.log``
(sealed under their identifiers' keys where the code seals, issue 16); no
worker runs, so the figure is the Kafka-mode collector alone.

    python -m bench.collector [--events 100000] [--clients 8] [--batch 100] [--keep DIR]
                              [--kafka noida|tansu]
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson

from bench.common import Server, line, machine, timed
from bench.idle_cpu import cpu_seconds
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.runtime.engine import Engine
from cdp.services import collector
from cdp.services.sources import SourceRegistry

SENT_AT = "2026-11-01T00:00:00Z"
KAFKA_PREFIX = "bench."


def make_bodies(events: int, batch: int, extra: int) -> tuple[list[bytes], list[bytes]]:
    """(timed bodies holding ``events`` events, warm-up bodies holding ``extra`` more)."""
    wanted = events + extra
    generated = list(
        itertools.islice(iter_events(GenerateConfig(events=wanted * 11 // 10)), wanted)
    )
    if len(generated) < wanted:
        sys.exit(f"the generator gave {len(generated):,} events, {wanted:,} were asked for")
    for raw in generated:
        raw.pop("receivedAt", None)  # the server's to set, as with any SDK

    def bodies(raws: list[dict[str, object]]) -> list[bytes]:
        return [
            orjson.dumps({"batch": raws[i : i + batch], "sentAt": SENT_AT})
            for i in range(0, len(raws), batch)
        ]

    return bodies(generated[extra:]), bodies(generated[:extra])


def parse_and_validate(bodies: list[bytes]) -> int:
    """What the collector does to a request body before it reaches the log, in-process."""
    now = datetime.now(UTC)
    count = 0
    for body in bodies:
        items, _ = collector.parse("batch", body)
        count += len(collector.to_records(items, now, "bench"))
    return count


@dataclass
class Load:
    """What the client threads measured."""

    latencies: list[float] = field(default_factory=list)  # seconds, first try → 2xx
    retries: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def post_all(url: str, key: str, bodies: list[bytes], clients: int) -> tuple[Load, float]:
    """Post every body (client ``i`` takes bodies ``i``, ``i + clients``...); (load, seconds)."""
    load = Load()
    start = threading.Barrier(clients + 1)

    def client(share: list[bytes]) -> None:
        mine: list[float] = []
        retries = 0
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=url, auth=(key, ""), timeout=60) as http:
            http.get("/health")  # connect before the clock starts
            start.wait()
            for body in share:
                began = time.perf_counter()
                while True:
                    answer = http.post("/v1/batch", content=body, headers=headers)
                    if answer.status_code != 503:
                        break
                    retries += 1
                    time.sleep(float(answer.headers.get("retry-after", "1")))
                mine.append(time.perf_counter() - began)
                if answer.status_code != 200:
                    with load.lock:
                        load.failures.append(f"{answer.status_code}: {answer.text[:200]}")
        with load.lock:
            load.latencies.extend(mine)
            load.retries += retries

    threads = [
        threading.Thread(target=client, args=(bodies[i::clients],), daemon=True)
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return load, time.perf_counter() - began


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def kafka_stored(bootstrap: str) -> int:
    """Records on the benchmark's log topic (its high water)."""
    from cdp.adapters.kafka.log import KafkaEventLog  # noqa: PLC0415

    log = KafkaEventLog(bootstrap, KAFKA_PREFIX + "log")
    try:
        return log.high_water()
    finally:
        log.close()


def run(
    events: int, workdir: Path, clients: int = 8, batch: int = 100, kafka: str | None = None
) -> dict[str, float]:
    bodies, warm_up = make_bodies(events, batch, extra=clients * batch)
    parsed, parse_s = timed(lambda: parse_and_validate(bodies))
    settings = Settings(workdir / "data")
    key = SourceRegistry(settings.data_dir).add("bench")
    broker = None
    extra: tuple[str, ...] = ()
    if kafka is not None:
        from cdp.adapters.kafka import admin as kafka_admin  # noqa: PLC0415
        from tests.brokers import start as start_broker  # noqa: PLC0415

        broker = start_broker(kafka, workdir / "broker")
        kafka_admin.init_topics(broker.bootstrap, KAFKA_PREFIX, 4)
        extra = ("--kafka", broker.bootstrap, "--prefix", KAFKA_PREFIX)
    try:
        server = Server(settings.data_dir, workdir / "serve.log", extra=extra)
        server.start()
        try:
            post_all(server.url, key, warm_up, clients)
            assert server.process is not None
            cpu_before = cpu_seconds(server.process.pid)
            load, http_s = post_all(server.url, key, bodies, clients)
            serve_cpu = cpu_seconds(server.process.pid) - cpu_before
            health = httpx.get(f"{server.url}/health", timeout=10).json()
        finally:
            server.stop()
        if load.failures:
            sys.exit(f"{len(load.failures)} requests failed, e.g. {load.failures[0]}")
        if broker is not None:
            stored: tuple[int, ...] | None = (kafka_stored(broker.bootstrap),)
        else:
            con = Engine.open_read_only(settings)
            try:
                stored = con.execute("SELECT count(*) FROM event_log").fetchone()
            finally:
                con.close()
    finally:
        if broker is not None:
            broker.stop()

    p50, p99 = (percentile(load.latencies, f) * 1000 for f in (0.50, 0.99))
    http_rate, parse_rate = events / http_s, parsed / parse_s
    print(
        f"collector benchmark on {machine()}: {events:,} generated events in "
        f"{len(bodies):,} /v1/batch requests of {batch}, {clients} concurrent clients on loopback"
        + (f", cdp serve --kafka ({kafka})" if kafka else "")
    )
    print(line("raw parse + validate (parse + to_records)", parsed, parse_s))
    target = "Kafka log (acks=all)" if kafka else "durable log + projections"
    print(line(f"HTTP /v1/batch → {target}", events, http_s))
    print(
        f"acknowledgement latency per request: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
        f"({load.retries} retries after 503)"
    )
    print(
        f"group commits: {health.get('group_commits', 0):,} (warm-up included); "
        f"events in the log after SIGTERM: {stored[0] if stored else 0:,}"
    )
    print(f"ratio HTTP / raw parse+validate: {http_rate / parse_rate:.2f}")
    print(
        f"cdp serve CPU (user+sys) while timed: {serve_cpu:.2f} s ({serve_cpu / events * 1e6:,.0f} µs/event)"
    )
    return {
        "events": events,
        "http_rate": http_rate,
        "parse_rate": parse_rate,
        "ratio": http_rate / parse_rate,
        "p50_ms": p50,
        "p99_ms": p99,
        "serve_cpu_s": serve_cpu,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000, help="events to post (timed)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--batch", type=int, default=100, help="events per request")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    parser.add_argument(
        "--kafka", choices=("noida", "tansu"), help="cdp serve --kafka on this broker"
    )
    args = parser.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    try:
        run(args.events, workdir, args.clients, args.batch, args.kafka)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
