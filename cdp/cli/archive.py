"""``cdp archive run`` and ``cdp archive status``: the Parquet archive of the Kafka topics."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdp.cli._app import console, err_console, errors, opts_of, print_json, sub_app, table
from cdp.config import KAFKA_BOOTSTRAP_ENV, KAFKA_PREFIX_ENV

if TYPE_CHECKING:
    from cdp.adapters.archive.manifest import Roll

archive_app = sub_app("archive", "Parquet archive of the Kafka topics (distributed mode).")

Bootstrap = Annotated[
    str | None,
    typer.Option("--bootstrap", envvar=KAFKA_BOOTSTRAP_ENV, help="Kafka HOST:PORT."),
]
Prefix = Annotated[
    str | None,
    typer.Option("--prefix", envvar=KAFKA_PREFIX_ENV, help="Topic name prefix [cdp.]."),
]


@archive_app.command("run")
def archive_run(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Archive directory.")],
    bootstrap: Bootstrap = None,
    prefix: Prefix = None,
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
        kafka = KafkaSettings.resolve(bootstrap, prefix)
        archiver = Archiver(
            out,
            kafka.bootstrap,
            ArchiveTopics.with_prefix(kafka.prefix),
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


def _status(root: Path) -> dict[str, Any]:
    from cdp.adapters.archive.layout import resolve  # noqa: PLC0415
    from cdp.adapters.archive.manifest import Manifest  # noqa: PLC0415

    manifest = Manifest.read(root)
    partitions: dict[tuple[str, str, int], dict[str, Any]] = {}
    for roll in manifest.rolls:
        entry = partitions.setdefault(
            (roll.kind, roll.topic, roll.partition),
            {
                "kind": roll.kind,
                "topic": roll.topic,
                "partition": roll.partition,
                "files": 0,
                "records": 0,
                "first": roll.first,
                "next": 0,
            },
        )
        entry["files"] += len(roll.files)
        entry["records"] += roll.records
        entry["first"] = min(entry["first"], roll.first)
        entry["next"] = max(entry["next"], roll.last + 1)
    recorded = manifest.files()
    size = sum(resolve(root, f).stat().st_size for f in recorded if resolve(root, f).exists())
    return {
        "archive": str(root),
        "rolls": len(manifest.rolls),
        "files": len(recorded),
        "bytes": size,
        "missing_files": [f for f in recorded if not resolve(root, f).exists()],
        "partitions": [partitions[k] for k in sorted(partitions)],
    }


@archive_app.command("status")
def archive_status(
    ctx: typer.Context,
    directory: Annotated[Path, typer.Argument(help="Archive directory.")],
) -> None:
    """What an archive holds: per topic partition, files, records and the next offset."""
    opts = opts_of(ctx)
    with errors():
        data = _status(directory)
    if opts.json:
        print_json(data)
        return
    console.print(
        f"{data['archive']}: {data['rolls']:,} roll(s), {data['files']:,} file(s), "
        f"{data['bytes'] / 1e6:.1f} MB"
    )
    columns = ["kind", "topic", "partition", "files", "records", "first", "next"]
    console.print(
        table("partitions", columns, [[p[c] for c in columns] for p in data["partitions"]])
    )
    if data["missing_files"]:
        err_console.print(f"[red]missing files:[/] {', '.join(data['missing_files'][:10])}")
        raise typer.Exit(1)
