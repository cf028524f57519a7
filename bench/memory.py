"""Peak memory and speed of ``cdp ingest``, ``cdp replay --verify`` and ``cdp serve``.

The issue's two sizes (docs/benchmarks.md, "Memory"):

    python -m bench.memory                 # the 20k-shopper shop (seed 7, ~790k events)
    python -m bench.memory --large         # 1M customers / ~10.75M events (bench.large_data)

Each command runs as its own process on a fresh data directory; its peak
resident memory is the kernel's ``ru_maxrss`` of that child (``os.wait4``).
The same-run baseline is the peak of a bare ``cdp --help`` (the
interpreter and the package), printed with each figure's ratio to it. ``cdp
serve`` is started on the result and timed until a lookup answers
(``bench.lookup.serve_start``). Targets: 20k shop ingest and replay <= 500 MB,
serve <= 400 MB ready <= 3 s; 1M customers ingest and replay <= 3 GB, serve
<= 2 GB ready <= 30 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from bench import large_data
from bench.lookup import serve_start


def run(*args: str) -> tuple[float, int, str]:
    """Seconds, peak RSS (bytes) and stdout of ``cdp ARGS`` in a child process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "cdp.cli", *args], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"cdp {' '.join(args)} failed:\n{out}")
    return time.perf_counter() - started, usage.ru_maxrss * 1024, out


def inputs(root: Path, large: bool, customers: int) -> list[Path]:
    """The event files of the chosen size (generated once, kept in ``root``)."""
    root.mkdir(parents=True, exist_ok=True)
    if large:
        shoppers, contacts = root / "shoppers.jsonl", root / "contacts.jsonl"
        if not shoppers.exists():
            run("generate", str(shoppers), "--events", str(large_data.SHOPPER_EVENTS))
        if not contacts.exists():
            large_data.write_contacts(contacts)
        return [shoppers, contacts]
    shop = root / f"shop-{customers}.jsonl"
    if not shop.exists():
        run("generate", str(shop), "--customers", str(customers), "--seed", "7")
    return [shop]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--large", action="store_true", help="1M customers / ~10.75M events")
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=None, help="where inputs and data go")
    args = parser.parse_args()
    root = args.dir or Path(os.environ.get("CDP_BENCH_DIR", "/tmp/cdp-bench-memory"))
    root = root / ("large" if args.large else f"shop-{args.customers}")
    files = inputs(root, args.large, args.customers)
    data = root / "data"
    shutil.rmtree(data, ignore_errors=True)

    _, baseline, _ = run("--help")
    print(f"baseline: bare `cdp --help` peak RSS {baseline / 1e6:.0f} MB")

    def line(label: str, seconds: float, peak: int, events: int) -> None:
        print(
            f"{label:<22} {seconds:8.1f} s  {events / seconds:9,.0f} events/s  "
            f"peak RSS {peak / 1e6:7.0f} MB  ({peak / baseline:.1f}x baseline)"
        )

    seconds, peak, _ = run("--data-dir", str(data), "ingest", *map(str, files))
    con = duckdb.connect(str(data / "cdp.duckdb"), read_only=True)
    found = con.execute(
        "SELECT (SELECT count(*) FROM event_log), (SELECT count(*) FROM customers), "
        "(SELECT avg(length(profile_state) + length(lead_state)) FROM customers)"
    ).fetchall()
    con.close()
    events, customers, state_bytes = found[0]
    print(f"{events:,} events, {customers:,} customers, fold state {state_bytes:,.0f} B/customer")
    line("cdp ingest", seconds, peak, events)
    seconds, peak, out = run("--data-dir", str(data), "replay", "--verify")
    if "verified" not in out:
        sys.exit(f"replay --verify did not verify:\n{out}")
    line("cdp replay --verify", seconds, peak, events)
    serve_start(data)


if __name__ == "__main__":
    main()
