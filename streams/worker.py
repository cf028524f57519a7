"""``cdp worker``: compose the faust app, make sure the topics exist, run it.

The worker runs until SIGTERM or SIGINT; faust then stops the agents, waits
for the records in progress, flushes the producer and commits, so a stopped
worker hands its partitions over cleanly. A killed one is covered by the
idempotency guards (docs/streams.md).
"""

from __future__ import annotations

import logging

import faust

from cdp.adapters.kafka import topics as kafka_topics
from cdp.errors import ConfigError
from streams import agents
from streams.app import Wiring, WorkerConfig, create_app


def build(config: WorkerConfig) -> Wiring:
    """The app with its agents registered (not started)."""
    wiring = create_app(config)
    agents.register(wiring)
    return wiring


def ensure_topics(config: WorkerConfig) -> None:
    """Create missing topics of the table (idempotent); refuse a wrong log topic."""
    report = kafka_topics.init_topics(
        config.kafka.bootstrap, config.kafka.prefix, config.kafka.partitions
    )
    for state in report.topics:
        fixed_wrong = state.spec.fixed and state.partitions != state.spec.partitions
        if fixed_wrong or (state.partitions or 0) < state.spec.partitions:
            raise ConfigError("; ".join(state.problems) or f"topic {state.spec.name} is wrong")


def run(config: WorkerConfig, loglevel: str = "info") -> None:
    """Run a worker in this process until it is told to stop."""
    ensure_topics(config)
    (config.data_dir / "streams").mkdir(parents=True, exist_ok=True)
    wiring = build(config)
    logging.getLogger("streams").setLevel(loglevel.upper())
    worker = faust.Worker(wiring.app, loglevel=loglevel, quiet=True)
    worker.execute_from_commandline()
