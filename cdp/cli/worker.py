"""``cdp worker``: a faust worker of the distributed runtime (see docs/streams.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdp.cli._app import app, errors, opts_of
from cdp.cli._defaults import KAFKA_DEFAULT_APP_ID, KAFKA_DEFAULT_PREFIX
from cdp.cli.kafka import AppId, InputPrefix
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
            min=1,
            help="Optional check: the partitions the keyed topics must have. The worker "
            "follows the topics `cdp kafka init` made and exits 2 when they differ.",
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
            help=f"Prefix of the topics the workers write and of their group (default "
            f"{KAFKA_DEFAULT_PREFIX}); also ${KAFKA_PREFIX_ENV}."
        ),
    ] = None,
    input_prefix: InputPrefix = None,
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds to wait for the topics `cdp kafka init` makes (a line every 10 s "
            "says which are missing); then exit 2.",
        ),
    ] = 300.0,
    broker_profile: Annotated[
        str | None,
        typer.Option(
            "--broker-profile",
            envvar=BROKER_PROFILE_ENV,
            help="Settings for the broker kind: kafka, tansu or noida (default kafka).",
        ),
    ] = None,
    app_id: AppId = KAFKA_DEFAULT_APP_ID,
    loglevel: Annotated[
        str, typer.Option(help="faust's log level; the worker's own progress lines stay at info.")
    ] = "warning",
    metrics_port: Annotated[
        int,
        typer.Option(
            "--metrics-port",
            min=0,
            max=65535,
            help="Port of GET /metrics (Prometheus) and GET /health/live; 0: off.",
        ),
    ] = 6066,
    instance_id: Annotated[
        str | None,
        typer.Option(
            "--instance-id",
            help="Static group member id (group.instance.id): a worker restarted under "
            "the same id gets its partitions back without a rebalance. Default: host "
            "name + data directory, used where the broker profile has static membership.",
        ),
    ] = None,
) -> None:
    """Run a faust worker: identity, profiles and lead scores from the Kafka log.

    Stops cleanly on SIGTERM/SIGINT. Start as many as there are partitions to share."""
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415
    from streams.app import WorkerConfig  # noqa: PLC0415  (faust loads only for this command)
    from streams.worker import run  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        kafka = KafkaSettings.resolve(bootstrap, prefix, None, input_prefix)
        config = WorkerConfig(
            kafka=kafka,
            app_id=app_id,
            store=store,
            data_dir=data_dir or opts.settings.data_dir,
            broker_profile=broker_profile or DEFAULT_BROKER_PROFILE,
            runtime=opts.settings.runtime_config(),
            wait=wait,
            metrics_port=metrics_port,
            instance_id=instance_id,
        )
        run(config, loglevel, expected=partitions)
