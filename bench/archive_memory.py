"""Peak memory of the Parquet archiver and of ``cdp sql --archive`` (issue 15, item 14).

Starts a Kafka-protocol broker from PyPI (``tests.brokers``, noida by
default), builds the generated shop in an embedded data directory
(``--customers``, about 36 events each), produces its log to ``cdp.log``
record for record and publishes its projections as the worker does, each
profile snapshot ``--snapshots`` times (a worker republishes a customer's
snapshot after every batch that touched it, so the archived profile history
is many times the customer count). Then, each as its own process, with its
peak RSS:

- ``cdp archive run --once`` from the full topics into a fresh archive;
- ``cdp sql --archive DIR`` with a count and a group-by over the events;
- ``cdp --help`` as the baseline (the interpreter and the package).

Peak RSS is ``/usr/bin/time -f %M`` of each child (see ``run``).

    python -m bench.archive_memory [--broker noida|tansu] [--customers 720] [--snapshots 20]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine
from streams.messages import profile_value
from tests.brokers import start as start_broker
from tests.integration.kafka.test_archive_helpers import (
    build_reference,
    create_topics,
    log_rows,
    produce_log,
    producer,
    projections,
    publish_projections,
)

PREFIX = "bench."


def run(*args: str) -> tuple[float, int, str]:
    """Seconds, peak RSS (bytes) and stdout of ``cdp ARGS`` in a child process.

    Measured by ``/usr/bin/time`` rather than ``wait4`` here: Linux carries a
    process's peak RSS across ``exec``, so a child forked from this process
    (which holds the generated data set) would report this process's peak.
    """
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "cdp.cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"cdp {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return time.perf_counter() - started, peak_kb * 1024, done.stdout


def republish(bootstrap: str, settings: object, times: int) -> int:
    """Publish every customer's snapshot ``times`` more times; return how many records."""
    data = projections(settings)  # type: ignore[arg-type]
    sender = producer(bootstrap)
    sent = 0
    try:
        for _ in range(times):
            for customer, row in data["customers"].items():
                sender.send(f"{PREFIX}profiles", profile_value(row), customer.encode())
                sent += 1
        sender.flush()
    finally:
        sender.close()
    return sent


def mb(value: int) -> str:
    return f"{value / 1e6:,.0f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("noida", "tansu"), default="noida")
    parser.add_argument("--customers", type=int, default=720)
    parser.add_argument("--snapshots", type=int, default=20)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory(prefix="cdp-archive-memory-") as work:
        root = Path(work)
        broker = start_broker(args.broker, root / "broker")
        try:
            settings = build_reference(root / "reference", customers=args.customers)
            events = len(log_rows(settings))
            create_topics(broker.bootstrap, PREFIX, 4)
            produce_log(broker.bootstrap, f"{PREFIX}log", settings)
            publish_projections(broker.bootstrap, PREFIX, settings, stale_first=False)
            snapshots = republish(broker.bootstrap, settings, args.snapshots - 1)
            print(
                f"{args.broker}: {events:,} events, {args.customers:,} customers, "
                f"{snapshots:,} extra profile snapshots"
            )
            _, base, _ = run("--help")
            print(f"baseline `cdp --help`:           peak {mb(base)}")
            archive = root / "archive"
            seconds, peak, _ = run(
                "archive", "run", "--once", "--bootstrap", broker.bootstrap,
                "--prefix", PREFIX, "--out", str(archive),
            )  # fmt: skip
            size = sum(f.stat().st_size for f in archive.rglob("*") if f.is_file())
            print(
                f"`cdp archive run --once`:        peak {mb(peak)}  {seconds:6.1f} s  "
                f"(archive {size / 1e6:.1f} MB)"
            )
            for sql in (
                "SELECT count(*) FROM events",
                "SELECT event, count(*) FROM events GROUP BY 1",
                "SELECT count(*) FROM profiles",
            ):
                seconds, peak, _ = run("--json", "sql", "--archive", str(archive), sql)
                print(f"`cdp sql --archive` {sql[:40]!r:44} peak {mb(peak)}  {seconds:6.1f} s")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
