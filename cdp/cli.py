"""The ``cdp`` command line (composition module: it may import every layer).

Commands parse their options, call one service, and format the answer as a
rich table or, with ``--json``, as JSON. Errors the platform raises on
purpose (``CdpError``) print one clear line and exit with status 2; bad
ingest lines are listed and exit with status 1 while the good lines stay
accepted.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import uvicorn
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cdp import collector, deadletters
from cdp import lookup as lookup_service
from cdp import replay as replay_service
from cdp import segments as segment_service
from cdp.api import create_app
from cdp.config import Settings
from cdp.demo import run_demo
from cdp.engine import Engine
from cdp.errors import CdpError, UnmappableError
from cdp.generate import GenerateConfig, generate
from cdp.ingest import IngestReport, ingest, to_record
from cdp.log import Record
from cdp.query import audience, run_sql
from cdp.sources import SourceRegistry
from connectors.destinations.csv_file import write_csv
from connectors.sources.files import read_items
from connectors.sources.webhooks import orders, shopify
from connectors.sources.webhooks.registry import SIGNED
from schemas.identifiers import normalise_phone

app = typer.Typer(
    help="Event-sourced customer data platform: ingest events, unify customers, "
    "segment, export, look up, replay.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
segment_app = typer.Typer(help="Built-in segments: list them, run one.", no_args_is_help=True)
app.add_typer(segment_app, name="segment")
sources_app = typer.Typer(help="Sources and their write keys.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
deadletter_app = typer.Typer(help="Requests rejected after authentication.", no_args_is_help=True)
app.add_typer(deadletter_app, name="deadletter")

console = Console()
err_console = Console(stderr=True)


class Options:
    """Global options, shared with every command through the typer context."""

    def __init__(self, data_dir: Path | None, as_json: bool) -> None:
        self.settings = Settings.resolve(data_dir)
        self.json = as_json


@app.callback()
def _global(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="CDP_DATA_DIR", help="Data directory [./.cdp-data]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    ctx.obj = Options(data_dir, as_json)


def _opts(ctx: typer.Context) -> Options:
    assert isinstance(ctx.obj, Options)
    return ctx.obj


@contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except CdpError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def _print_json(data: Any) -> None:
    sys.stdout.write(
        orjson.dumps(data, default=_default, option=orjson.OPT_INDENT_2).decode() + "\n"
    )


@contextmanager
def _progress(opts: Options, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on the terminal; silent with --json or when piped."""
    enabled = not opts.json and err_console.is_terminal
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not enabled,
    ) as progress:
        task = progress.add_task(label, total=total)
        yield lambda n: progress.advance(task, n)


def _table(title: str, columns: list[str], rows: list[tuple[Any, ...]] | list[list[Any]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    return table


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
    opts = _opts(ctx)
    with _errors():
        try:
            config = GenerateConfig(seed=seed, customers=customers, events=events)
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
        total = events or config.customer_count * 40
        with _progress(opts, "generating", total) as step:
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
        _print_json(result)
    else:
        console.print(
            f"wrote [bold]{stats.events:,}[/] events of [bold]{stats.customers:,}[/] customers "
            f"to {out} ({stats.bytes / 1e6:.1f} MB), {stats.start:%Y-%m-%d} → {stats.end:%Y-%m-%d}"
        )


# -------------------------------------------------------------------- ingest
def _ingest_paths(
    engine: Engine, paths: list[Path], opts: Options, source: str | None, batch_size: int
) -> IngestReport:
    total = IngestReport()
    for path in paths:
        with _progress(opts, f"ingesting {path.name}", None) as step:
            report = ingest(
                read_items(path),
                engine,
                source=source or f"file:{path.name}",
                batch_size=batch_size,
                progress=step,
            )
        total.read += report.read
        total.accepted += report.accepted
        total.duplicates += report.duplicates
        total.rejected += report.rejected
        total.errors.extend(report.errors)
    engine.checkpoint()
    return total


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    paths: Annotated[list[Path], typer.Argument(help="JSONL / CSV / Parquet files of events.")],
    source: Annotated[str | None, typer.Option(help="Source name recorded on events.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 5_000,
) -> None:
    """Validate and append events; bad lines are listed, good ones kept, re-runs add nothing."""
    opts = _opts(ctx)
    with _errors(), Engine.open(opts.settings) as engine:
        report = _ingest_paths(engine, paths, opts, source, batch_size)
    if opts.json:
        _print_json(report.as_dict())
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


# ------------------------------------------------------------------- profile
@app.command("profile")
def profile_command(
    ctx: typer.Context,
    identifier: Annotated[
        str,
        typer.Argument(
            help="kind:value (email:, user_id:, anonymous_id:, phone:, line:, "
            "x:, instagram:) or a cus_ customer id."
        ),
    ],
    recent: Annotated[int, typer.Option(min=0, max=1000, help="Recent events to show.")] = 10,
) -> None:
    """Look a customer up by any identifier: unified profile, lead score, stage, why."""
    opts = _opts(ctx)
    with _errors():
        con = Engine.open_read_only(opts.settings)
        try:
            view = lookup_service.lookup(
                con, identifier, opts.settings.runtime_config().scoring, recent
            )
        finally:
            con.close()
    if opts.json:
        _print_json(view.as_dict())
    else:
        print_profile(view)


def _phone(raw: str | None) -> str | None:
    """A phone trait as typed, shown in E.164 when it parses (full-width digits too)."""
    return (normalise_phone(raw) or raw) if raw else None


def print_profile(view: lookup_service.ProfileView) -> None:
    """A readable rendering of a profile lookup."""
    p, lead = view.profile, view.lead
    console.print(f"[bold]{view.customer_id}[/]  (matched {view.matched})")
    shown = Table(show_header=False, box=None, pad_edge=False)
    shown.add_column(style="dim")
    shown.add_column()
    for label, value in (
        ("name", p.get("name")),
        ("email", p.get("email")),
        ("phone", _phone(p.get("phone"))),
        (
            "gender / age",
            f"{p.get('gender') or '-'} / {p.get('age') or '-'} ({p.get('age_band') or '-'})",
        ),
        ("region", p.get("region")),
        ("preferred channel", p.get("preferred_channel")),
        ("stage", f"{lead['lifecycle_stage']}  (funnel: {lead['funnel_stage']})"),
        (
            "lead score",
            f"{(lead['score_now'] or 0):.1f} now, {(lead['score_at_last_activity'] or 0):.1f} at last activity",
        ),
        (
            "orders / LTV",
            f"{p.get('orders_count')} / ¥{p.get('revenue')}  (AOV ¥{p.get('avg_order_value')})",
        ),
        ("first / last seen", f"{p.get('first_seen')} / {p.get('last_seen')}"),
        (
            "consent",
            ", ".join(k for k in ("email", "ads", "line", "sms") if p.get(f"consent_{k}")) or "-",
        ),
        ("identifiers", ", ".join(view.identifiers)),
    ):
        shown.add_row(label, "" if value is None else str(value))
    console.print(shown)
    if lead["explanation"]:
        console.print(
            _table(
                "why this score",
                ["rule", "day", "events", "points", "decayed"],
                [
                    (e["rule"], e["day"], e["events"], e["points"], f"{e['decayed_points']:.2f}")
                    for e in lead["explanation"]
                ],
            )
        )
    if view.merges:
        console.print(
            _table(
                "merges",
                ["from", "into", "reason", "event"],
                [
                    (m["from_customer"], m["into_customer"], m["reason"], m["message_id"])
                    for m in view.merges
                ],
            )
        )
    if view.recent_events:
        console.print(
            _table(
                "recent events",
                ["time", "type", "event"],
                [(e["timestamp"], e["type"], e["event"] or "") for e in view.recent_events],
            )
        )


# ------------------------------------------------------------------- segment
def _params(values: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--param takes name=value, not {item!r}")
        out[name.strip()] = value
    return out


@segment_app.command("list")
def segment_list(ctx: typer.Context) -> None:
    """The built-in segments and what they are for."""
    opts = _opts(ctx)
    items = [
        {
            "name": s.name,
            "purpose": s.purpose,
            "description": segment_service.describe(s),
            "params": dict(s.params),
        }
        for s in segment_service.BUILTIN.values()
    ]
    if opts.json:
        _print_json(items)
    else:
        console.print(
            _table(
                "segments",
                ["name", "purpose", "description"],
                [(i["name"], i["purpose"], i["description"]) for i in items],
            )
        )


@segment_app.command("run")
def segment_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Segment name (see `cdp segment list`).")],
    param: Annotated[
        list[str] | None, typer.Option(help="Override a parameter: name=value.")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Members to list (0: count only).")] = 10,
) -> None:
    """Evaluate a segment: member count and the first members."""
    opts = _opts(ctx)
    with _errors():
        con = Engine.open_read_only(opts.settings)
        try:
            result = segment_service.run(con, name, _params(param))
        finally:
            con.close()
    if opts.json:
        _print_json(
            {
                "name": result.name,
                "count": result.count,
                "params": result.params,
                "members": result.members[:limit] if limit else [],
            }
        )
        return
    segment = segment_service.get(name)
    console.print(f"[bold]{name}[/]: {segment_service.describe(segment, result.params)}")
    console.print(f"members: [bold]{result.count:,}[/]")
    for member in result.members[:limit]:
        console.print(f"  {member}")


# -------------------------------------------------------------------- export
@app.command("export")
def export_command(
    ctx: typer.Context,
    segment: Annotated[str, typer.Argument(help="Segment to export.")],
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="Output format: csv.")] = "csv",
    consent: Annotated[
        str,
        typer.Option(help="Export only customers who consented to: ads, email, line, sms, none."),
    ] = "ads",
    param: Annotated[list[str] | None, typer.Option(help="Segment parameter: name=value.")] = None,
) -> None:
    """Write a segment's consenting members with normalised identifiers to a file."""
    opts = _opts(ctx)
    if fmt != "csv":
        raise typer.BadParameter(f"format {fmt!r} is not supported; use csv", param_hint="--format")
    with _errors():
        con = Engine.open_read_only(opts.settings)
        try:
            result = audience(con, segment, _params(param), None if consent == "none" else consent)
        finally:
            con.close()
        written = write_csv(out, result.columns, result.rows)
    summary = {
        "segment": segment,
        "file": str(out),
        "rows": written,
        "members": result.members,
        "excluded_without_consent": result.excluded_without_consent,
        "consent": consent,
    }
    if opts.json:
        _print_json(summary)
    else:
        console.print(
            f"exported [bold]{written:,}[/] of {result.members:,} members of {segment} to {out} "
            f"({result.excluded_without_consent:,} left out: no {consent} consent)"
        )


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
) -> None:
    """Rebuild every projection from the event log (offset 0)."""
    opts = _opts(ctx)
    with _errors(), Engine.open(opts.settings) as engine:
        total = engine.log.high_water()
        with _progress(opts, "replaying", total) as step:
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
        _print_json(data)
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
) -> None:
    """Read-only SQL over the views: events, profiles, identities, merges, log_clock."""
    opts = _opts(ctx)
    with _errors():
        con = Engine.open_read_only(opts.settings)
        try:
            result = run_sql(con, query, limit)
        finally:
            con.close()
    if opts.json:
        _print_json([dict(zip(result.columns, row, strict=True)) for row in result.rows])
    else:
        console.print(_table("", result.columns, result.rows))


# -------------------------------------------------------------------- status
@app.command("status")
def status_command(ctx: typer.Context) -> None:
    """What the data directory holds: events, customers, identifiers, position."""
    opts = _opts(ctx)
    with _errors():
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
        _print_json(data)
    else:
        console.print(_table("status", ["what", "value"], list(data.items())))


# ---------------------------------------------------------------------- demo
@app.command("demo")
def demo_command(
    ctx: typer.Context,
    fresh: Annotated[bool, typer.Option(help="Start from an empty data directory.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed of the generated shop.")] = 42,
    customers: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """The whole platform in one run: generate, ingest, unify, segment, export, look up, replay."""
    opts = _opts(ctx)
    with _errors():
        run_demo(
            opts.settings,
            console=console,
            as_json=opts.json,
            fresh=fresh,
            seed=seed,
            customers=customers,
            print_json=_print_json,
            print_profile=print_profile,
            progress=lambda label, total: _progress(opts, label, total),
        )


# --------------------------------------------------------------------- serve
@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8080,
) -> None:
    """Run the Segment-compatible collector (OpenAPI docs at /docs)."""
    opts = _opts(ctx)
    with _errors():
        opts.settings.data_dir.mkdir(parents=True, exist_ok=True)
        uvicorn.run(
            create_app(opts.settings), host=host, port=port, log_level="info", access_log=False
        )


# ------------------------------------------------------------------- sources
@sources_app.command("add")
def sources_add(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Create a source and print its write key (shown once, stored only hashed)."""
    opts = _opts(ctx)
    with _errors():
        key = SourceRegistry(opts.settings.data_dir).add(name)
    if opts.json:
        _print_json({"name": name, "write_key": key})
    else:
        console.print(f"source [bold]{name}[/] created. Write key (shown once):")
        console.print(key, highlight=False, soft_wrap=True)


@sources_app.command("list")
def sources_list(ctx: typer.Context) -> None:
    """Every source, with when it was created and revoked."""
    opts = _opts(ctx)
    with _errors():
        items = SourceRegistry(opts.settings.data_dir).list()
    rows = [
        {"name": s.name, "created_at": s.created_at, "revoked_at": s.revoked_at, "active": s.active}
        for s in items
    ]
    if opts.json:
        _print_json(rows)
    else:
        console.print(
            _table(
                "sources",
                ["name", "created", "revoked"],
                [(r["name"], r["created_at"], r["revoked_at"]) for r in rows],
            )
        )


@sources_app.command("revoke")
def sources_revoke(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Refuse a source's write key from now on (401)."""
    opts = _opts(ctx)
    with _errors():
        source = SourceRegistry(opts.settings.data_dir).revoke(name)
    if opts.json:
        _print_json({"name": source.name, "revoked_at": source.revoked_at})
    else:
        console.print(f"source [bold]{name}[/] revoked at {source.revoked_at}")


# ---------------------------------------------------------------- deadletter
@deadletter_app.command("list")
def deadletter_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include retried ones.")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    body: Annotated[bool, typer.Option(help="Show the stored bodies.")] = False,
) -> None:
    """Rejected requests with their reasons."""
    opts = _opts(ctx)
    with _errors():
        con = Engine.open_read_only(opts.settings)
        try:
            letters = deadletters.select(con, None if all_ else deadletters.PENDING, limit)
        finally:
            con.close()
    if opts.json:
        _print_json([d.as_dict(with_body=body) for d in letters])
    else:
        console.print(
            _table(
                "dead letters",
                ["id", "received", "source", "endpoint", "status", "reason"],
                [(d.id, d.received_at, d.source, d.endpoint, d.status, d.reason) for d in letters],
            )
        )


def _rebuild(letter: deadletters.DeadLetter) -> list[Record]:
    """Run a dead letter through the path that rejected it (signatures were checked
    when it arrived). Items a webhook skipped and form posts (their content type
    is not kept) cannot be re-run and stay pending."""
    endpoint = letter.endpoint
    if endpoint == "bulk":  # one JSONL line
        return [to_record(letter.body, letter.received_at, letter.source)]
    if endpoint.startswith("webhook:"):
        payload = orjson.loads(letter.body)
        platform, _, topic = endpoint.removeprefix("webhook:").partition(":")
        if not isinstance(payload, dict):
            raise UnmappableError(f"dead letter {letter.id} ({endpoint}) is not a JSON object")
        events: list[dict[str, Any]]
        if platform == "shopify":
            events = shopify.to_events(topic, payload)
        elif platform == "orders":
            events = orders.to_events(payload)
        elif platform in SIGNED:
            events = SIGNED[platform].to_events(payload).events
        else:
            raise UnmappableError(f"dead letter {letter.id} ({endpoint}) cannot be re-run")
        return collector.to_records(events, letter.received_at, letter.source)
    if endpoint in (*collector.SINGLE_TYPES, *collector.BATCH_ENDPOINTS):
        items, _ = collector.parse(endpoint, letter.body)
        return collector.to_records(
            items,
            letter.received_at,
            letter.source,
            single=endpoint in collector.SINGLE_TYPES,
            server_received_at=True,
        )
    raise UnmappableError(f"dead letter {letter.id} ({endpoint}) cannot be re-run by retry")


@deadletter_app.command("retry")
def deadletter_retry(ctx: typer.Context) -> None:
    """Run pending dead letters through validation again; append those that now pass."""
    opts = _opts(ctx)
    with _errors(), Engine.open(opts.settings) as engine:
        report = deadletters.retry(engine.con, engine.append, _rebuild, datetime.now(UTC))
    data = {
        "retried": report.retried,
        "events": report.events,
        "still_failing": report.still_failing,
    }
    if opts.json:
        _print_json(data)
    else:
        console.print(
            f"retried {report.retried} ({report.events} events appended); "
            f"{report.still_failing} still failing"
        )


def main() -> None:
    """Entry point of the ``cdp`` script."""
    app()


if __name__ == "__main__":
    main()
