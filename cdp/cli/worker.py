"""``cdp worker``: a faust worker of the distributed runtime (see docs/streams.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdp.cli._app import app, errors, opts_of
from cdp.cli._defaults import KAFKA_DEFAULT_PREFIX
from cdp.config import (
    BROKER_PROFILE_ENV,
    DEFAULT_BROKER_PROFILE,
    KAFKA_BOOTSTRAP_ENV,
    KAFKA_PREFIX_ENV,
)


@app.command("worker")
def worker_command(
    ctx: typer.Context,
    bootstrap: Annotated[
        str | None,
        typer.Option(
            "--bootstrap",
            envvar=KAFKA_BOOTSTRAP_ENV,
            help=f"Kafka HOST:PORT; also ${KAFKA_BOOTSTRAP_ENV}.",
        ),
    ] = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            min=1, help="Partitions of the keyed topics (as given to `cdp kafka init`; default 4)."
        ),
    ] = None,
    store: Annotated[
        str, typer.Option(help="Table store: memory (tests) or rocksdb (production).")
    ] = "memory",
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="Where RocksDB tables live (default: the global --data-dir)."
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            help=f"Topic prefix (default {KAFKA_DEFAULT_PREFIX}); also ${KAFKA_PREFIX_ENV}."
        ),
    ] = None,
    broker_profile: Annotated[
        str | None,
        typer.Option(
            "--broker-profile",
            envvar=BROKER_PROFILE_ENV,
            help="Settings for the broker kind: kafka, tansu or noida (default kafka).",
        ),
    ] = None,
    app_id: Annotated[str, typer.Option(help="faust app id (consumer group).")] = "cdp-worker",
    loglevel: Annotated[str, typer.Option(help="Log level.")] = "warning",
) -> None:
    """Run a faust worker: identity, profiles and lead scores from the Kafka log.

    Stops cleanly on SIGTERM/SIGINT. Start as many as there are partitions to share."""
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415
    from streams.app import WorkerConfig  # noqa: PLC0415  (faust loads only for this command)
    from streams.worker import run  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        kafka = KafkaSettings.resolve(bootstrap, prefix, partitions)
        config = WorkerConfig(
            kafka=kafka,
            app_id=app_id,
            store=store,
            data_dir=data_dir or opts.settings.data_dir,
            broker_profile=broker_profile or DEFAULT_BROKER_PROFILE,
            runtime=opts.settings.runtime_config(),
        )
        run(config, loglevel)
