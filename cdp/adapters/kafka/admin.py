"""The topics of the table on a broker: ``init_topics`` creates, ``describe`` checks.

``init_topics`` (``cdp kafka init``) is the only code that creates topics
(the workers' table changelogs included). It is idempotent: it creates what is
missing, never changes or shrinks what exists, and reports every difference
between what exists and the table of ``cdp.adapters.kafka.topics``:

- partition counts (the log, the merges, the dead letters and the identity
  changelog have exactly one; the keyed topics and the customers changelog N);
- replication: fewer copies than asked, or fewer copies than the topic's
  ``min.insync.replicas`` (every write with ``acks=all`` would then fail with
  NOT_ENOUGH_REPLICAS);
- the topic configs of the table, where the broker reports them (tansu does not).

It waits for the cluster while it forms (``wait`` seconds): a broker that does
not answer yet, or fewer brokers up than the replication factor, is retried,
not a failure.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from cdp.adapters.kafka.topics import (
    DEFAULT_APP_ID,
    DEFAULT_PARTITIONS,
    DEFAULT_PREFIX,
    KEYS,
    LOG,
    TopicSpec,
    topic_specs,
)
from cdp.errors import ConfigError, LogUnavailableError

log = logging.getLogger(__name__)

RETRY_EVERY = 2.0
"""Seconds between two attempts while the cluster forms."""


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as found on the broker, and how it differs from its spec."""

    spec: TopicSpec
    action: str  # "created" | "exists" | "missing"
    partitions: int | None
    configs: dict[str, str]
    problems: tuple[str, ...] = ()
    replicas: int | None = None
    """Copies of each partition (the fewest over its partitions)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.spec.name,
            "action": self.action,
            "key": self.spec.key,
            "partitions": self.partitions,
            "expected_partitions": self.spec.partitions,
            "replicas": self.replicas,
            "min_insync_replicas": self.configs.get("min.insync.replicas"),
            "cleanup": self.configs.get("cleanup.policy"),
            "retention_ms": self.configs.get("retention.ms"),
            "problems": list(self.problems),
        }


@dataclass(frozen=True, slots=True)
class TopicsReport:
    """What ``init_topics`` / ``describe`` found, one entry per topic of the table."""

    topics: tuple[TopicState, ...]

    @property
    def ok(self) -> bool:
        return all(not t.problems and t.action != "missing" for t in self.topics)

    @property
    def created(self) -> list[str]:
        return [t.spec.name for t in self.topics if t.action == "created"]

    @property
    def missing(self) -> list[str]:
        return [t.spec.name for t in self.topics if t.action == "missing"]


@dataclass(frozen=True, slots=True)
class _Found:
    partitions: dict[str, int]
    replicas: dict[str, int]
    configs: dict[str, dict[str, str]]


def _admin(bootstrap: str) -> Any:
    from kafka.admin import KafkaAdminClient  # noqa: PLC0415  (kept off the import path of cdp)
    from kafka.errors import KafkaError  # noqa: PLC0415

    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=15_000, client_id="cdp-admin"
        )
    except KafkaError as error:
        raise LogUnavailableError(f"Kafka broker {bootstrap} is unreachable: {error}") from None


def _found(admin: Any, names: list[str]) -> _Found:
    """Partition counts, replicas and (where the broker reports them) configs of the
    topics of ``names`` that exist."""
    from kafka.admin import ConfigResource, ConfigResourceType  # noqa: PLC0415

    existing = set(admin.list_topics())
    present = [n for n in names if n in existing]
    found = _Found({}, {}, {n: {} for n in present})
    if present:
        for topic in admin.describe_topics(present):
            parts = topic["partitions"]
            found.partitions[topic["name"]] = len(parts)
            copies = [len(p.get("replica_nodes") or p.get("replicas") or ()) for p in parts]
            if copies and min(copies) > 0:
                found.replicas[topic["name"]] = min(copies)
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in present]
        )
        for name, entries in (described.get("topic") or {}).items():
            found.configs[name] = {key: str(entry.get("value")) for key, entry in entries.items()}
    return found


def _partition_problems(spec: TopicSpec, partitions: int) -> list[str]:
    if spec.fixed:
        if partitions != spec.partitions:
            return [
                f"{spec.name} has {partitions} partitions; it must have exactly {spec.partitions}"
            ]
    elif partitions < spec.partitions:
        return [
            f"{spec.name} has {partitions} partitions, fewer than the {spec.partitions} asked for "
            "(init never changes an existing topic; see docs/operations.md, partitions)"
        ]
    elif partitions > spec.partitions:
        return [
            f"{spec.name} has {partitions} partitions, more than the {spec.partitions} asked "
            "for (kept: partitions are never removed)"
        ]
    return []


def _replica_problems(
    spec: TopicSpec, replicas: int | None, configs: dict[str, str], wanted: int | None
) -> list[str]:
    if replicas is None:
        return []
    problems = []
    if wanted is not None and replicas < wanted:
        problems.append(
            f"{spec.name} has {replicas} replica(s), fewer than the {wanted} asked for "
            "(init never changes an existing topic: reassign with the broker's tools)"
        )
    min_isr = configs.get("min.insync.replicas")
    if min_isr is not None and min_isr.isdigit() and int(min_isr) > replicas:
        problems.append(
            f"{spec.name} has {replicas} replica(s) but min.insync.replicas={min_isr}: "
            "every write with acks=all fails (NOT_ENOUGH_REPLICAS); create it with "
            f"--replication-factor {min_isr} or more"
        )
    return problems


def _problems(
    spec: TopicSpec,
    partitions: int,
    replicas: int | None,
    configs: dict[str, str],
    replication_factor: int | None,
) -> tuple[str, ...]:
    problems = _partition_problems(spec, partitions)
    problems += _replica_problems(spec, replicas, configs, replication_factor)
    for key, wanted in spec.configs().items():
        have = configs.get(key)
        # Brokers that report no configs at all (tansu) cannot be checked.
        if configs and have is not None and have != wanted:
            problems.append(f"{spec.name}: {key} is {have}, expected {wanted}")
    return tuple(problems)


def describe(
    bootstrap: str,
    prefix: str = DEFAULT_PREFIX,
    partitions: int = DEFAULT_PARTITIONS,
    *,
    input_prefix: str | None = None,
    app_id: str = DEFAULT_APP_ID,
    replication_factor: int | None = None,
) -> TopicsReport:
    """The topics of the table as they exist on the broker (nothing is created).

    ``replication_factor``: the copies each topic must have at least (``None``:
    only checked against ``min.insync.replicas``)."""
    specs = topic_specs(prefix, partitions, input_prefix=input_prefix, app_id=app_id)
    admin = _admin(bootstrap)
    try:
        found = _found(admin, [s.name for s in specs])
    finally:
        admin.close()
    states = []
    for spec in specs:
        count = found.partitions.get(spec.name)
        if count is None:
            states.append(TopicState(spec, "missing", None, {}, (f"{spec.name} does not exist",)))
            continue
        configs = found.configs.get(spec.name, {})
        replicas = found.replicas.get(spec.name)
        problems = _problems(spec, count, replicas, configs, replication_factor)
        states.append(TopicState(spec, "exists", count, configs, problems, replicas))
    return TopicsReport(tuple(states))


class _ClusterForming(Exception):
    """Fewer brokers up than the replication factor: worth another try."""


def _create_missing(bootstrap: str, specs: list[TopicSpec], replication_factor: int) -> set[str]:
    from kafka.admin import NewTopic  # noqa: PLC0415
    from kafka.errors import (  # noqa: PLC0415
        InvalidReplicationFactorError,
        KafkaError,
        TopicAlreadyExistsError,
    )

    admin = _admin(bootstrap)
    created: set[str] = set()
    try:
        counts = _found(admin, [s.name for s in specs]).partitions
        for spec in (s for s in specs if s.name not in counts):
            # one by one: a topic created meanwhile is not an error
            topic = NewTopic(
                spec.name, spec.partitions, replication_factor, topic_configs=spec.configs()
            )
            try:
                admin.create_topics([topic])
                created.add(spec.name)
            except TopicAlreadyExistsError:
                pass
            except InvalidReplicationFactorError as error:
                raise _ClusterForming(
                    f"cannot create {spec.name} with {replication_factor} replicas: fewer "
                    f"brokers are up ({error})"
                ) from None
            except KafkaError as error:
                raise LogUnavailableError(
                    f"cannot create topic {spec.name} on {bootstrap}: {error}"
                ) from None
    finally:
        admin.close()
    return created


def init_topics(
    bootstrap: str,
    prefix: str = DEFAULT_PREFIX,
    partitions: int = DEFAULT_PARTITIONS,
    replication_factor: int = 1,
    *,
    input_prefix: str | None = None,
    app_id: str = DEFAULT_APP_ID,
    wait: float = 0.0,
) -> TopicsReport:
    """Create the missing topics of the table; check (never change) the existing ones.

    ``replication_factor``: copies of each partition (3 in production, with
    ``min.insync.replicas=2`` on the brokers; 1 for a single test broker).
    ``wait``: seconds to keep trying while the brokers are unreachable or fewer
    than ``replication_factor`` of them are up."""
    if replication_factor < 1:
        raise ConfigError(f"replication factor must be at least 1, not {replication_factor}")
    specs = topic_specs(prefix, partitions, input_prefix=input_prefix, app_id=app_id)
    deadline = time.monotonic() + wait
    while True:
        try:
            created = _create_missing(bootstrap, specs, replication_factor)
            report = describe(
                bootstrap,
                prefix,
                partitions,
                input_prefix=input_prefix,
                app_id=app_id,
                replication_factor=replication_factor,
            )
            break
        except (LogUnavailableError, _ClusterForming) as error:
            left = deadline - time.monotonic()
            if left <= 0:
                if isinstance(error, _ClusterForming):
                    raise ConfigError(str(error)) from None
                raise
            log.info("waiting for the Kafka cluster (%s); %.0f s left", error, left)
            time.sleep(min(RETRY_EVERY, left))
    return TopicsReport(
        tuple(
            TopicState(t.spec, "created", t.partitions, t.configs, t.problems, t.replicas)
            if t.spec.name in created
            else t
            for t in report.topics
        )
    )


def drop_generation(bootstrap: str, prefix: str, app_id: str = DEFAULT_APP_ID) -> list[str]:
    """Delete the topics the workers ``prefix`` + ``app_id`` derived from the log
    (by-customer, identity, profiles, dead letters, the table changelogs); the
    names deleted. Never the log or its key topic (``cdp.log``, ``cdp.keys``):
    they are the input every generation folds, and the source of truth.

    After an erasure in Kafka mode this is what removes the person's last copies,
    once a new generation has folded the log (docs/privacy.md)."""
    keep = {f"{prefix}{LOG}", f"{prefix}{KEYS}"}
    wanted = [s.name for s in topic_specs(prefix, 1, app_id=app_id) if s.name not in keep]
    admin = _admin(bootstrap)
    try:
        existing = set(admin.list_topics())
        doomed = [name for name in wanted if name in existing]
        if doomed:
            admin.delete_topics(doomed, timeout_ms=30_000)
    finally:
        admin.close()
    return doomed
