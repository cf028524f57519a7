"""Kafka commands: ``cdp kafka init`` creates the topics, ``cdp kafka topics`` shows them.

Every command takes the broker from ``--bootstrap`` or ``CDP_KAFKA_BOOTSTRAP``
and the topic prefix from ``--prefix`` or ``CDP_KAFKA_PREFIX`` (``cdp.``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cdp.cli._app import console, errors, opts_of, print_json, sub_app, table
from cdp.cli._defaults import KAFKA_DEFAULT_PARTITIONS, KAFKA_DEFAULT_PREFIX
from cdp.config import KAFKA_BOOTSTRAP_ENV, KAFKA_PREFIX_ENV

if TYPE_CHECKING:
    from cdp.adapters.kafka.topics import TopicsReport

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
            t.configs.get("cleanup.policy", f"({t.spec.cleanup})"),
            _retention(t.configs.get("retention.ms"))
            or (f"({_retention(str(t.spec.retention_ms))})" if t.spec.retention_ms else ""),
        )
        for t in report.topics
    ]
    console.print(
        table(title, ["topic", "state", "key", "partitions", "cleanup", "retention"], rows)
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
    replication_factor: Annotated[
        int,
        typer.Option(min=1, help="Copies of each partition (3 in production, 1 for one broker)."),
    ] = 1,
) -> None:
    """Create the missing topics; check the existing ones (running it twice is fine).

    Exits 1 when an existing topic differs from the table (never changed here)."""
    from cdp.adapters.kafka import topics as kafka_topics  # noqa: PLC0415
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        settings = KafkaSettings.resolve(bootstrap, prefix, partitions)
        report = kafka_topics.init_topics(
            settings.bootstrap, settings.prefix, settings.partitions, replication_factor
        )
    _show(report, opts.json, f"topics on {settings.bootstrap}")
    if not opts.json:
        created = report.created
        console.print(
            f"created {len(created)} topic(s)" + (f": {', '.join(created)}" if created else "")
        )
    if not report.ok:
        raise typer.Exit(1)


@kafka_app.command("topics")
def topics_command(
    ctx: typer.Context,
    bootstrap: Bootstrap = None,
    partitions: Partitions = KAFKA_DEFAULT_PARTITIONS,
    prefix: Prefix = None,
) -> None:
    """The topics of the runtime as they exist on the broker, checked against the table."""
    from cdp.adapters.kafka import topics as kafka_topics  # noqa: PLC0415
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        settings = KafkaSettings.resolve(bootstrap, prefix, partitions)
        report = kafka_topics.describe(settings.bootstrap, settings.prefix, settings.partitions)
    _show(report, opts.json, f"topics on {settings.bootstrap}")
    if not report.ok:
        raise typer.Exit(1)
