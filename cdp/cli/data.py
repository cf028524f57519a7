"""Commands over the event log: generate, ingest, replay, sql, status."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from cdp import replay as replay_service
from cdp.archive.restore import copy_events
from cdp.archive.session import ArchiveSession
from cdp.cli._app import (
    Options,
    app,
    console,
    err_console,
    errors,
    opts_of,
    print_json,
    progress,
    table,
)
from cdp.engine import Engine
from cdp.generate import GenerateConfig, generate
from cdp.ingest import IngestReport, Sink, ingest
from cdp.kafka_log import KafkaEventLog
from cdp.kafka_topics import BOOTSTRAP_ENV, DEFAULT_PREFIX, PREFIX_ENV, KafkaSettings
from cdp.query import run_sql
from connectors.sources.files import read_items


# ------------------------------------------------------------------ generate
@app.command("generate")
def generate_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="JSONL file to write.")],
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same file.")] = 42,
    customers: Annotated[int | None, typer.Option(min=1, help="People to simulate.")] = None,
    events: Annotated[
        int | None, typer.Option(min=1, help="Target event count (streams; 10M is fine).")
    ] = None,
) -> None:
    """Write a realistic Japanese online shop's year of events (deterministic by --seed)."""
    opts = opts_of(ctx)
    with errors():
        try:
            config = GenerateConfig(seed=seed, customers=customers, events=events)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
        total = events or config.customer_count * 40
        with progress(opts, "generating", total) as step:
            done = [0]

            def advance(written: int) -> None:
                step(written - done[0])
                done[0] = written

            stats = generate(out, config, advance)
    result = {
        "file": str(out),
        "events": stats.events,
        "customers": stats.customers,
        "bytes": stats.bytes,
        "start": stats.start,
        "end": stats.end,
        "by_type": dict(sorted(stats.by_type.items())),
    }
    if opts.json:
        print_json(result)
    else:
        console.print(
            f"wrote [bold]{stats.events:,}[/] events of [bold]{stats.customers:,}[/] customers "
            f"to {out} ({stats.bytes / 1e6:.1f} MB), {stats.start:%Y-%m-%d} → {stats.end:%Y-%m-%d}"
        )


# -------------------------------------------------------------------- ingest
def _ingest_paths(
    sink: Sink, paths: list[Path], opts: Options, source: str | None, batch_size: int
) -> IngestReport:
    total = IngestReport()
    for path in paths:
        with progress(opts, f"ingesting {path.name}", None) as step:
            report = ingest(
                read_items(path),
                sink,
                source=source or f"file:{path.name}",
                batch_size=batch_size,
                progress=step,
            )
        total.read += report.read
        total.accepted += report.accepted
        total.duplicates += report.duplicates
        total.rejected += report.rejected
        total.errors.extend(report.errors)
    if isinstance(sink, Engine):
        sink.checkpoint()
    return total


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="JSONL / CSV / Parquet files of events.")],
    source: Annotated[str | None, typer.Option(help="Source name recorded on events.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 5_000,
    kafka: Annotated[
        str | None,
        typer.Option(
            "--kafka",
            "--bootstrap",
            envvar=BOOTSTRAP_ENV,
            help=f"Append to the Kafka log topic at HOST:PORT instead; also ${BOOTSTRAP_ENV}.",
        ),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help=f"Kafka topic prefix [{DEFAULT_PREFIX}]; also ${PREFIX_ENV}.")
    ] = None,
) -> None:
    """Validate and append events; bad lines are listed, good ones kept, re-runs add nothing.

    With --kafka each batch is one acknowledged append to the log topic (workers
    fold); without, the data directory's log and projections."""
    opts = opts_of(ctx)
    with errors():
        if kafka:
            log = KafkaEventLog.open(KafkaSettings.resolve(kafka, prefix))
            try:
                report = _ingest_paths(log, paths, opts, source, batch_size)
            finally:
                log.close()
        else:
            with Engine.open(opts.settings) as engine:
                report = _ingest_paths(engine, paths, opts, source, batch_size)
    if opts.json:
        print_json(report.as_dict())
    else:
        console.print(
            f"read {report.read:,}  accepted [green]{report.accepted:,}[/]  "
            f"duplicates {report.duplicates:,}  rejected [red]{report.rejected:,}[/]"
        )
        for error in report.errors[:50]:
            err_console.print(f"  [red]✗[/] {error}", highlight=False, soft_wrap=True)
        if report.rejected > 50:
            err_console.print(f"  … and {report.rejected - 50:,} more (use --json for all kept)")
    if report.rejected:
        raise typer.Exit(1)


# -------------------------------------------------------------------- replay
@app.command("replay")
def replay_command(
    ctx: typer.Context,
    verify: Annotated[
        bool, typer.Option(help="Prove rebuilt state equals the live state.")
    ] = False,
    as_of: Annotated[
        datetime | None,
        typer.Option(
            "--as-of",
            help="Build asof_* tables from events up to this event time "
            "(ISO 8601; naive means UTC) instead of rebuilding live.",
        ),
    ] = None,
    archive: Annotated[
        Path | None,
        typer.Option(help="First copy this Parquet archive's new events into --data-dir."),
    ] = None,
) -> None:
    """Rebuild every projection from the event log (offset 0)."""
    opts = opts_of(ctx)
    with errors(), Engine.open(opts.settings) as engine:
        if archive is not None:
            with progress(opts, "copying the archive", None) as step:
                copy_events(engine, archive, step)
        total = engine.log.high_water()
        with progress(opts, "replaying", total) as step:
            if as_of is not None:
                moment = as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)
                report = replay_service.rebuild_as_of(engine, moment, step)
            else:
                report = replay_service.rebuild(engine, verify, step)
    data = {
        "events": report.events,
        "customers": report.customers,
        "identifiers": report.identifiers,
        "seconds": round(report.seconds, 3),
        "events_per_second": round(report.events_per_second),
        "tables": report.tables,
        "verified": report.verified,
        "differences": report.differences,
    }
    if opts.json:
        print_json(data)
    else:
        console.print(
            f"replayed {report.events:,} events → {report.customers:,} customers in "
            f"{report.seconds:.2f}s ({report.events_per_second:,.0f} events/s) into {report.tables}"
        )
        if report.verified is True:
            console.print("[green]verified:[/] rebuilt state is identical to the live state")
        elif report.verified is False:
            console.print("[red]differences between live and rebuilt state:[/]")
            for line in report.differences:
                console.print(f"  {line}")
    if report.verified is False:
        raise typer.Exit(1)


# ----------------------------------------------------------------------- sql
@app.command("sql")
def sql_command(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="One read-only SQL statement.")],
    limit: Annotated[int, typer.Option(min=1, help="Rows to print at most.")] = 100,
    archive: Annotated[
        Path | None, typer.Option(help="Query this Parquet archive instead of --data-dir.")
    ] = None,
) -> None:
    """Read-only SQL over the views: events, profiles, identities, merges, log_clock."""
    opts = opts_of(ctx)
    with errors():
        if archive is not None:
            rules = opts.settings.runtime_config().scoring
            with ArchiveSession.open(archive, rules) as session:
                result = session.query(query, limit)
        else:
            con = Engine.open_read_only(opts.settings)
            try:
                result = run_sql(con, query, limit)
            finally:
                con.close()
    if opts.json:
        print_json([dict(zip(result.columns, row, strict=True)) for row in result.rows])
    else:
        console.print(table("", result.columns, result.rows))


# -------------------------------------------------------------------- status
@app.command("status")
def status_command(ctx: typer.Context) -> None:
    """What the data directory holds: events, customers, identifiers, position."""
    opts = opts_of(ctx)
    with errors():
        con = Engine.open_read_only(opts.settings)
        try:
            row = con.execute(
                """SELECT (SELECT count(*) FROM event_log), (SELECT count(*) FROM customers),
                          (SELECT count(*) FROM identities), (SELECT count(*) FROM merges),
                          (SELECT max(next_offset) FROM positions), (SELECT as_of FROM log_clock)"""
            ).fetchone()
        finally:
            con.close()
    assert row is not None
    data = {
        "data_dir": str(opts.settings.data_dir),
        "events": row[0],
        "customers": row[1],
        "identifiers": row[2],
        "merges": row[3],
        "projected_to_offset": row[4],
        "log_clock": row[5],
    }
    if opts.json:
        print_json(data)
    else:
        console.print(table("status", ["what", "value"], list(data.items())))
