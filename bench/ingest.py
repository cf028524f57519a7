"""Ingest benchmark: JSONL file → embedded log + projections.

Prints the end-to-end ingest rate (``ingest`` as ``cdp ingest`` calls it: past
``POOL_AFTER`` items the door's validation runs in worker processes,
``cdp.services.validation_pool``) and, measured in the same run on the same
lines, the raw parse-and-validate rate (``cdp.services.ingest.to_record``:
orjson, stamping, pydantic validation, one core) and the ratio of the two;
then the same ingest validating in this process only (``workers=1``) into a
second data directory, and the ratio pool / serial.

    python -m bench.ingest [--events 200000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.common import line, machine, timed
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, generate
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest, to_record
from connectors.sources.files import read_items


def run(events: int, workdir: Path) -> dict[str, float]:
    source = workdir / "events.jsonl"
    stats = generate(source, GenerateConfig(events=events))
    lines = [raw for _, raw in read_items(source)]
    now = datetime.now(UTC)

    def parse_all() -> int:
        for raw in lines:
            to_record(raw, now, None)
        return len(lines)

    parsed, parse_s = timed(parse_all)
    settings = Settings(workdir / "data")

    def ingest_all(settings: Settings, workers: int | None) -> int:
        with Engine.open(settings) as engine:
            report = ingest(read_items(source), engine, workers=workers)
            engine.checkpoint()
        return report.accepted

    accepted, ingest_s = timed(lambda: ingest_all(settings, None))
    serial, serial_s = timed(lambda: ingest_all(Settings(workdir / "serial"), 1))
    print(f"ingest benchmark on {machine()}: {stats.events:,} generated events")
    print(line("raw parse + validate (to_record)", parsed, parse_s))
    print(line("ingest → durable log + projections", accepted, ingest_s))
    print(line("ingest, validating in this process only", serial, serial_s))
    ratio = (accepted / ingest_s) / (parsed / parse_s)
    print(f"ratio ingest / raw parse+validate: {ratio:.2f}")
    print(f"ratio ingest / ingest validating here only: {serial_s / ingest_s:.2f}")
    return {
        "events": accepted,
        "parse_rate": parsed / parse_s,
        "ingest_rate": accepted / ingest_s,
        "serial_rate": serial / serial_s,
        "ratio": ratio,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--keep", type=Path, help="keep the work directory here")
    args = parser.parse_args()
    workdir = args.keep or Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    try:
        run(args.events, workdir)
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
