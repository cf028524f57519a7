"""``cdp privacy``: requests about a person (erase, suppress, unsuppress) and their status.

Other modules add commands to ``privacy_app`` (the APPI provision records:
``cdp/cli/privacy_records.py``). docs/privacy.md explains what each request does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from cdp.cli._app import console, errors, opts_of, print_json, sub_app, table
from cdp.cli.archive import Bootstrap, InputPrefix, Prefix
from connectors.destinations.erasure import erasure_steps

privacy_app = sub_app(
    "privacy", "A person's data: erasure, suppression, request status, APPI provision records."
)

Identifier = Annotated[
    str,
    typer.Argument(
        help="The person: an identifier key (email:a@b.jp, phone:090..., user_id:u1, "
        "anonymous_id:a1, line:U...) or a cus_ customer id."
    ),
]
Archive = Annotated[
    Path | None,
    typer.Option(
        "--archive",
        help="The Parquet archive directory to erase from too (cdp archive run --out).",
    ),
]


def _identifier(text: str) -> str:
    from cdp.errors import ConfigError  # noqa: PLC0415
    from cdp.read.keys import parse  # noqa: PLC0415

    try:
        return parse(text)
    except ValueError as error:
        raise ConfigError(f"{text!r} is not an identifier: {error}") from None


def _summary(counts: dict[str, int]) -> str:
    rows = sum(v for k, v in counts.items() if k not in ("customers", "identifiers", "file_bytes"))
    if not counts:
        return ""
    return f"{counts.get('customers', 0)} customer(s), {rows} row(s) removed"


def _show(requests: list[Any], as_json: bool) -> None:
    if as_json:
        print_json([r.public() for r in requests])
        return
    rows = [
        (
            r.id,
            r.type,
            r.subject_kind,
            r.status,
            r.received_at[:19],
            _summary(r.counts),
            "; ".join(f"{k}: {v}" for k, v in r.failed.items()) or (r.error or ""),
        )
        for r in requests
    ]
    console.print(
        table(
            "privacy requests",
            ["id", "type", "named by", "status", "received (UTC)", "counts", "failed"],
            rows,
        )
    )


def _kafka(bootstrap: str | None, prefix: str | None, input_prefix: str | None) -> Any:
    """The Kafka settings when a broker is named (``--bootstrap`` or its variable)."""
    if bootstrap is None:
        return None
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415

    return KafkaSettings.resolve(bootstrap, prefix, input_prefix=input_prefix)


def _eraser(settings: Any, kafka: Any) -> Any:
    """The Kafka-mode eraser for ``kafka`` settings (``None``: none)."""
    if kafka is None:
        return None
    from cdp.adapters.kafka.erase import KafkaErasure  # noqa: PLC0415

    return KafkaErasure(settings, kafka)


def _file_and_run(
    ctx: typer.Context, kind: str, identifier: str, archive: Path | None, kafka: Any = None
) -> None:
    from cdp.adapters.socket.client import ServerRunningError  # noqa: PLC0415
    from cdp.services.privacy import erase  # noqa: PLC0415
    from cdp.services.privacy.requests import Requests  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        key = _identifier(identifier)
        runtime = "embedded" if kafka is None else "kafka"
        request = Requests(opts.settings.data_dir).file(kind, key, erase.cli_actor(), runtime)
        try:
            steps = erasure_steps(opts.settings, archive)
            request = erase.run(opts.settings, request, steps, _eraser(opts.settings, kafka))
        except ServerRunningError as error:
            console.print(
                f"filed {request.id}; {error}. Suppression already applies. The server "
                "carries out the erasure itself within seconds, pausing its requests while "
                "it rewrites the data directory (`cdp privacy requests` shows when it is "
                "finished); one started with --defer-erasures leaves it for its next start "
                "or `cdp privacy process` once it is stopped.",
                highlight=False,
            )
            raise typer.Exit(3) from None
    _show([request], opts.json)
    if request.status not in ("finished",):
        raise typer.Exit(1)


@privacy_app.command("erase")
def erase_command(
    ctx: typer.Context,
    identifier: Identifier,
    archive: Archive = None,
    keep_accepting: Annotated[
        bool,
        typer.Option(
            "--keep-accepting",
            help="Erase only (Segment's DELETE_ONLY); by default the person is also "
            "suppressed, so their new events are refused (SUPPRESS_WITH_DELETE).",
        ),
    ] = False,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
    input_prefix: InputPrefix = None,
) -> None:
    """Erase a person everywhere the platform writes (docs/privacy.md).

    Embedded: needs the data directory to itself; beside a running `cdp serve`
    the request is filed and the server carries it out in a pause. With
    --bootstrap (Kafka mode, run with the API's data directory): destroys the
    person's keys in the key topic at once. Exit 0 finished, 1 partial or failed
    (see the table), 3 filed for the running server to carry out."""
    kind = "delete" if keep_accepting else "suppress-with-delete"
    _file_and_run(ctx, kind, identifier, archive, _kafka(bootstrap, prefix, input_prefix))


@privacy_app.command("suppress")
def suppress_command(ctx: typer.Context, identifier: Identifier) -> None:
    """Refuse the person's new events at every door; their data is kept."""
    _file_and_run(ctx, "suppress", identifier, None)


@privacy_app.command("unsuppress")
def unsuppress_command(ctx: typer.Context, identifier: Identifier) -> None:
    """Accept the person's events again."""
    _file_and_run(ctx, "unsuppress", identifier, None)


@privacy_app.command("requests")
def requests_command(
    ctx: typer.Context,
    status: Annotated[
        str | None, typer.Option(help="Only requests in this status (received, running, ...).")
    ] = None,
) -> None:
    """Every privacy request and its status (never the person's identifier)."""
    from cdp.services.privacy.requests import Requests  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        found = Requests(opts.settings.data_dir).all(status)
    _show(found, opts.json)


def process_open(settings: Any, kafka: Any = None) -> None:
    """Run the open privacy requests before a server takes the data directory (with
    ``kafka``, those filed in Kafka mode too); one line per request on stderr (the
    server then starts whatever their outcome)."""
    from cdp.services.privacy import erase  # noqa: PLC0415
    from cdp.services.privacy.requests import Requests  # noqa: PLC0415

    if not Requests(settings.data_dir).open():
        return
    for done in erase.process(settings, erasure_steps(settings, None), _eraser(settings, kafka)):
        print(f"privacy request {done.id} ({done.type}): {done.status}", file=sys.stderr)


@privacy_app.command("process")
def process_command(
    ctx: typer.Context,
    archive: Archive = None,
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
    input_prefix: InputPrefix = None,
) -> None:
    """Run the open requests (filed over the API, or interrupted by a crash); with
    --bootstrap, also those filed in Kafka mode."""
    from cdp.services.privacy import erase  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        kafka = _kafka(bootstrap, prefix, input_prefix)
        eraser = _eraser(opts.settings, kafka)
        done = erase.process(opts.settings, erasure_steps(opts.settings, archive), eraser)
    _show(done, opts.json)
    if any(r.status != "finished" for r in done):
        raise typer.Exit(1)
