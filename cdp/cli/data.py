"""Commands over the event log: generate, ingest, replay, sql, status.

Heavy modules (the engine, DuckDB, Kafka, the archive) are imported inside the
commands that use them: see cdp/cli/_app.py on start-up cost.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cdp.cli import rows
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
from cdp.cli._defaults import KAFKA_DEFAULT_PREFIX
from cdp.config import KAFKA_BOOTSTRAP_ENV, KAFKA_PREFIX_ENV

if TYPE_CHECKING:
    import duckdb

    from cdp.adapters.archive.session import ArchiveSession
    from cdp.services.ingest import IngestReport, Sink


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
    from cdp.demo.generate import GenerateConfig, generate  # noqa: PLC0415

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
    sink: Sink,
    paths: list[Path],
    opts: Options,
    source: str | None,
    batch_size: int,
    workers: int | None = None,
) -> IngestReport:
    from cdp.services.ingest import IngestReport, ingest  # noqa: PLC0415
    from cdp.services.privacy.suppressions import SuppressionGate  # noqa: PLC0415
    from connectors.sources.files import read_items  # noqa: PLC0415

    # The data directory's list, in every mode (with --kafka too): refused here.
    gate = SuppressionGate.load(opts.settings.data_dir)
    total = IngestReport()
    for path in paths:
        with progress(opts, f"ingesting {path.name}", None) as step:
            report = ingest(
                read_items(path),
                sink,
                source=source or f"file:{path.name}",
                batch_size=batch_size,
                progress=step,
                workers=workers,
                suppressions=gate,
            )
        total.read += report.read
        total.accepted += report.accepted
        total.duplicates += report.duplicates
        total.rejected += report.rejected
        total.suppressed += report.suppressed
        total.errors.extend(report.errors)
    return total


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="JSONL / CSV / Parquet files of events.")],
    source: Annotated[str | None, typer.Option(help="Source name recorded on events.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 5_000,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="Validation processes (default 1: this process; more pays only "
            "where cores are idle, see docs/benchmarks.md).",
        ),
    ] = None,
    kafka: Annotated[
        str | None,
        typer.Option(
            "--kafka",
            "--bootstrap",
            envvar=KAFKA_BOOTSTRAP_ENV,
            help=f"Append to the Kafka log topic at HOST:PORT instead; also ${KAFKA_BOOTSTRAP_ENV}.",
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            help=f"Kafka topic prefix [{KAFKA_DEFAULT_PREFIX}]; also ${KAFKA_PREFIX_ENV}."
        ),
    ] = None,
) -> None:
    """Validate and append events; bad lines are listed, good ones kept, re-runs add nothing.

    With --kafka each batch is one acknowledged append to the log topic (workers
    fold); without, the data directory's log and projections."""
    from cdp import bootstrap  # noqa: PLC0415

    opts = opts_of(ctx)

    def announce(pid: object) -> None:  # beside a running `cdp serve`, it takes the events
        if not opts.json:
            err_console.print(
                f"cdp serve (pid {pid}) owns {opts.settings.data_dir}: appending through it",
                highlight=False,
            )

    with errors():
        mode = bootstrap.kafka_mode(kafka, prefix)
        with bootstrap.open_sink(opts.settings, mode, announce) as sink:
            report = _ingest_paths(sink, paths, opts, source, batch_size, workers)
    if opts.json:
        print_json(report.as_dict())
    else:
        console.print(
            f"read {report.read:,}  accepted [green]{report.accepted:,}[/]  "
            f"duplicates {report.duplicates:,}  rejected [red]{report.rejected:,}[/]"
            + (f"  suppressed: {report.suppressed:,}" if report.suppressed else "")
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
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.adapters.archive.restore import copy_events, directory_bytes  # noqa: PLC0415
    from cdp.runtime import replay as replay_service  # noqa: PLC0415

    opts = opts_of(ctx)
    hint = " (a replay rebuilds the tables it writes)"
    data_dir = opts.settings.data_dir.resolve()
    copied: int | None = None
    with errors(), bootstrap.open_data(opts.settings, hint) as engine:
        if archive is not None:
            if not opts.json:  # say where before the copy starts: it can be large
                err_console.print(
                    f"copying {archive} into data directory {data_dir}", soft_wrap=True
                )
            with progress(opts, "copying the archive", None) as step:
                copied = copy_events(engine, archive, step)
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
        "notes": report.notes,
        "data_dir": str(data_dir),
        "data_dir_bytes": (size := directory_bytes(data_dir)),
        "archive": None if archive is None else str(archive.resolve()),
        "copied_from_archive": copied,
    }
    if opts.json:
        print_json(data)
    else:
        if copied is not None:
            console.print(
                f"copied {copied:,} new events from {archive}", highlight=False, soft_wrap=True
            )
        console.print(
            f"replayed {report.events:,} events → {report.customers:,} customers in "
            f"{report.seconds:.2f}s ({report.events_per_second:,.0f} events/s) into {report.tables}"
        )
        console.print(
            f"data directory {data_dir}: {report.events:,} events, "
            f"{report.customers:,} customers, {size / 1e6:,.1f} MB",
            highlight=False,
            soft_wrap=True,
        )
        for note in report.notes:
            console.print(f"note: {note}", highlight=False, soft_wrap=True)
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
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            help=f"Rows to print at most [{rows.DEFAULT_TABLE_LIMIT} in a table; "
            "every row with --json].",
        ),
    ] = None,
    all_rows: Annotated[bool, typer.Option("--all", help="Print every row.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write every row to this CSV file instead.")
    ] = None,
    archive: Annotated[
        Path | None, typer.Option(help="Query this Parquet archive instead of --data-dir.")
    ] = None,
) -> None:
    """Read-only SQL over the views: events, profiles, identities, merges, log_clock.

    A table shows the first 100 rows (--limit) and says how many it left out;
    --json prints every row unless --limit is given; --out writes every row to CSV."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.adapters.archive.session import ArchiveSession  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        if archive is not None:
            rules = opts.settings.runtime_config().scoring
            with ArchiveSession.open(archive, rules) as session:
                _print_rows(opts, _archive_cursor(session, query), limit, all_rows, out)
        else:
            con = bootstrap.open_read(opts.settings)
            try:
                _print_rows(opts, rows.execute(con, query), limit, all_rows, out)
            finally:
                con.close()


def _archive_cursor(session: ArchiveSession, sql: str) -> duckdb.DuckDBPyConnection:
    """Like ``ArchiveSession.query`` (SELECT/EXPLAIN only: the session may read
    and write files), but returning the cursor so rows can be streamed."""
    import duckdb  # noqa: PLC0415

    from cdp.adapters.archive.session import READ_ONLY_STATEMENTS  # noqa: PLC0415
    from cdp.errors import QueryError  # noqa: PLC0415

    if sql.strip():
        try:
            statements = session.con.extract_statements(sql)
        except duckdb.Error as error:
            raise QueryError(str(error).strip()) from None
        for statement in statements:
            if statement.type.name not in READ_ONLY_STATEMENTS:
                raise QueryError(
                    f"only SELECT queries run over an archive, not {statement.type.name}: "
                    f"{statement.query.strip()[:60]!r}"
                )
    return rows.execute(session.con, sql)


def _print_rows(
    opts: Options,
    cursor: duckdb.DuckDBPyConnection,
    limit: int | None,
    all_rows: bool,
    out: Path | None,
) -> None:
    """A table that says when it is cut, every row as JSON, or every row to CSV."""
    if out is not None:
        written = rows.write_csv(cursor, out)
        if opts.json:
            print_json({"out": str(out), "rows": written, "columns": rows.columns_of(cursor)})
        else:
            console.print(f"wrote {written:,} rows to {out}")
        return
    if opts.json:
        rows.stream_json(cursor, None if all_rows else limit)
        return
    head, total = rows.head_and_count(
        cursor, None if all_rows else (limit or rows.DEFAULT_TABLE_LIMIT)
    )
    console.print(table("", rows.columns_of(cursor), head))
    note = rows.cut_note(
        rows.Printed(len(head), total), "rows", "--limit N, --all or --out FILE.csv for all"
    )
    if note is not None:
        console.print(note, style="yellow", highlight=False, soft_wrap=True)


# -------------------------------------------------------------------- status
@app.command("status")
def status_command(ctx: typer.Context) -> None:
    """What the data directory holds: events, customers, identifiers, position."""
    from cdp import bootstrap  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        con = bootstrap.open_read(opts.settings)
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
