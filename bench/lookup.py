"""Profile lookup benchmark: ``GET /v1/profiles/{type}:{value}`` over loopback.

Builds a data directory from the demo generator once (cached under the
system temp directory, ``cdp-bench-lookup/shop-<customers>``), then:

1. in-process baselines on a read-only connection: the analyst-view lookup
   ``cdp profile`` ran before (``views``) and ``cdp.read.lookup.lookup`` itself;
2. ``cdp serve`` in a subprocess with a fresh read token, driven by an
   open-loop load generator: request ``i`` is due at ``start + i / rate``
   whatever happened to the others, and its latency is measured from when it
   was due (so a stalled server cannot hide queueing). ``--clients``
   processes share the rate, each with a pool of threads holding keep-alive
   httpx clients. Identifiers mix every kind (email, phone, user_id,
   anonymous_id, line, x, instagram, ``cus_``), each request a different
   customer as far as the shop allows (``cold``: the answer cache cannot help),
   then a second phase where requests repeat a small popular set (``warm``).

Printed: p50/p95/p99/max latency, achieved rate and errors per phase, and the
read model's open time and memory per cached entry. ``--serve-start DATA_DIR``
instead starts ``cdp serve`` on an existing data directory and prints how long
until a lookup answers and the server's resident memory then.

    python -m bench.lookup [--customers 5200] [--rate 500] [--seconds 20] [--clients 2]
    python -m bench.lookup --serve-start DATA_DIR
"""

from __future__ import annotations

import argparse
import gc
import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from http.client import HTTPConnection
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import duckdb

from bench.collector import Server
from bench.common import machine
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.read import lookup
from cdp.read.model import ReadModel
from cdp.read.reader import ReadModelLookups, engine_connection
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from cdp.services.tokens import FILE_NAME, TokenRegistry

CACHE = Path(tempfile.gettempdir()) / "cdp-bench-lookup"


def shop(customers: int) -> Settings:
    """The cached data directory of a generated shop of ``customers`` people."""
    settings = Settings(CACHE / f"shop-{customers}")
    done = settings.data_dir / "complete"
    if done.exists():
        with Engine.open(settings) as engine:
            lookup.ensure_indexes(engine.con)  # what cdp serve does at start-up
        return settings
    shutil.rmtree(settings.data_dir, ignore_errors=True)
    print(f"building a shop of {customers:,} customers in {settings.data_dir} (once)...")
    started = time.perf_counter()
    raws = iter_events(GenerateConfig(customers=customers))
    with Engine.open(settings) as engine:
        report = ingest(((f"event {i}", raw) for i, raw in enumerate(raws)), engine, source="bench")
        lookup.ensure_indexes(engine.con)
    done.write_text(f"{report.accepted}\n")
    print(f"  {report.accepted:,} events in {time.perf_counter() - started:.0f} s")
    return settings


def identifiers(con: duckdb.DuckDBPyConnection, count: int, seed: int = 1) -> list[str]:
    """``count`` identifiers, every kind mixed in, one customer each as far as possible."""
    rows = con.execute(
        "SELECT identifier, customer_id FROM identity_graph WHERE identifier <> '' "
        "ORDER BY identifier"
    ).fetchall()
    rng = random.Random(seed)
    rng.shuffle(rows)
    by_customer: dict[str, str] = {}
    for identifier, customer in rows:
        by_customer.setdefault(customer, identifier)
    picked = list(by_customer.values())
    for n, customer in enumerate(list(by_customer)[: len(picked) // 8]):
        picked[n] = customer  # some by cus_ id
    rng.shuffle(picked)
    return [picked[i % len(picked)] for i in range(count)]


def views_lookup(con: duckdb.DuckDBPyConnection, text: str) -> None:
    """What ``cdp profile`` did before: the analyst views, no indexes, no maintained clock."""
    customer, _ = lookup.resolve(con, text)
    con.execute("SELECT * FROM profiles WHERE customer_id = ?", [customer]).fetchall()
    con.execute("SELECT lead_state FROM customers WHERE customer_id = ?", [customer]).fetchall()
    con.execute("SELECT as_of FROM log_clock").fetchall()
    con.execute(
        "SELECT identifier FROM identities WHERE customer_id = ? ORDER BY identifier", [customer]
    ).fetchall()
    con.execute(
        'SELECT "offset", timestamp, type, event, message_id, source FROM events '
        'WHERE customer_id = ? ORDER BY timestamp DESC, "offset" DESC LIMIT 10',
        [customer],
    ).fetchall()


def percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]

    return {"p50": at(0.5), "p95": at(0.95), "p99": at(0.99), "max": ordered[-1]}


def in_process(label: str, fn: Callable[[str], Any], texts: list[str]) -> None:
    latencies = []
    for text in texts:
        began = time.perf_counter()
        fn(text)
        latencies.append(time.perf_counter() - began)
    p = percentiles(latencies)
    print(
        f"  in-process {label:<24} {len(texts):>6} lookups   p50 {p['p50'] * 1e3:8.3f} ms"
        f"   p99 {p['p99'] * 1e3:8.3f} ms"
    )


def rss() -> int:
    """Resident memory of this process in bytes (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def read_model(settings: Settings, texts: list[str]) -> None:
    """Open time and memory of the read model, and lookups through it in-process:
    cold (every customer read from DuckDB) and cached."""
    with Engine.open(settings) as engine:
        zone = lookup.session_zone(engine.con)
        assert zone is not None
        gc.collect()
        before = rss()
        started = time.perf_counter()
        model = ReadModel.load(engine.con.cursor(), engine.runtime.config.scoring, zone)
        took = time.perf_counter() - started
        gc.collect()
        print(
            f"  read model: opened in {took:.2f} s, RSS +{(rss() - before) / 1e6:.0f} MB "
            f"(nothing per customer; cache of {model.capacity:,} entries)"
        )
        model.close()
        del model
        source = engine_connection(engine)
        reader = ReadModelLookups(settings, lambda: source)
        reader.warm()
        try:
            gc.collect()
            before = rss()
            in_process("read model (cold)", lambda t: reader.profile(t, 10), texts)
            in_process("read model (cached)", lambda t: reader.profile(t, 10), texts[:50] * 20)
            gc.collect()
            held = len(reader.model) if reader.model else 0
            grown = rss() - before
            print(
                f"  read model after {len(texts):,} lookups: {held:,} entries cached, "
                f"RSS +{grown / 1e6:.0f} MB ({grown / max(held, 1):,.0f} B per cached entry)"
            )
        finally:
            reader.close()


def serve_start(data_dir: Path) -> None:
    """``cdp serve`` on ``data_dir``: seconds from start until a lookup answers, and its
    resident memory then (VmRSS, VmHWM)."""
    con = duckdb.connect(str(Settings(data_dir).database), read_only=True)
    try:
        texts = identifiers(con, 1)
    finally:
        con.close()
    (data_dir / FILE_NAME).unlink(missing_ok=True)
    token = TokenRegistry(data_dir).add("bench", ["profiles:read"])
    server = Server(data_dir, CACHE / "serve.log")
    command = [sys.executable, "-m", "cdp.cli", "--data-dir", str(data_dir)]
    command += ["serve", "--port", str(server.port)]
    started = time.monotonic()
    with server.log_path.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        while True:
            if process.poll() is not None:
                sys.exit(f"cdp serve exited; see {server.log_path}")
            try:
                http = HTTPConnection("127.0.0.1", server.port, timeout=30)
                path = f"/v1/profiles/{quote(texts[0], safe=':')}"
                http.request("GET", path, headers={"authorization": f"Bearer {token}"})
                if http.getresponse().status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.05)
        ready = time.monotonic() - started
        status = Path(f"/proc/{process.pid}/status").read_text().splitlines()
        memory = {
            k: v.split()[0] for k, _, v in (line.partition(":") for line in status) if v.strip()
        }
        print(
            f"cdp serve on {data_dir}: ready (a lookup answered) in {ready:.2f} s, "
            f"VmRSS {int(memory['VmRSS']) / 1e3:.0f} MB, VmHWM {int(memory['VmHWM']) / 1e3:.0f} MB"
        )
        print("  targets: 20k-shopper shop <= 400 MB, ready <= 3 s; 1M customers <= 2 GB, <= 30 s")
    finally:
        process.terminate()
        process.wait(120)


# ----------------------------------------------------------------- load
def _client(
    url: str, token: str, paths: list[str], rate: float, start: Any, threads: int, out: Any
) -> None:
    """One load process: ``paths[i]`` is due at ``start + i / rate`` (wall clock).

    Its threads connect first and report ready on ``out``; the parent then sets
    ``start`` (so slow process start-up is never counted as latency).
    """
    lock = threading.Lock()
    state = {"next": 0}
    unsent = [0]
    connected = threading.Barrier(threads, action=lambda: out.put("ready"))
    latencies: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        # http.client over one keep-alive connection: a tenth of httpx's CPU per
        # request, which matters when the load generator shares the server's cores.
        headers = {"authorization": f"Bearer {token}"}
        parsed = urlsplit(url)
        http = HTTPConnection(parsed.hostname, parsed.port, timeout=30)
        try:
            http.request("GET", "/health")
            http.getresponse().read()
            connected.wait()
            while start.value == 0:
                time.sleep(0.01)
            start_at = start.value
            give_up = start_at + 3 * len(paths) / rate + 5
            while True:
                with lock:
                    i = state["next"]
                    state["next"] += 1
                if i >= len(paths):
                    return
                if time.time() > give_up:  # saturated: stop rather than run for ever
                    with lock:
                        unsent[0] += 1
                    continue
                due = start_at + i / rate
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                http.request("GET", paths[i], headers=headers)
                answer = http.getresponse()
                body = answer.read()
                done = time.time()
                with lock:
                    latencies.append(done - due)
                    if answer.status != 200:
                        errors.append(f"{answer.status} {body[:120]!r}")
        finally:
            http.close()

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    errors.extend(["not sent: the server fell too far behind"] * unsent[0])
    out.put((latencies, errors, time.time()))


def drive(
    url: str, token: str, texts: list[str], rate: float, clients: int, threads: int
) -> tuple[list[float], list[str], float]:
    """Send every lookup at ``rate`` in total from ``clients`` processes; (latencies, errors, s)."""
    paths = [f"/v1/profiles/{quote(t, safe=':')}" for t in texts]
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    start = context.Value("d", 0.0)
    processes = [
        context.Process(
            target=_client,
            args=(url, token, paths[n::clients], rate / clients, start, threads, out),
        )
        for n in range(clients)
    ]
    for process in processes:
        process.start()
    for _ in processes:  # every process started and connected
        assert out.get() == "ready"
    start_at = time.time() + 0.2
    start.value = start_at
    results = [out.get() for _ in processes]
    for process in processes:
        process.join()
    latencies = [v for r in results for v in r[0]]
    errors = [e for r in results for e in r[1]]
    return latencies, errors, max(r[2] for r in results) - start_at


def report(label: str, latencies: list[float], errors: list[str], seconds: float) -> None:
    p = percentiles(latencies)
    print(
        f"  HTTP {label:<6} {len(latencies):>6} requests {len(latencies) / seconds:7.0f} req/s   "
        f"p50 {p['p50'] * 1e3:6.2f}  p95 {p['p95'] * 1e3:6.2f}  p99 {p['p99'] * 1e3:6.2f}  "
        f"max {p['max'] * 1e3:7.2f} ms   errors {len(errors)}"
    )
    if errors:
        print(f"    e.g. {errors[0]}")


def run(customers: int, rate: float, seconds: float, clients: int, threads: int) -> None:
    settings = shop(customers)
    (settings.data_dir / FILE_NAME).unlink(missing_ok=True)
    token = TokenRegistry(settings.data_dir).add("bench", ["profiles:read"])
    con = Engine.open_read_only(settings)
    try:
        events = con.execute("SELECT count(*) FROM event_log").fetchone()[0]  # type: ignore[index]
        people = con.execute("SELECT count(*) FROM customers").fetchone()[0]  # type: ignore[index]
        total = int(rate * seconds)
        cold = identifiers(con, total)
        print(f"profile lookup benchmark on {machine()}: {people:,} customers, {events:,} events")
        in_process("views (before)", lambda t: views_lookup(con, t), cold[:100])
        clock = lookup.LogClock()
        in_process(
            "cdp.read.lookup.lookup", lambda t: lookup.lookup(con, t, clock=clock), cold[:1000]
        )
    finally:
        con.close()
    read_model(settings, cold[:3000])
    server = Server(settings.data_dir, CACHE / "serve.log")
    server.start()
    try:
        drive(server.url, token, cold[:200], 100, 1, 4)  # warm-up: connections, page cache
        latencies, errors, took = drive(server.url, token, cold, rate, clients, threads)
        report("cold", latencies, errors, took)
        popular = cold[:50]
        warm = [popular[i % len(popular)] for i in range(total // 2)]
        latencies, errors, took = drive(server.url, token, warm, rate, clients, threads)
        report("warm", latencies, errors, took)
        print(f"  load average {os.getloadavg()[0]:.1f} at the end")
    finally:
        server.stop()
    print(f"  target: p99 <= 10 ms at {rate:.0f} req/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5_200)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument("--threads", type=int, default=16, help="threads per load process")
    parser.add_argument(
        "--serve-start",
        type=Path,
        metavar="DATA_DIR",
        help="only measure cdp serve on DATA_DIR: ready time and resident memory",
    )
    args = parser.parse_args(argv)
    if args.serve_start is not None:
        serve_start(args.serve_start)
        return
    run(args.customers, args.rate, args.seconds, args.clients, args.threads)


if __name__ == "__main__":
    sys.exit(main())
