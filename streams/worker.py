"""``cdp worker``: learn the topics' layout, compose the faust app, run it.

The worker creates no topic: it waits for the ones ``cdp kafka init`` makes,
follows their partition count, and refuses to start on topics that disagree
(``cdp.adapters.kafka.layout``), instead of letting faust crash-loop with
``PartitionsMismatch`` in a process that stays up.

The worker runs until SIGTERM or SIGINT; faust then stops the agents, waits
for the records in progress, flushes the producer and commits, so a stopped
worker hands its partitions over cleanly. A killed one is covered by the
idempotency guards (docs/streams.md).
"""

from __future__ import annotations

import dataclasses
import logging

import faust

from cdp.adapters.kafka.layout import Layout, wait_for_layout
from cdp.runtime import heap
from streams import agents, metrics
from streams.app import Wiring, WorkerConfig, create_app

log = logging.getLogger(__name__)


def build(config: WorkerConfig) -> Wiring:
    """The app with its agents registered (not started)."""
    wiring = create_app(config)
    agents.register(wiring)
    return wiring


def with_layout(config: WorkerConfig, expected: int | None = None) -> WorkerConfig:
    """``config`` with the partitions and replication of the topics, waiting for them
    up to ``config.wait`` seconds; ``expected``: the count the operator gave, if any."""
    layout: Layout = wait_for_layout(
        config.kafka, config.app_id, expected=expected, wait=config.wait
    )
    log.info(
        "topics of %s: %d partition(s) per keyed topic, %d replica(s)",
        config.group_id,
        layout.partitions,
        layout.replication,
    )
    kafka = dataclasses.replace(config.kafka, partitions=layout.partitions)
    return dataclasses.replace(config, kafka=kafka, replication=layout.replication)


def _waiting_aloud(config: WorkerConfig, expected: int | None) -> WorkerConfig:
    """``with_layout`` with its INFO lines on stderr: faust sets up logging only
    when it starts, and until the topics are there an operator must see why not."""
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s] [%(process)d] %(message)s"))
    quiet = logging.getLogger("cdp.adapters.kafka"), log
    for logger in quiet:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        return with_layout(config, expected)
    finally:
        for logger in quiet:
            logger.removeHandler(handler)


class _Worker(faust.Worker):
    """faust's worker, settling the heap once start-up (table recovery) is done."""

    async def on_startup_finished(self) -> None:
        await super().on_startup_finished()
        heap.settle()


def run(config: WorkerConfig, loglevel: str = "info", expected: int | None = None) -> None:
    """Run a worker in this process until it is told to stop."""
    config = _waiting_aloud(config, expected)
    (config.data_dir / "streams" / config.group_id).mkdir(parents=True, exist_ok=True)
    wiring = build(config)
    metrics.install(wiring, config.metrics_port)
    metrics.show_progress(loglevel)  # the streams logger at INFO, faust's own at loglevel
    worker = _Worker(wiring.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
