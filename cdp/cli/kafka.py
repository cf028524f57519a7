"""Kafka commands: ``cdp kafka init`` creates the topics, ``cdp kafka topics`` shows them.

Every command takes the broker from ``--bootstrap`` or ``CDP_KAFKA_BOOTSTRAP``,
the topic prefix from ``--prefix`` or ``CDP_KAFKA_PREFIX`` (``cdp.``), and the
input log's own prefix from ``--input-prefix`` or ``CDP_KAFKA_INPUT_PREFIX``
(default: the prefix). ``cdp kafka init`` is the only command that creates topics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cdp.cli._app import console, errors, opts_of, print_json, sub_app, table
from cdp.cli._defaults import KAFKA_DEFAULT_APP_ID, KAFKA_DEFAULT_PARTITIONS, KAFKA_DEFAULT_PREFIX
from cdp.config import (
    KAFKA_BOOTSTRAP_ENV,
    KAFKA_INPUT_PREFIX_ENV,
    KAFKA_PREFIX_ENV,
    KAFKA_REPLICATION_ENV,
)

if TYPE_CHECKING:
    from cdp.adapters.kafka.admin import TopicsReport

kafka_app = sub_app("kafka", "Kafka topics of the distributed runtime.")

Bootstrap = Annotated[
    str | None,
    typer.Option(
        "--bootstrap",
        envvar=KAFKA_BOOTSTRAP_ENV,
        help=f"Broker HOST:PORT; also ${KAFKA_BOOTSTRAP_ENV}.",
    ),
]
Prefix = Annotated[
    str | None,
    typer.Option(help=f"Topic name prefix [{KAFKA_DEFAULT_PREFIX}]; also ${KAFKA_PREFIX_ENV}."),
]
InputPrefix = Annotated[
    str | None,
    typer.Option(
        "--input-prefix",
        envvar=KAFKA_INPUT_PREFIX_ENV,
        help="Prefix of the input log alone (default: --prefix); a new generation of "
        f"workers reads the old log: --prefix cdp.v2. --input-prefix cdp.; ${KAFKA_INPUT_PREFIX_ENV}.",
    ),
]
AppId = Annotated[
    str,
    typer.Option(
        "--app-id",
        help="The workers' app id: their consumer group and table changelogs are "
        "PREFIX+APP_ID (cdp.cdp-worker).",
    ),
]
Partitions = Annotated[
    int,
    typer.Option(
        min=1, help="Partitions of the keyed topics (by-customer, assignments, profiles)."
    ),
]


def _retention(value: str | None) -> str:
    if value is None:
        return ""
    if value == "-1":
        return "forever"
    from cdp.adapters.kafka import topics as kafka_topics  # noqa: PLC0415

    millis = int(value)
    day = kafka_topics.DAY_MS
    return f"{millis // day} d" if millis % day == 0 else f"{millis} ms"


def _show(report: TopicsReport, as_json: bool, title: str) -> None:
    if as_json:
        print_json({"ok": report.ok, "topics": [t.as_dict() for t in report.topics]})
        return
    rows = [
        (
            t.spec.name,
            t.action,
            t.spec.key,
            "" if t.partitions is None else t.partitions,
            "" if t.replicas is None else t.replicas,
            t.configs.get("cleanup.policy", f"({t.spec.cleanup})"),
            _retention(t.configs.get("retention.ms"))
            or (f"({_retention(str(t.spec.retention_ms))})" if t.spec.retention_ms else ""),
        )
        for t in report.topics
    ]
    console.print(
        table(
            title, ["topic", "state", "key", "partitions", "replicas", "cleanup", "retention"], rows
        )
    )
    for state in report.topics:
        for problem in state.problems:
            console.print(f"[red]✗[/] {problem}", highlight=False, soft_wrap=True)
    if any(not t.configs for t in report.topics if t.action != "missing"):
        console.print(
            "values in (parentheses) are the table's: this broker does not report topic configs",
            highlight=False,
        )


@kafka_app.command("init")
def init_command(
    ctx: typer.Context,
    bootstrap: Bootstrap = None,
    partitions: Partitions = KAFKA_DEFAULT_PARTITIONS,
    prefix: Prefix = None,
    input_prefix: InputPrefix = None,
    app_id: AppId = KAFKA_DEFAULT_APP_ID,
    replication_factor: Annotated[
        int,
        typer.Option(
            min=1,
            envvar=KAFKA_REPLICATION_ENV,
            help="Copies of each partition (3 in production, with min.insync.replicas=2; "
            f"1 for one broker); also ${KAFKA_REPLICATION_ENV}.",
        ),
    ] = 1,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to keep trying while the brokers are unreachable or fewer are up "
            "than the replication factor (a cluster that is still forming).",
        ),
    ] = 120.0,
) -> None:
    """Create the missing topics, the workers' table changelogs included; check the
    existing ones (running it twice is fine). The only command that creates topics.

    Exits 1 when an existing topic differs from the table in partitions, replicas
    or configs (never changed here)."""
    from cdp.adapters.kafka import admin  # noqa: PLC0415
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        settings = KafkaSettings.resolve(bootstrap, prefix, partitions, input_prefix)
        report = admin.init_topics(
            settings.bootstrap,
            settings.prefix,
            settings.partitions,
            replication_factor,
            input_prefix=settings.input_prefix,
            app_id=app_id,
            wait=wait,
        )
    _show(report, opts.json, f"topics on {settings.bootstrap}")
    if not opts.json:
        created = report.created
        console.print(
            f"created {len(created)} topic(s)" + (f": {', '.join(created)}" if created else "")
        )
    if not report.ok:
        raise typer.Exit(1)


@kafka_app.command("drop")
def drop_command(
    ctx: typer.Context,
    prefix: Annotated[str, typer.Option(help="The generation to drop, e.g. cdp. (required).")],
    bootstrap: Bootstrap = None,
    app_id: AppId = KAFKA_DEFAULT_APP_ID,
    yes: Annotated[bool, typer.Option("--yes", help="Really delete the topics.")] = False,
) -> None:
    """Delete one generation of derived topics (profiles, identity, by-customer, dead
    letters, changelogs); never the log or its keys. Run it once a new generation
    folded the log and the API and workers moved to it: after an erasure, it removes
    the person's last copies (docs/privacy.md)."""
    from cdp.adapters.kafka import admin  # noqa: PLC0415
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415

    opts = opts_of(ctx)
    if not yes:
        console.print("nothing deleted: add --yes to delete the topics of generation " + prefix)
        raise typer.Exit(2)
    with errors():
        settings = KafkaSettings.resolve(bootstrap, prefix)
        dropped = admin.drop_generation(settings.bootstrap, prefix, app_id)
    if opts.json:
        print_json({"dropped": dropped})
    else:
        console.print(f"dropped {len(dropped)} topic(s): {', '.join(dropped) or '-'}")


@kafka_app.command("topics")
def topics_command(
    ctx: typer.Context,
    bootstrap: Bootstrap = None,
    partitions: Partitions = KAFKA_DEFAULT_PARTITIONS,
    prefix: Prefix = None,
    input_prefix: InputPrefix = None,
    app_id: AppId = KAFKA_DEFAULT_APP_ID,
    replication_factor: Annotated[
        int | None,
        typer.Option(
            min=1,
            envvar=KAFKA_REPLICATION_ENV,
            help="Copies each topic must have at least (default: checked only against "
            f"min.insync.replicas); also ${KAFKA_REPLICATION_ENV}.",
        ),
    ] = None,
) -> None:
    """The topics of the runtime as they exist on the broker, checked against the table."""
    from cdp.adapters.kafka import admin  # noqa: PLC0415
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        settings = KafkaSettings.resolve(bootstrap, prefix, partitions, input_prefix)
        report = admin.describe(
            settings.bootstrap,
            settings.prefix,
            settings.partitions,
            input_prefix=settings.input_prefix,
            app_id=app_id,
            replication_factor=replication_factor,
        )
    _show(report, opts.json, f"topics on {settings.bootstrap}")
    if not report.ok:
        raise typer.Exit(1)
