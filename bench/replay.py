"""Replay benchmark: rebuild every projection from the log.

Prints the replay rate of ``cdp.runtime.replay.rebuild`` and, in the same run over the
same stored events, a plain-dict fold baseline: read the payloads, parse them
with orjson and fold into per-user dicts (event counts, revenue, last seen)
with no validation and no identity resolution. The ratio says what the typed
contracts, identity graph and order-independent folds cost.

    python -m bench.replay [--events 200000]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from bench.common import line, machine, timed
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, generate
from cdp.runtime import replay
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from connectors.sources.files import read_items


def plain_fold(payloads: list[str]) -> int:
    """The baseline: dict-per-user counters over raw JSON, nothing else."""
    users: dict[str, dict[str, Any]] = defaultdict(lambda: {"events": 0, "revenue": 0.0})
    for payload in payloads:
        raw = orjson.loads(payload)
        state = users[raw.get("userId") or raw.get("anonymousId") or ""]
        state["events"] += 1
        state["last"] = max(state.get("last", ""), raw["timestamp"])
        if raw.get("event") == "Order Completed":
            state["revenue"] += float(raw["properties"]["revenue"])
        traits = raw.get("traits")
        if traits:
            state.update(traits)
    return len(payloads)


def run(events: int, workdir: Path) -> dict[str, float]:
    source = workdir / "events.jsonl"
    generate(source, GenerateConfig(events=events))
    settings = Settings(workdir / "data")
    with Engine.open(settings) as engine:
        ingest(read_items(source), engine)
        engine.checkpoint()
        payloads = [
            r[0]
            for r in engine.con.execute(
                'SELECT payload FROM event_log ORDER BY "offset"'
            ).fetchall()
        ]
        baseline, base_s = timed(lambda: plain_fold(payloads))
        report, _ = timed(lambda: replay.rebuild(engine, verify=False))
    print(f"replay benchmark on {machine()}")
    print(line("plain-dict fold of the same payloads", baseline, base_s))
    print(line("replay: decode + identity + profile + lead", report.events, report.seconds))
    ratio = (report.events / report.seconds) / (baseline / base_s)
    print(f"ratio replay / plain-dict fold: {ratio:.3f}")
    return {
        "events": report.events,
        "replay_rate": report.events_per_second,
        "baseline_rate": baseline / base_s,
        "ratio": ratio,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cdp-bench-"))
    try:
        run(args.events, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
