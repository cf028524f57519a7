"""Read the distributed result back: profiles, identities and merges as plain dicts.

``read(bootstrap, settings)`` consumes ``cdp.profiles``,
``cdp.identity.assignments`` and ``cdp.identity.merges`` from the beginning to
their current end (kafka-python, no consumer group, nothing committed) and
returns what the embedded runtime keeps in its ``customers`` and
``identity_graph`` tables, so tests and tools can compare the two runtimes:

- ``profiles``: customer id → the snapshot row (``cdp.store.customer_row``
  columns; ``profile_state``/``lead_state`` are the exact fold states as JSON);
- ``identity_rows``: the identity graph's rows (``IdentityGraph.to_rows()``
  order and shape);
- ``merges`` / ``rejections``: in decision order, duplicates (a redelivered
  batch publishes the same decision twice) removed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from cdp import kafka_topics
from projections import identity
from streams import messages


@dataclass(frozen=True, slots=True)
class DistributedState:
    """What the workers have published so far."""

    profiles: dict[str, dict[str, Any]]
    identity_rows: list[identity.Row]
    merges: list[dict[str, Any]]
    rejections: list[dict[str, Any]]

    def assignments(self) -> dict[str, str]:
        """Identifier key → live customer id."""
        return {row[0]: row[1] for row in self.identity_rows if row[0]}


def _records(bootstrap: str, topic: str, timeout: float) -> Iterator[Any]:
    """Every record of ``topic`` (all partitions) up to its end at the time of the call."""
    from kafka import KafkaConsumer, TopicPartition  # noqa: PLC0415

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=15_000
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(consumer.position(tp) >= ends[tp] for tp in tps):
                break
            for batch in consumer.poll(timeout_ms=200).values():
                yield from batch
        # One last look: end offsets may lag on brokers that misreport them.
        for batch in consumer.poll(timeout_ms=100).values():
            yield from batch
    finally:
        consumer.close()


def read(
    bootstrap: str, prefix: str = kafka_topics.DEFAULT_PREFIX, timeout: float = 60.0
) -> DistributedState:
    """The profiles, identities and merges published on the topics (see the module doc)."""
    profiles: dict[str, dict[str, Any]] = {}
    for record in _records(bootstrap, prefix + kafka_topics.PROFILES, timeout):
        customer = record.key.decode()
        if record.value is None:
            profiles.pop(customer, None)
        else:
            profiles[customer] = orjson.loads(record.value)
    rows: dict[bytes, identity.Row] = {}
    for record in _records(bootstrap, prefix + kafka_topics.IDENTITY_ASSIGNMENTS, timeout):
        rows[record.key] = messages.assignment_row(record.value)
    merges: list[dict[str, Any]] = []
    rejections: list[dict[str, Any]] = []
    seen: set[bytes] = set()
    for record in _records(bootstrap, prefix + kafka_topics.IDENTITY_MERGES, timeout):
        if record.value in seen:
            continue
        seen.add(record.value)
        body = orjson.loads(record.value)
        (merges if body.pop("kind") == "merge" else rejections).append(body)
    return DistributedState(profiles, sorted(rows.values()), merges, rejections)
