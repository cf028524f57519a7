"""Collecting events: sources and dead letters (``cdp serve`` is in ``serving``).

The web server and the services load inside the commands (start-up cost, see
cdp/cli/_app.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdp.cli._app import (
    console,
    errors,
    opts_of,
    print_json,
    sub_app,
    table,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from cdp.ports.log import Record
    from cdp.services import deadletters
    from cdp.services.message_ids import MessageIds
    from cdp.services.webhook_settings import WebhookSettings
    from connectors.sources.webhooks import Mapped

sources_app = sub_app("sources", "Sources and their write keys.")
deadletter_app = sub_app("deadletter", "Requests rejected after authentication.")


# ------------------------------------------------------------------- sources
@sources_app.command("add")
def sources_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    origin: Annotated[
        list[str] | None,
        typer.Option(
            "--origin",
            help="A browser origin (https://shop.example.jp) whose pages may send with this "
            "key (CORS); repeat for several; '*' allows any site.",
        ),
    ] = None,
    snowplow_app_id: Annotated[
        list[str] | None,
        typer.Option(
            "--snowplow-app-id",
            help="A Snowplow tracker app id (appId/aid) whose events belong to this source "
            "(POST /com.snowplowanalytics.snowplow/tp2, GET /i); repeatable.",
        ),
    ] = None,
) -> None:
    """Create a source and print its write key (shown once, stored only hashed)."""
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.sources import SourceRegistry  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        registry = SourceRegistry(opts.settings.data_dir)
        key = registry.add(name, origins=origin or (), snowplow_app_ids=snowplow_app_id or ())
        origins = next(s.origins for s in registry.list() if s.name == name)
        audit.record_cli(
            opts.settings.data_dir,
            "source.add",
            f"source:{name}",
            {"origins": list(origins), "snowplow_app_ids": list(snowplow_app_id or ())},
        )
    if opts.json:
        print_json(
            {
                "name": name,
                "write_key": key,
                "origins": list(origins),
                "snowplow_app_ids": list(snowplow_app_id or ()),
            }
        )
    else:
        console.print(f"source [bold]{name}[/] created. Write key (shown once):")
        console.print(key, highlight=False, soft_wrap=True)
        if origins:
            console.print(f"browser origins allowed: {', '.join(origins)}", highlight=False)
        if snowplow_app_id:
            console.print(f"Snowplow app ids: {', '.join(snowplow_app_id)}", highlight=False)


@sources_app.command("origins")
def sources_origins(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    add: Annotated[
        list[str] | None, typer.Option("--add", help="Allow this origin (repeatable).")
    ] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="Stop allowing it (repeatable).")
    ] = None,
) -> None:
    """Show or change the browser origins allowed to send with a source's key.

    Takes effect at once, also in a running `cdp serve`. Without --add/--remove
    it prints the current list."""
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.sources import SourceRegistry  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        source = SourceRegistry(opts.settings.data_dir).set_origins(
            name, add=add or (), remove=remove or ()
        )
        if add or remove:
            audit.record_cli(
                opts.settings.data_dir,
                "source.origins",
                f"source:{name}",
                {"origins": list(source.origins)},
            )
    if opts.json:
        print_json({"name": source.name, "origins": list(source.origins)})
    elif source.origins:
        console.print(
            f"source [bold]{name}[/] allows: {', '.join(source.origins)}", highlight=False
        )
    else:
        console.print(f"source [bold]{name}[/] allows no browser origin")


@sources_app.command("list")
def sources_list(ctx: typer.Context) -> None:
    """Every source, with when it was created and revoked."""
    from cdp.services.sources import SourceRegistry  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        items = SourceRegistry(opts.settings.data_dir).list()
    rows = [
        {
            "name": s.name,
            "created_at": s.created_at,
            "revoked_at": s.revoked_at,
            "active": s.active,
            "origins": list(s.origins),
            "snowplow_app_ids": list(s.snowplow_app_ids),
        }
        for s in items
    ]
    if opts.json:
        print_json(rows)
    else:
        console.print(
            table(
                "sources",
                ["name", "created", "revoked", "origins", "snowplow app ids"],
                [
                    (
                        s.name,
                        s.created_at,
                        s.revoked_at,
                        " ".join(s.origins),
                        " ".join(s.snowplow_app_ids),
                    )
                    for s in items
                ],
            )
        )


@sources_app.command("revoke")
def sources_revoke(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Refuse a source's write key from now on (401)."""
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.sources import SourceRegistry  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        source = SourceRegistry(opts.settings.data_dir).revoke(name)
        audit.record_cli(opts.settings.data_dir, "source.revoke", f"source:{name}")
    if opts.json:
        print_json({"name": source.name, "revoked_at": source.revoked_at})
    else:
        console.print(f"source [bold]{name}[/] revoked at {source.revoked_at}")


@sources_app.command("rotate")
def sources_rotate(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Give a source a new write key (shown once); the old key is refused (401) from
    now on, also by a running `cdp serve`. Events keep the source's name."""
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.sources import SourceRegistry  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        key = SourceRegistry(opts.settings.data_dir).rotate(name)
        audit.record_cli(opts.settings.data_dir, "source.rotate", f"source:{name}")
    if opts.json:
        print_json({"name": name, "write_key": key})
    else:
        console.print(f"source [bold]{name}[/] has a new write key (shown once):")
        console.print(key, highlight=False, soft_wrap=True)


# ---------------------------------------------------------------- deadletter
@deadletter_app.command("list")
def deadletter_list(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include retried ones.")] = False,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    body: Annotated[bool, typer.Option(help="Show the stored bodies.")] = False,
) -> None:
    """Rejected requests with their reasons."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.services import deadletters  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        con = bootstrap.open_read(opts.settings)
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


def _rebuild(
    letter: deadletters.DeadLetter, hooks: Callable[[], WebhookSettings] | None = None
) -> list[Record] | deadletters.Rebuilt:
    """Run a dead letter through the path that rejected it (signatures were checked
    when it arrived). The SFA webhooks' letters are mapped with the webhook
    settings ``hooks`` gives (read when the first one needs them: the data
    directory's). Form posts (their content type is not kept) cannot be re-run
    and stay pending."""
    import orjson  # noqa: PLC0415

    from cdp.errors import UnmappableError  # noqa: PLC0415
    from cdp.services import collector, deadletters, webhook_settings  # noqa: PLC0415
    from cdp.services.ingest import to_record  # noqa: PLC0415
    from connectors.sources import snowplow  # noqa: PLC0415
    from connectors.sources.webhooks import orders, shopify  # noqa: PLC0415
    from connectors.sources.webhooks.registry import SIGNED  # noqa: PLC0415
    from connectors.sources.webhooks.sfa import SALES  # noqa: PLC0415

    endpoint = letter.endpoint
    ids = deadletters.retry_message_ids(letter)  # the same on every retry: idempotent
    if endpoint == "bulk":  # one JSONL line
        return [to_record(letter.body, letter.received_at, letter.source, message_id=ids(0))]
    if endpoint.startswith("webhook:"):
        platform, _, topic = endpoint.removeprefix("webhook:").partition(":")
        if platform in SALES:
            settings = hooks() if hooks is not None else webhook_settings.WebhookSettings()
            return _split(letter, SALES[platform].reparse(settings, letter.body), ids)
        payload = orjson.loads(letter.body)
        if not isinstance(payload, dict):
            raise UnmappableError(f"dead letter {letter.id} ({endpoint}) is not a JSON object")
        events: list[dict[str, Any]]
        if platform == "shopify":
            events = shopify.to_events(topic, payload)
        elif platform == "orders":
            events = orders.to_events(payload)
        elif platform in SIGNED:
            return _split(letter, SIGNED[platform].to_events(payload), ids)
        else:
            raise UnmappableError(f"dead letter {letter.id} ({endpoint}) cannot be re-run")
        return collector.to_records(events, letter.received_at, letter.source, message_ids=ids)
    if endpoint.startswith("snowplow:"):  # tracker protocol: the body or the pixel's query
        events = snowplow.dead_letter_events(endpoint, letter.body)
        return collector.to_records(
            events, letter.received_at, letter.source, server_received_at=True, message_ids=ids
        )
    if endpoint in (*collector.SINGLE_TYPES, *collector.BATCH_ENDPOINTS):
        items, _ = collector.parse(endpoint, letter.body)
        return collector.to_records(
            items,
            letter.received_at,
            letter.source,
            single=endpoint in collector.SINGLE_TYPES,
            server_received_at=True,
            message_ids=ids,
        )
    raise UnmappableError(f"dead letter {letter.id} ({endpoint}) cannot be re-run by retry")


def _split(
    letter: deadletters.DeadLetter, mapped: Mapped, ids: MessageIds
) -> list[Record] | deadletters.Rebuilt:
    """The records of a re-mapped webhook letter; items it still skips stay dead
    letters: the letter itself when nothing maps (``UnmappableError`` with their
    reasons), else one new letter each beside the records (``Rebuilt``)."""
    import orjson  # noqa: PLC0415

    from cdp.errors import UnmappableError  # noqa: PLC0415
    from cdp.services import collector, deadletters  # noqa: PLC0415

    events, skipped = mapped
    if skipped and not events:
        raise UnmappableError("; ".join(str(s) for s in skipped))
    records = collector.to_records(events, letter.received_at, letter.source, message_ids=ids)
    if not skipped:
        return records
    return deadletters.Rebuilt(records, [(str(s), orjson.dumps(s.item)) for s in skipped])


@deadletter_app.command("retry")
def deadletter_retry(ctx: typer.Context) -> None:
    """Run pending dead letters through validation again; append those that now pass."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.services import deadletters, webhook_settings  # noqa: PLC0415
    from cdp.services.privacy.suppressions import SuppressionGate  # noqa: PLC0415

    opts = opts_of(ctx)
    gate = SuppressionGate.load(opts.settings.data_dir)  # a retry is a door too
    loaded: list[WebhookSettings] = []

    def hooks() -> WebhookSettings:
        if not loaded:  # a broken webhooks.toml fails the SFA letters only, each saying why
            loaded.append(webhook_settings.load(opts.settings.data_dir))
        return loaded[0]

    def rebuild(letter: deadletters.DeadLetter) -> list[Record] | deadletters.Rebuilt:
        rebuilt = _rebuild(letter, hooks)
        if isinstance(rebuilt, deadletters.Rebuilt):
            return deadletters.Rebuilt(gate.keep(rebuilt.records, set()), rebuilt.unmapped)
        return gate.keep(rebuilt, set())

    with errors(), bootstrap.open_data(opts.settings, ", then retry") as engine:
        report = deadletters.retry(engine.con, engine.append, rebuild, datetime.now(UTC))
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
