"""Collecting events: ``cdp serve``, sources and dead letters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
import typer
import uvicorn

from cdp import collector, deadletters
from cdp.api import create_app
from cdp.cli._app import (
    app,
    console,
    errors,
    opts_of,
    print_json,
    sub_app,
    table,
)
from cdp.engine import Engine
from cdp.errors import UnmappableError
from cdp.ingest import to_record
from cdp.kafka_topics import BOOTSTRAP_ENV, DEFAULT_PREFIX, PREFIX_ENV, KafkaSettings
from cdp.log import Record
from cdp.sources import SourceRegistry
from connectors.sources.webhooks import orders, shopify
from connectors.sources.webhooks.registry import SIGNED

sources_app = sub_app("sources", "Sources and their write keys.")
deadletter_app = sub_app("deadletter", "Requests rejected after authentication.")


@app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8080,
    kafka: Annotated[
        str | None,
        typer.Option(
            "--kafka",
            "--bootstrap",
            envvar=BOOTSTRAP_ENV,
            help="Append to Kafka at HOST:PORT (distributed mode) instead of the data "
            f"directory; also ${BOOTSTRAP_ENV}.",
        ),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help=f"Topic prefix [{DEFAULT_PREFIX}]; also ${PREFIX_ENV}.")
    ] = None,
) -> None:
    """Run the Segment-compatible collector (OpenAPI docs at /docs).

    With --kafka a request is acknowledged once the broker has acknowledged its
    events on the log topic; workers (`cdp worker`) fold them."""
    opts = opts_of(ctx)
    with errors():
        opts.settings.data_dir.mkdir(parents=True, exist_ok=True)
        settings = KafkaSettings.resolve(kafka, prefix) if kafka else None
        uvicorn.run(
            create_app(opts.settings, kafka=settings),
            host=host,
            port=port,
            log_level="info",
            access_log=False,
        )


# ------------------------------------------------------------------- sources
@sources_app.command("add")
def sources_add(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Create a source and print its write key (shown once, stored only hashed)."""
    opts = opts_of(ctx)
    with errors():
        key = SourceRegistry(opts.settings.data_dir).add(name)
    if opts.json:
        print_json({"name": name, "write_key": key})
    else:
        console.print(f"source [bold]{name}[/] created. Write key (shown once):")
        console.print(key, highlight=False, soft_wrap=True)


@sources_app.command("list")
def sources_list(ctx: typer.Context) -> None:
    """Every source, with when it was created and revoked."""
    opts = opts_of(ctx)
    with errors():
        items = SourceRegistry(opts.settings.data_dir).list()
    rows = [
        {"name": s.name, "created_at": s.created_at, "revoked_at": s.revoked_at, "active": s.active}
        for s in items
    ]
    if opts.json:
        print_json(rows)
    else:
        console.print(
            table(
                "sources",
                ["name", "created", "revoked"],
                [(r["name"], r["created_at"], r["revoked_at"]) for r in rows],
            )
        )


@sources_app.command("revoke")
def sources_revoke(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Refuse a source's write key from now on (401)."""
    opts = opts_of(ctx)
    with errors():
        source = SourceRegistry(opts.settings.data_dir).revoke(name)
    if opts.json:
        print_json({"name": source.name, "revoked_at": source.revoked_at})
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
    opts = opts_of(ctx)
    with errors():
        con = Engine.open_read_only(opts.settings)
        try:
            letters = deadletters.select(con, None if all_ else deadletters.PENDING, limit)
        finally:
            con.close()
    if opts.json:
        print_json([d.as_dict(with_body=body) for d in letters])
    else:
        console.print(
            table(
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
    opts = opts_of(ctx)
    with errors(), Engine.open(opts.settings) as engine:
        report = deadletters.retry(engine.con, engine.append, _rebuild, datetime.now(UTC))
    data = {
        "retried": report.retried,
        "events": report.events,
        "still_failing": report.still_failing,
    }
    if opts.json:
        print_json(data)
    else:
        console.print(
            f"retried {report.retried} ({report.events} events appended); "
            f"{report.still_failing} still failing"
        )
