"""Read the distributed result back: profiles, identities and merges as plain dicts.

A test and bench helper (the worker tests in tests/integration/kafka and
``python -m bench.worker``), not part of the platform.

``read(bootstrap, settings)`` consumes ``cdp.profiles``,
``cdp.identity.assignments`` and ``cdp.identity.merges`` from the beginning to
their current end (kafka-python, no consumer group, nothing committed) and
returns what the embedded runtime keeps in its ``customers`` and
``identity_graph`` tables, so tests and tools can compare the two runtimes:

- ``profiles``: customer id → the snapshot row (``cdp.runtime.customer.customer_row``
  columns; ``profile_state``/``lead_state`` are the exact fold states as JSON);
- ``identity_rows``: the identity graph's rows (``IdentityGraph.to_rows()``
  order and shape);
- ``merges`` / ``rejections``: in decision order, duplicates (a redelivered
  batch publishes the same decision twice) removed.

``Follower`` does the same incrementally, for polling a result that is still
growing; ``comparable`` and ``embedded_profiles`` give the per-customer view
both runtimes must agree on exactly, and ``Parity`` tracks which customers
still differ as a ``Follower`` reads on.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from cdp.adapters.kafka import topics as kafka_topics
from cdp.adapters.kafka.consumers import known_ends, open_consumer
from cdp.errors import NotFoundError
from cdp.runtime import customer
from projections import identity
from streams import messages

if TYPE_CHECKING:
    from cdp.runtime.embedded import EmbeddedRuntime


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

    def comparable_profiles(self) -> dict[str, dict[str, Any]]:
        """customer id → ``comparable(row)`` of each published snapshot."""
        return {c: comparable(row) for c, row in self.profiles.items()}


def comparable(row: Mapping[str, Any]) -> dict[str, Any]:
    """What two runtimes must agree on for one customer: the exact fold states, score and stage.

    ``row`` is a customers-table row (``cdp.runtime.customer.customer_row``), embedded or published."""
    return {
        "profile_state": orjson.loads(row["profile_state"]),
        "lead_state": orjson.loads(row["lead_state"]),
        "lead_score": row["lead_score"],
        "lifecycle_stage": row["lifecycle_stage"],
    }


def embedded_profiles(runtime: EmbeddedRuntime) -> dict[str, dict[str, Any]]:
    """customer id → ``comparable(row)``, as the embedded runtime has it."""
    rules = runtime.config.scoring
    return {
        c: comparable(customer.customer_row(c, runtime.profiles[c], runtime.leads[c], rules))
        for c in runtime.profiles
    }


class Follower:
    """Follows the published topics with one consumer (no group) and keeps their latest state.

    ``catch_up()`` reads on from where the last call stopped to the topics'
    current end, so polling a large, growing result costs only what is new
    (re-reading ~216,000 profile snapshots from the start takes over a minute).
    """

    def __init__(self, bootstrap: str, prefix: str = kafka_topics.DEFAULT_PREFIX) -> None:
        from kafka import TopicPartition  # noqa: PLC0415

        self._consumer = open_consumer(
            bootstrap, request_timeout_ms=15_000, max_partition_fetch_bytes=8 * 1024 * 1024
        )
        self._topics = {
            prefix + kafka_topics.PROFILES: self._profile,
            prefix + kafka_topics.IDENTITY_ASSIGNMENTS: self._assignment,
            prefix + kafka_topics.IDENTITY_MERGES: self._decision,
        }
        missing = [t for t in self._topics if not self._consumer.partitions_for_topic(t)]
        if missing:
            self._consumer.close()
            raise NotFoundError(
                f"no topic {', '.join(missing)} on {bootstrap}: wrong prefix {prefix!r}, "
                "or `cdp kafka init` not run yet"
            )
        self._tps = [
            TopicPartition(topic, p)
            for topic in self._topics
            for p in sorted(self._consumer.partitions_for_topic(topic))
        ]
        self._consumer.assign(self._tps)
        self._consumer.seek_to_beginning(*self._tps)
        self.profiles: dict[str, dict[str, Any]] = {}
        self._rows: dict[bytes, identity.Row] = {}
        self._merges: list[dict[str, Any]] = []
        self._rejections: list[dict[str, Any]] = []
        self._seen: set[bytes] = set()
        self._changed: set[str] = set()

    def catch_up(self, timeout: float = 60.0) -> DistributedState:
        """Read every topic to its end as of this call (or until ``timeout``); the state then."""
        for tp, batch in _to_end(self._consumer, self._tps, timeout):
            self._fold(tp, batch)
        return self.state()

    def poll(self, timeout_ms: int = 200) -> int:
        """Fold whatever one poll returns; how many records that was."""
        polled = self._consumer.poll(timeout_ms=timeout_ms, max_records=_MAX_RECORDS)
        return sum(self._fold(tp, batch) for tp, batch in polled.items())

    def _fold(self, tp: Any, batch: list[Any]) -> int:
        fold = self._topics[tp.topic]
        for record in batch:
            fold(record.key, record.value)
        return len(batch)

    def state(self) -> DistributedState:
        """What has been read so far."""
        return DistributedState(
            dict(self.profiles),
            sorted(self._rows.values()),
            list(self._merges),
            list(self._rejections),
        )

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> Follower:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def take_changed(self) -> set[str]:
        """Customers whose published profile changed (or went) since the last call."""
        changed, self._changed = self._changed, set()
        return changed

    def _profile(self, key: bytes, value: bytes | None) -> None:
        customer_id = key.decode()
        self._changed.add(customer_id)
        if value is None:
            self.profiles.pop(customer_id, None)
        else:
            self.profiles[customer_id] = orjson.loads(value)

    def _assignment(self, key: bytes, value: bytes) -> None:
        self._rows[key] = messages.assignment_row(value)

    def _decision(self, key: bytes, value: bytes) -> None:
        if value in self._seen:  # a redelivered batch publishes the same decision again
            return
        self._seen.add(value)
        body = orjson.loads(value)
        (self._merges if body.pop("kind") == "merge" else self._rejections).append(body)


class Parity:
    """Which customers a ``Follower`` has published differently from ``want``, kept current.

    ``want`` maps customer id → ``comparable(row)`` (``embedded_profiles``).
    Each ``check()`` compares only the customers whose snapshot changed since
    the last one, so checking after every poll of a large run stays cheap.
    """

    def __init__(self, follower: Follower, want: Mapping[str, dict[str, Any]]) -> None:
        self._follower = follower
        self.want = want
        self.differ: set[str] = set(want)
        """Customers missing, extra or different in what has been read so far."""

    def check(self) -> bool:
        """Whether every customer's published profile now equals ``want`` (and no others)."""
        got = self._follower.profiles
        for customer_id in self._follower.take_changed():
            row, wanted = got.get(customer_id), self.want.get(customer_id)
            same = wanted is None if row is None else wanted == comparable(row)
            if same:
                self.differ.discard(customer_id)
            else:
                self.differ.add(customer_id)
        return not self.differ


def records(bootstrap: str, topic: str, timeout: float) -> Iterator[Any]:
    """Every record of ``topic`` (all partitions) up to its end at the time of the call."""
    from kafka import TopicPartition  # noqa: PLC0415

    consumer = open_consumer(bootstrap, request_timeout_ms=15_000)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        for _, batch in _to_end(consumer, tps, timeout):
            yield from batch
    finally:
        consumer.close()


_MAX_RECORDS = 50_000


def _to_end(consumer: Any, tps: list[Any], timeout: float) -> Iterator[tuple[Any, list[Any]]]:
    """(partition, records) batches until every partition in ``tps`` reaches its end
    as of the call (``known_ends``), or ``timeout`` seconds pass."""
    ends = known_ends(consumer, tps)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(consumer.position(tp) >= ends[tp] for tp in tps):
            break
        yield from consumer.poll(timeout_ms=200, max_records=_MAX_RECORDS).items()
    # One last look: end offsets may lag on brokers that misreport them.
    yield from consumer.poll(timeout_ms=100, max_records=_MAX_RECORDS).items()


def read(
    bootstrap: str, prefix: str = kafka_topics.DEFAULT_PREFIX, timeout: float = 60.0
) -> DistributedState:
    """The profiles, identities and merges published on the topics (see the module doc)."""
    with Follower(bootstrap, prefix) as follower:
        return follower.catch_up(timeout)
