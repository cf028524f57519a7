"""``cdp demo``: every job of the platform on a generated shop, in about a minute.

1. generate a year of a Japanese online shop (``cdp.demo.generate``);
2. ingest it into the embedded log and fold the projections;
3. run every built-in segment;
4. export one audience to CSV (only customers who consented to ads);
5. look one customer up by email (an anonymous visitor who filled a form,
   bought and follows the shop on LINE);
6. replay the whole log into fresh tables and verify the state is identical.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cdp import bootstrap
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, generate
from cdp.errors import ConfigError
from cdp.read import lookup
from cdp.runtime import replay
from cdp.runtime.engine import Engine
from cdp.services import segments
from cdp.services.ingest import ingest
from cdp.services.query import audience
from connectors.destinations.csv_file import write_csv
from connectors.sources.files import read_items

EXPORT_SEGMENT = "lapsed_repeaters"
Progress = Callable[[str, int | None], AbstractContextManager[Callable[[int], None]]]


def _clear(data_dir: Path) -> None:
    """Empty a data directory, refusing one that holds anything but cdp's files."""
    if not data_dir.exists():
        return
    ours = {"cdp.duckdb", "cdp.duckdb.wal", "demo-events.jsonl", "exports", "scoring.toml"}
    foreign = sorted(p.name for p in data_dir.iterdir() if p.name not in ours)
    if foreign:
        raise ConfigError(
            f"--fresh refuses to clear {data_dir}: it holds files cdp did not write "
            f"({', '.join(foreign[:5])}); pick another --data-dir"
        )
    for name in ("cdp.duckdb", "cdp.duckdb.wal", "demo-events.jsonl"):
        (data_dir / name).unlink(missing_ok=True)
    shutil.rmtree(data_dir / "exports", ignore_errors=True)


def _showcase_customer(engine: Engine) -> str | None:
    """An email of a customer whose record shows the unification at work."""
    row = engine.con.execute(
        """SELECT p.email FROM profiles p
           JOIN (SELECT customer_id, count(*) AS n FROM identities GROUP BY 1) i USING (customer_id)
           WHERE p.email IS NOT NULL AND p.line_user_id IS NOT NULL AND p.orders_count >= 2
           ORDER BY i.n DESC, p.revenue DESC, p.customer_id LIMIT 1"""
    ).fetchone()
    if row is None:
        row = engine.con.execute(
            "SELECT email FROM profiles WHERE email IS NOT NULL ORDER BY revenue DESC LIMIT 1"
        ).fetchone()
    return None if row is None else str(row[0])


def run_demo(
    settings: Settings,
    *,
    console: Console,
    as_json: bool,
    fresh: bool,
    seed: int,
    customers: int | None,
    print_json: Callable[[Any], None],
    print_profile: Callable[[lookup.ProfileView], None],
    progress: Progress,
) -> dict[str, Any]:
    """Run the demo end to end; print a summary (or JSON) and return it."""
    started = time.perf_counter()
    data_dir = settings.data_dir
    if fresh:
        _clear(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def say(text: str) -> None:
        if not as_json:
            console.print(text)

    t = time.perf_counter()
    events_file = data_dir / "demo-events.jsonl"
    config = GenerateConfig(seed=seed, customers=customers)
    with progress("generating the shop", config.customer_count * 40) as step:
        done = [0]

        def advance(written: int) -> None:
            step(written - done[0])
            done[0] = written

        stats = generate(events_file, config, advance)
    timings["generate"] = time.perf_counter() - t
    say(
        f"[bold]1. generated[/] {stats.events:,} events of {stats.customers:,} shoppers "
        f"({stats.start:%Y-%m-%d} → {stats.end:%Y-%m-%d})"
    )

    with bootstrap.open_data(settings) as engine:
        t = time.perf_counter()
        with progress("ingesting", stats.events) as step, engine.bulk():
            report = ingest(read_items(events_file), engine, source="demo", progress=step)
        engine.checkpoint()
        timings["ingest"] = time.perf_counter() - t
        counts = engine.con.execute(
            """SELECT (SELECT count(*) FROM customers), (SELECT count(*) FROM identities),
                      (SELECT count(*) FROM merges), (SELECT count(*) FROM identity_rejections)"""
        ).fetchone()
        assert counts is not None
        stages = engine.con.execute(
            "SELECT lifecycle_stage, count(*) FROM profiles GROUP BY 1 ORDER BY 2 DESC"
        ).fetchall()
        say(
            f"[bold]2. ingested[/] {report.accepted:,} events ({report.duplicates:,} duplicates, "
            f"{report.rejected:,} rejected) in {timings['ingest']:.1f}s "
            f"({report.accepted / max(timings['ingest'], 1e-9):,.0f} events/s) → "
            f"[bold]{counts[0]:,}[/] customers from {counts[1]:,} identifiers, "
            f"{counts[2]:,} merges explained, {counts[3]:,} unsafe links refused"
        )
        say("   lifecycle stages: " + ", ".join(f"{s} {n:,}" for s, n in stages))

        t = time.perf_counter()
        segment_counts = {name: segments.run(engine.con, name).count for name in segments.BUILTIN}
        timings["segments"] = time.perf_counter() - t
        table = Table(title="3. segments", title_justify="left")
        table.add_column("segment")
        table.add_column("members", justify="right")
        table.add_column("what for")
        for name, count in segment_counts.items():
            table.add_row(name, f"{count:,}", segments.BUILTIN[name].purpose)
        if not as_json:
            console.print(table)

        t = time.perf_counter()
        export_file = data_dir / "exports" / f"{EXPORT_SEGMENT}.csv"
        result = audience(engine.con, EXPORT_SEGMENT, consent="ads")
        written = write_csv(export_file, result.columns, result.rows)
        timings["export"] = time.perf_counter() - t
        say(
            f"[bold]4. exported[/] {written:,} of {result.members:,} {EXPORT_SEGMENT} to "
            f"{export_file} ({result.excluded_without_consent:,} without ads consent left out)"
        )

        email = _showcase_customer(engine)
        view = None
        if email is not None:
            t = time.perf_counter()
            view = lookup.lookup(
                engine.con, f"email:{email}", engine.runtime.config.scoring, 5, reasons=None
            )
            timings["lookup"] = time.perf_counter() - t
            say(f"[bold]5. looked up[/] email:{email}")
            if not as_json:
                print_profile(view)

        t = time.perf_counter()
        with progress("replaying", engine.log.high_water()) as step:
            replayed = replay.rebuild(engine, verify=True, progress=step)
        timings["replay"] = time.perf_counter() - t
        verdict = "[green]identical[/]" if replayed.verified else "[red]DIFFERENT[/]"
        say(
            f"[bold]6. replayed[/] {replayed.events:,} events in {replayed.seconds:.1f}s "
            f"({replayed.events_per_second:,.0f} events/s): rebuilt state is {verdict}"
        )
        for line in replayed.differences:
            say(f"   {line}")

    total = time.perf_counter() - started
    say(
        f"done in {total:.1f}s. Data in {data_dir}; try `cdp --data-dir {data_dir} sql "
        '"SELECT lifecycle_stage, count(*) FROM profiles GROUP BY 1"`'
    )
    summary = {
        "events": stats.events,
        "customers": counts[0],
        "identifiers": counts[1],
        "merges": counts[2],
        "rejected_links": counts[3],
        "ingest": report.as_dict(),
        "stages": dict(stages),
        "segments": segment_counts,
        "export": {"segment": EXPORT_SEGMENT, "file": str(export_file), "rows": written},
        "lookup": view.as_dict() if view else None,
        "replay": {
            "events": replayed.events,
            "verified": replayed.verified,
            "differences": replayed.differences,
        },
        "seconds": {k: round(v, 2) for k, v in {**timings, "total": total}.items()},
    }
    if as_json:
        print_json(summary)
    return summary
