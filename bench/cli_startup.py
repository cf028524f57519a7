"""CLI start-up time: ``cdp --help`` and ``cdp status`` against ``python -c pass``.

Each command runs as a fresh process, as a user types it. The runs are
interleaved (one of each command per round) so that a load change on the
machine affects every command alike; the figure is the median wall time, and
the ratio divides it by the median of ``python -c pass`` measured in the same
run (the interpreter's own start-up: the floor no CLI can go under).

    python -m bench.cli_startup [--runs 21] [--data-dir DIR] [--source DIR]

Without ``--data-dir`` a small data directory is generated and ingested first
(``cdp generate --customers 50`` + ``cdp ingest``), so ``status`` opens a real
database. ``--source DIR`` times the code of another checkout (e.g. the
previous commit: ``git archive HEAD~1 | tar -x -C /tmp/before``) with this
virtualenv, by putting DIR first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import machine

CDP = str(Path(sys.executable).with_name("cdp"))


def wall(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one run of ``command`` (it must succeed).

    CPU time is reported too because it hardly moves with the machine's load,
    while wall time does (the target is wall time on an idle machine)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def code_env(source: Path | None) -> dict[str, str]:
    """The environment that makes ``cdp`` load the package in ``source`` (if given)."""
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source), env.get("PYTHONPATH")]))
    return env


def small_data_dir(root: Path, env: dict[str, str]) -> Path:
    """A data directory holding a small generated shop."""
    events, data_dir = root / "events.jsonl", root / "data"
    for command in (
        [CDP, "generate", str(events), "--customers", "50", "--seed", "1"],
        [CDP, "--data-dir", str(data_dir), "ingest", str(events)],
    ):
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=env)
    return data_dir


def measure(data_dir: Path, runs: int, env: dict[str, str]) -> dict[str, list[tuple[float, float]]]:
    """Wall times of each command, ``runs`` rounds, interleaved."""
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "cdp --help": [CDP, "--help"],
        "cdp status": [CDP, "--data-dir", str(data_dir), "status"],
    }
    for command in commands.values():  # warm the page cache and .pyc files
        wall(command, env)
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in commands}
    for _ in range(runs):
        for label, command in commands.items():
            times[label].append(wall(command, env))
    return times


def report(times: dict[str, list[tuple[float, float]]]) -> None:
    """Median and min wall time, median CPU time, and the ratio of the median
    wall time to that of ``python -c pass``, per command."""
    floor = statistics.median(w for w, _ in times["python -c pass"])
    runs = len(times["python -c pass"])
    load = os.getloadavg()[0]
    print(f"CLI start-up, {runs} interleaved runs each; {machine()}; load {load:.1f}")
    print(f"{'command':<16} {'wall median':>12} {'wall min':>9} {'cpu median':>11} {'ratio':>7}")
    for label, values in times.items():
        walls = [w for w, _ in values]
        median = statistics.median(walls)
        cpu = statistics.median(c for _, c in values)
        print(
            f"{label:<16} {median:>11.3f}s {min(walls):>8.3f}s {cpu:>10.3f}s "
            f"{median / floor:>6.1f}x"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21, help="rounds of each command")
    parser.add_argument("--data-dir", type=Path, help="data directory for `cdp status`")
    parser.add_argument("--source", type=Path, help="time the cdp package found in this tree")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cdp-bench-cli-") as scratch:
        env = code_env(args.source)
        data_dir = args.data_dir or small_data_dir(Path(scratch), env)
        if args.source is not None:
            print(f"code: {args.source}")
        report(measure(data_dir, args.runs, env))


if __name__ == "__main__":
    main()
