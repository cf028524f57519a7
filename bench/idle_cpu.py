"""CPU each process of the distributed runtime uses with no traffic (issue 15, item 13).

Starts a broker (tansu or noida-db), ``cdp kafka init``'s topics, two ``cdp
worker`` processes, ``cdp serve --kafka`` and ``cdp archive run``, sends a few
events so every consumer has fetched something, waits ``--settle`` seconds, then
reads each process's user + system CPU ticks from ``/proc/PID/stat`` (its
threads included) over ``--seconds`` and prints the share of one core each used.

    python -m bench.idle_cpu --broker noida     # or tansu; --seconds 20 --settle 30

Run it before and after a change of the consumers' settings to compare. Figures
depend on the machine and on what else runs on it: say so when quoting them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import free_port
from cdp.adapters.kafka.admin import init_topics
from tests.brokers import start as start_broker
from tests.integration.kafka.test_streams_worker import generated, produce

PREFIX = "idle."
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (all its threads), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (noida-db's launcher runs the broker as a child)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = [pid]
    if children.exists():
        for child in children.read_text().split():
            found += tree(int(child))
    return found


def measure(processes: dict[str, int], seconds: float) -> dict[str, float]:
    """Percent of one core each named process tree used over ``seconds``."""
    pids = {name: tree(pid) for name, pid in processes.items()}
    start = {name: sum(cpu_seconds(p) for p in ps) for name, ps in pids.items()}
    began = time.monotonic()
    time.sleep(seconds)
    took = time.monotonic() - began
    return {
        name: 100 * (sum(cpu_seconds(p) for p in ps) - start[name]) / took
        for name, ps in pids.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("tansu", "noida"), default="noida")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=30.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="idle-cpu-") as tmp:
        work = Path(tmp)
        broker = start_broker(args.broker, work / "broker")
        children: dict[str, subprocess.Popen[bytes]] = {}
        try:
            init_topics(broker.bootstrap, PREFIX, 4)
            kafka = ["--bootstrap", broker.bootstrap, "--prefix", PREFIX]

            def spawn(name: str, *command: str) -> None:
                log = (work / f"{name}.log").open("wb")
                children[name] = subprocess.Popen(
                    [sys.executable, "-m", "cdp.cli", "--data-dir", str(work / name), *command],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )

            for name in ("worker-1", "worker-2"):
                spawn(name, "worker", *kafka, "--broker-profile", args.broker,
                      "--metrics-port", "0")  # fmt: skip
            spawn("serve", "serve", "--kafka", broker.bootstrap, "--prefix", PREFIX,
                  "--port", str(free_port()))  # fmt: skip
            spawn("archiver", "archive", "run", "--out", str(work / "archive"), *kafka)
            produce(broker, PREFIX, generated(3))
            time.sleep(args.settle)
            dead = [name for name, p in children.items() if p.poll() is not None]
            if dead:
                raise SystemExit(f"exited early: {dead}; logs in {work}")
            pids = {args.broker: broker.process.pid} if broker.process else {}
            pids |= {name: p.pid for name, p in children.items()}
            usage = measure(pids, args.seconds)
        finally:
            for p in children.values():
                p.terminate()
            for p in children.values():
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
            broker.stop()
    print(f"idle CPU over {args.seconds:.0f} s on {args.broker} (% of one core)")
    for name, percent in usage.items():
        print(f"  {name:<10} {percent:6.1f} %")
    print(f"  {'total':<10} {sum(usage.values()):6.1f} %")


if __name__ == "__main__":
    main()
