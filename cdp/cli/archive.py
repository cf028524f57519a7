"""``cdp archive run`` and ``cdp archive status``: the Parquet archive of the Kafka topics."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdp.cli._app import console, err_console, errors, opts_of, print_json, sub_app, table
from cdp.config import KAFKA_BOOTSTRAP_ENV, KAFKA_INPUT_PREFIX_ENV, KAFKA_PREFIX_ENV

if TYPE_CHECKING:
    from cdp.adapters.archive.manifest import Roll
    from cdp.adapters.archive.status import Where

archive_app = sub_app("archive", "Parquet archive of the Kafka topics (distributed mode).")

Bootstrap = Annotated[
    str | None,
    typer.Option("--bootstrap", envvar=KAFKA_BOOTSTRAP_ENV, help="Kafka HOST:PORT."),
]
Prefix = Annotated[
    str | None,
    typer.Option("--prefix", envvar=KAFKA_PREFIX_ENV, help="Topic name prefix [cdp.]."),
]
InputPrefix = Annotated[
    str | None,
    typer.Option(
        "--input-prefix",
        envvar=KAFKA_INPUT_PREFIX_ENV,
        help="Prefix of the input log topic alone [the prefix].",
    ),
]


@archive_app.command("run")
def archive_run(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Archive directory.")],
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
    input_prefix: InputPrefix = None,
    once: Annotated[bool, typer.Option(help="Stop once caught up with the topics.")] = False,
    max_records: Annotated[int, typer.Option(min=1, help="Roll a file at this many.")] = 50_000,
    max_mb: Annotated[float, typer.Option(min=0.001, help="Roll a file at this size.")] = 64.0,
    max_seconds: Annotated[float, typer.Option(min=0.0, help="Roll a file this old.")] = 60.0,
    accept_gap: Annotated[
        bool, typer.Option(help="Start at the oldest offset left if retention deleted some.")
    ] = False,
) -> None:
    """Copy cdp.log and the profile/identity topics into hive-partitioned Parquet."""
    from cdp.adapters.archive.layout import ArchiveTopics  # noqa: PLC0415
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415
    from connectors.destinations.archive import Archiver, RollPolicy  # noqa: PLC0415

    opts = opts_of(ctx)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_roll(roll: Roll) -> None:
        if not opts.json:
            err_console.print(
                f"archived {roll.topic}[{roll.partition}] {roll.first}..{roll.last} "
                f"({roll.records:,} records, {len(roll.files)} file(s))",
                highlight=False,
            )

    with errors():
        kafka = KafkaSettings.resolve(bootstrap, prefix, input_prefix=input_prefix)
        archiver = Archiver(
            out,
            kafka.bootstrap,
            ArchiveTopics.with_prefix(kafka.prefix, kafka.input_prefix),
            RollPolicy(max_records, int(max_mb * 1024 * 1024), max_seconds),
            accept_gap=accept_gap,
            on_roll=on_roll,
        )
        previous = signal.signal(signal.SIGTERM, on_signal)
        try:
            report = archiver.run(once=once, stop=stop)
        except KeyboardInterrupt:  # archiver.run rolled what it had; nothing is lost
            raise typer.Exit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
    if opts.json:
        print_json(report.as_dict())
    else:
        console.print(
            f"archived {report.records:,} records in {report.rolls:,} roll(s), "
            f"{report.files:,} file(s) → {out}"
        )
        if report.removed_on_start:
            console.print(f"removed {len(report.removed_on_start)} unrecorded file(s) on start")


@archive_app.command("status")
def archive_status(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Archive directory.")],
    bootstrap: Annotated[
        str | None,
        typer.Option(
            "--bootstrap",
            envvar=KAFKA_BOOTSTRAP_ENV,
            help="Kafka HOST:PORT: also show each topic's end offset and the gap "
            "(records not archived yet). Without it, the archive alone.",
        ),
    ] = None,
    prefix: Prefix = None,
    input_prefix: InputPrefix = None,
    max_gap: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Exit 1 when a topic has more records than this not archived yet "
            "(needs --bootstrap): an alert for cron or a probe.",
        ),
    ] = None,
) -> None:
    """What an archive holds per topic partition (files, records, next offset) and,
    with --bootstrap, how far it is behind each topic (end offset, gap)."""
    from cdp.adapters.archive.layout import ArchiveTopics  # noqa: PLC0415
    from cdp.adapters.archive.status import (  # noqa: PLC0415
        archive_status as read_status,
    )
    from cdp.adapters.archive.status import topics_to_check, with_ends  # noqa: PLC0415
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415
    from cdp.errors import ConfigError  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        data = read_status(directory)
        if max_gap is not None and bootstrap is None:
            raise ConfigError(
                "--max-gap needs the broker: pass --bootstrap HOST:PORT or set CDP_KAFKA_BOOTSTRAP"
            )
        if bootstrap is not None:
            kafka = KafkaSettings.resolve(bootstrap, prefix, input_prefix=input_prefix)
            expected = ArchiveTopics.with_prefix(kafka.prefix, kafka.input_prefix)
            topics = topics_to_check(data, expected)
            data = with_ends(data, topics, _topic_ends(kafka.bootstrap, topics.values()))
    behind = [t for t in data.get("topics", []) if max_gap is not None and t["gap"] > max_gap]
    if opts.json:
        print_json({**data, "max_gap": max_gap, "over_max_gap": [t["topic"] for t in behind]})
    else:
        _print_status(data)
    for topic in behind if not opts.json else []:
        err_console.print(
            f"[red]{topic['topic']}: {topic['gap']:,} records not archived "
            f"(more than --max-gap {max_gap:,})[/]",
            highlight=False,
        )
    if data["missing_files"] or behind:
        raise typer.Exit(1)


def _print_status(data: dict[str, Any]) -> None:
    console.print(
        f"{data['archive']}: {data['rolls']:,} roll(s), {data['files']:,} file(s), "
        f"{data['bytes'] / 1e6:.1f} MB"
    )
    columns = ["kind", "topic", "partition", "files", "records", "first", "next"]
    if "topics" in data:
        columns += ["end", "gap"]
    console.print(
        table("partitions", columns, [[p[c] for c in columns] for p in data["partitions"]])
    )
    if "topics" in data:
        totals = ["kind", "topic", "partitions", "next", "end", "gap"]
        rows = [[t[c] for c in totals] for t in data["topics"]]
        console.print(table("topics (next, end: summed over partitions)", totals, rows))
        console.print(f"not archived yet: {data['gap']:,} record(s)")
    if data["missing_files"]:
        err_console.print(f"[red]missing files:[/] {', '.join(data['missing_files'][:10])}")


def _topic_ends(bootstrap: str, topics: Iterable[str]) -> dict[Where, int]:
    """End offset of every partition of ``topics`` that exists on the broker.

    Each partition is fetched once from just below its reported end, because
    ``known_ends`` also takes the fetched high watermark (tansu reports the
    end of a multi-record batch wrongly); a few polls at most.
    """
    from cdp.adapters.kafka.consumers import (  # noqa: PLC0415
        kafka_python,
        known_ends,
        open_consumer,
    )
    from cdp.errors import ArchiveError  # noqa: PLC0415

    consumer = open_consumer(
        bootstrap,
        client_id="cdp-archive-status",
        unreachable=lambda error: ArchiveError(f"cannot reach Kafka at {bootstrap}: {error}"),
        max_partition_fetch_bytes=64 * 1024,
        fetch_max_wait_ms=100,
    )
    try:
        topic_partition = kafka_python().TopicPartition
        wanted = [
            topic_partition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not wanted:
            return {}
        consumer.assign(wanted)
        reported = consumer.end_offsets(wanted)
        filled = [tp for tp in wanted if reported.get(tp, 0) > 0]
        for tp in filled:
            consumer.seek(tp, reported[tp] - 1)
        for _ in range(10):
            if all(consumer.highwater(tp) is not None for tp in filled):
                break
            consumer.poll(timeout_ms=200, max_records=len(filled) or 1)
        return {(tp.topic, tp.partition): end for tp, end in known_ends(consumer, wanted).items()}
    finally:
        consumer.close()
