"""What a worker learns from the topics before it starts: partitions and replication.

A worker never creates topics and never assumes a partition count: faust
refuses (``PartitionsMismatch``) to run a table whose changelog is
partitioned unlike its source topic, and keeps the process up while it
crash-loops. So the worker reads the layout ``cdp kafka init`` made, checks
that every topic agrees with it, and only then builds the app:

- the partition count N is the by-customer topic's; the other keyed topics
  and the customers changelog must have exactly N, the one-partition topics 1;
- a topic missing means ``cdp kafka init`` has not run (yet): ``wait_for_layout``
  waits for it with a log line naming the topics, then gives up;
- anything else that differs is a ``ConfigError`` (``cdp worker`` exits 2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cdp.adapters.kafka import admin
from cdp.adapters.kafka.topics import DEFAULT_APP_ID, EVENTS_BY_CUSTOMER, KafkaSettings, group_id
from cdp.errors import ConfigError, LogUnavailableError

log = logging.getLogger(__name__)

SAY_EVERY = 10.0
"""Seconds between two "still waiting" log lines."""


@dataclass(frozen=True, slots=True)
class Layout:
    """The topics as ``cdp kafka init`` made them."""

    partitions: int
    """Partitions of the keyed topics (by-customer, assignments, profiles, customers changelog)."""
    replication: int
    """The fewest copies of any topic's partitions (1 where the broker does not say)."""


class TopicsMissingError(ConfigError):
    """Topics of the table do not exist: ``cdp kafka init`` has not run for this prefix."""

    def __init__(self, missing: list[str], init_hint: str) -> None:
        self.missing = missing
        super().__init__(
            f"topics missing: {', '.join(missing)}; only `cdp kafka init` creates topics "
            f"(run {init_hint})"
        )


def init_hint(settings: KafkaSettings, app_id: str) -> str:
    """The ``cdp kafka init`` command line that makes the topics ``settings`` name."""
    words = ["cdp kafka init", f"--bootstrap {settings.bootstrap}", f"--prefix {settings.prefix}"]
    if settings.input_prefix is not None:
        words.append(f"--input-prefix {settings.input_prefix}")
    if app_id != DEFAULT_APP_ID:
        words.append(f"--app-id {app_id}")
    return "`" + " ".join(words) + " --partitions N --replication-factor R`"


def discover(settings: KafkaSettings, app_id: str, expected: int | None = None) -> Layout:
    """The layout of the topics of ``settings`` for the workers ``app_id``.

    ``expected``: the partition count the operator said (``--partitions``);
    a different count on the broker is refused rather than followed."""
    by_customer = settings.topic(EVENTS_BY_CUSTOMER)
    probe = admin.describe(
        settings.bootstrap, settings.prefix, 1, input_prefix=settings.input_prefix, app_id=app_id
    )
    missing = probe.missing
    if missing:
        raise TopicsMissingError(missing, init_hint(settings, app_id))
    found = {t.spec.name: t for t in probe.topics}
    partitions = found[by_customer].partitions or 0
    if expected is not None and partitions != expected:
        raise ConfigError(
            f"{by_customer} has {partitions} partitions, but --partitions says {expected}: "
            f"drop --partitions (the worker follows the topics) or re-create the topics "
            f"with `cdp kafka init --partitions {expected}` under a new --prefix"
        )
    report = admin.describe(
        settings.bootstrap,
        settings.prefix,
        partitions,
        input_prefix=settings.input_prefix,
        app_id=app_id,
    )
    wrong = [
        f"{t.spec.name} has {t.partitions}, expected {t.spec.partitions}"
        for t in report.topics
        if t.partitions != t.spec.partitions
    ]
    if wrong:
        raise ConfigError(
            f"the topics of group {group_id(settings.prefix, app_id)} disagree on partitions "
            f"(by-customer has {partitions}): {'; '.join(wrong)}. Every keyed topic and the "
            "customers changelog must have the same count (docs/operations.md, partitions)"
        )
    copies = [t.replicas for t in report.topics if t.replicas is not None]
    return Layout(partitions, min(copies) if copies else 1)


def wait_for_layout(
    settings: KafkaSettings,
    app_id: str,
    *,
    expected: int | None = None,
    wait: float = 300.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Layout:
    """``discover``, waiting up to ``wait`` seconds for missing topics or an unreachable
    broker, with an INFO line every ``SAY_EVERY`` seconds; then the last error."""
    deadline = time.monotonic() + wait
    said = 0.0
    while True:
        try:
            return discover(settings, app_id, expected)
        except (TopicsMissingError, LogUnavailableError) as error:
            now = time.monotonic()
            if now >= deadline:
                raise ConfigError(f"gave up after {wait:.0f} s: {error}") from None
            if now - said >= SAY_EVERY:
                log.info("waiting for the topics (%.0f s left): %s", deadline - now, error)
                said = now
            sleep(min(1.0, deadline - now))
