"""Soak benchmark: official Segment SDK clients send while ``cdp serve`` is killed.

``--clients`` processes each run the official Python SDK
(``segment-analytics-python``, the ``Client`` class with ``--sdk-threads``
upload threads) and track/identify/page at ``--rate`` events/s each for
``--duration`` seconds against one ``cdp serve`` (embedded log, fresh data
directory, fixed port). Meanwhile the server is killed with SIGKILL at
``--kills`` random moments and restarted at once; the SDK retries with its own
backoff while it is down (its retry budget is set here so the run stays
bounded). When the clients have drained their queues the server is stopped
with SIGTERM and the log is read back.

What counts:

- **acknowledged**: the SDK's request function (``segment.analytics.consumer.post``,
  wrapped here) returned a 200 for the batch holding the event. Nothing else
  counts as an acknowledgement: a batch that timed out or whose connection
  died is not acknowledged, even if the server had stored it;
- **stored**: distinct ``message_id`` values in the ``event_log`` table after
  the run (the SDK gives every message its own ``messageId``);
- **lost** = acknowledged but not stored (must be 0);
- **duplicated** = a ``messageId`` stored more than once (must be 0: the SDK
  resends a batch whose answer it did not get, the log deduplicates);
- **unacknowledged but stored**: the server committed a batch and was killed
  before its answer left, or the SDK gave up on a batch that had been stored
  (fine: delivery is at-least-once, and the resend was deduplicated);
- **given up**: events the SDK reported through ``on_error`` (its retry budget
  ran out) and never saw acknowledged.

The baseline printed beside the figures, as the other benchmarks do, is the
ratio stored/acknowledged over the acknowledged events (1.000 when none was
lost). The run exits non-zero when an acknowledged event was lost or one was
stored twice.

    python -m bench.soak_collector [--duration 180] [--kills 20] [--clients 4]
        [--sdk-threads 2] [--rate 100] [--seed 12] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import duckdb

from bench.common import Server, machine
from cdp.config import Settings
from cdp.services.sources import SourceRegistry

SOURCE = "soak"
# The SDK's retry budget: its backoff is 0, 0.5, 1, 2, 4 ... 60 s between tries,
# so 12 tries span about 3.5 minutes, far more than a restart takes, and the
# total is capped so that a server that never comes back ends the run.
SDK_RETRIES = 12
SDK_MAX_BACKOFF_S = 300
SDK_TIMEOUT_S = 10


# ----------------------------------------------------------------- clients
def client_main(
    number: int, url: str, key: str, deadline: float, rate: float, threads: int, out: str
) -> None:
    """One client process: an SDK ``Client`` sending until ``deadline``, then drained."""
    import logging  # noqa: PLC0415 (a spawned process: import what it uses)

    import segment.analytics.consumer as consumer  # noqa: PLC0415
    from segment.analytics.client import Client  # noqa: PLC0415

    logging.getLogger("segment").setLevel(logging.CRITICAL)  # failures are counted here
    lock = threading.Lock()
    acked: set[str] = set()
    given_up: set[str] = set()
    requests = {"ok": 0, "failed": 0}
    original_post = consumer.post

    def recording_post(*args: Any, **kwargs: Any) -> Any:
        try:
            response = original_post(*args, **kwargs)  # raises for anything but a 2xx
        except Exception:
            with lock:
                requests["failed"] += 1
            raise
        with lock:
            requests["ok"] += 1
            if response.status_code == 200:
                acked.update(m["messageId"] for m in kwargs["batch"])
        return response

    consumer.post = recording_post

    def on_error(_error: Exception, batch: list[dict[str, Any]]) -> None:
        with lock:
            given_up.update(m["messageId"] for m in batch)

    client = Client(
        key,
        host=url,
        on_error=on_error,
        max_queue_size=1_000_000,  # the server is down for seconds: queue, don't drop
        upload_size=100,
        upload_interval=0.1,
        max_retries=SDK_RETRIES,
        max_total_backoff_duration=SDK_MAX_BACKOFF_S,
        max_rate_limit_duration=SDK_MAX_BACKOFF_S,
        timeout=SDK_TIMEOUT_S,
        thread=threads,
    )
    rng = random.Random(number)
    sent: list[str] = []
    refused = 0
    n = 0
    next_at = time.monotonic()
    while time.monotonic() < deadline:
        user = f"soak-{number}-{rng.randrange(500)}"
        kind = rng.random()
        if kind < 0.1:
            ok, message = client.identify(user, {"email": f"{user}@shop.example", "plan": "tea"})
        elif kind < 0.3:
            ok, message = client.page(user, "Shop", "Product", {"path": f"/p/{n % 97}"})
        else:
            ok, message = client.track(
                user, "Product Viewed", {"product_id": f"TEA-{n % 50}", "price": 1200}
            )
        if ok:
            sent.append(message["messageId"])
        else:
            refused += 1
        n += 1
        next_at += 1 / rate
        pause = next_at - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    client.flush()  # blocks until every queued batch was acknowledged or given up
    client.join()
    Path(out).write_text(
        json.dumps(
            {
                "sent": sent,
                "acked": sorted(acked),
                "given_up": sorted(given_up),
                "refused_by_queue": refused,
                "requests": requests,
            }
        )
    )


# -------------------------------------------------------------------- run
def stored_counts(data_dir: Path) -> dict[str, int]:
    """messageId → how many times the log holds it (the server is stopped)."""
    con = duckdb.connect(str(Settings(data_dir).database), read_only=True)
    try:
        rows = con.execute(
            "SELECT message_id, count(*) FROM event_log WHERE source = ? GROUP BY message_id",
            [SOURCE],
        ).fetchall()
    finally:
        con.close()
    return {str(mid): int(n) for mid, n in rows}


def run(args: argparse.Namespace, workdir: Path) -> int:
    settings = Settings(workdir / "data")
    key = SourceRegistry(settings.data_dir).add(SOURCE)
    server = Server(settings.data_dir, workdir / "serve.log")
    server.start()
    rng = random.Random(args.seed)
    began = time.monotonic()
    # CLOCK_MONOTONIC is system-wide on Linux: the clients compare against it too.
    spawn = multiprocessing.get_context("spawn")
    outs = [workdir / f"client-{i}.json" for i in range(args.clients)]
    clients = [
        spawn.Process(
            target=client_main,
            args=(
                i,
                server.url,
                key,
                time.monotonic() + args.duration,
                args.rate,
                args.sdk_threads,
                str(out),
            ),
        )
        for i, out in enumerate(outs)
    ]
    for process in clients:
        process.start()
    # Kill moments: uniformly at random over the sending time (not the first or
    # last 5%), so kills land while batches are in flight.
    moments = sorted(rng.uniform(0.05, 0.95) * args.duration for _ in range(args.kills))
    downtimes: list[float] = []
    for moment in moments:
        pause = began + moment - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        server.kill()
        killed = time.monotonic()
        server.start()
        downtimes.append(time.monotonic() - killed)
    for process in clients:
        process.join(timeout=args.duration + SDK_MAX_BACKOFF_S + 120)
        if process.is_alive():
            process.kill()
    seconds = time.monotonic() - began
    server.stop()
    crashed = [i for i, p in enumerate(clients) if p.exitcode != 0]
    if crashed:
        print(f"client processes {crashed} failed", file=sys.stderr)
        return 2

    sent: set[str] = set()
    acked: set[str] = set()
    given_up: set[str] = set()
    refused = requests_ok = requests_failed = 0
    for out in outs:
        data = json.loads(out.read_text())
        sent.update(data["sent"])
        acked.update(data["acked"])
        given_up.update(data["given_up"])
        refused += data["refused_by_queue"]
        requests_ok += data["requests"]["ok"]
        requests_failed += data["requests"]["failed"]
    counts = stored_counts(settings.data_dir)
    stored = set(counts)
    lost = acked - stored
    duplicated = [mid for mid, n in counts.items() if n > 1]
    unacked_stored = stored - acked
    strangers = stored - sent
    gave_up_unacked = given_up - acked

    print(
        f"soak benchmark on {machine()}: {args.clients} client processes × {args.sdk_threads} "
        f"upload threads of segment-analytics-python {version('segment-analytics-python')}, "
        f"{args.rate:g} events/s each for {args.duration:g} s; cdp serve SIGKILLed and "
        f"restarted {len(downtimes)} times (seed {args.seed})"
    )
    print(f"{'sent (accepted into the SDK queues)':<48} {len(sent):>10,}")
    print(f"{'acknowledged (200 for their batch)':<48} {len(acked):>10,}")
    print(f"{'stored (distinct messageIds in the log)':<48} {len(stored):>10,}")
    print(f"{'lost (acknowledged, not stored)':<48} {len(lost):>10,}")
    print(f"{'duplicated (a messageId stored twice)':<48} {len(duplicated):>10,}")
    print(f"{'unacknowledged but stored (at-least-once)':<48} {len(unacked_stored):>10,}")
    print(f"{'given up by the SDK, never acknowledged':<48} {len(gave_up_unacked):>10,}")
    print(f"{'refused by a full SDK queue':<48} {refused:>10,}")
    print(f"{'stored but never sent (must be 0)':<48} {len(strangers):>10,}")
    print(
        f"requests: {requests_ok:,} answered 2xx, {requests_failed:,} failed (refused "
        f"connections, resets, 5xx) and were retried by the SDK; {len(acked) / seconds:,.0f} "
        f"acknowledged events/s over {seconds:.0f} s including the drain"
    )
    if downtimes:
        print(
            f"kill → healthy again: p50 {statistics.median(downtimes):.2f} s, "
            f"max {max(downtimes):.2f} s"
        )
    kept = len(acked & stored) / len(acked) if acked else float("nan")
    print(f"ratio stored/acknowledged: {kept:.3f}")
    return 1 if lost or duplicated or strangers else 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=180, help="seconds of sending")
    parser.add_argument("--kills", type=int, default=20, help="SIGKILL + restart count")
    parser.add_argument("--clients", type=int, default=4, help="SDK client processes")
    parser.add_argument("--sdk-threads", type=int, default=2, help="upload threads per client")
    parser.add_argument("--rate", type=float, default=100, help="events/s per client")
    parser.add_argument("--seed", type=int, default=12, help="seeds the kill moments")
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    args = parser.parse_args(argv)
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="cdp-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        code = run(args, workdir)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
