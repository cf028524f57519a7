"""The topics of the distributed runtime, and ``init_topics`` that creates them.

The table (docs/kafka.md says why each row is so):

=========================== ==================== ========== ======= =========
topic (prefix ``cdp.``)     key                  partitions cleanup retention
=========================== ==================== ========== ======= =========
``log``                     routing key          1          delete  forever
``events.by-customer``      customer id          N          delete  7 days
``identity.assignments``    ``kind:value``       N          compact -
``identity.merges``         loser customer id    1          delete  forever
``profiles``                customer id          N          compact -
``deadletters``             source/origin        1          delete  30 days
=========================== ==================== ========== ======= =========

``log`` has exactly one partition: it is the total order every identity
decision depends on, and its offsets are the ``EventLog`` offsets. ``N`` is
configurable (default 4). ``init_topics`` is idempotent: it creates what is
missing, never changes or shrinks what exists, and reports every difference
between what exists and the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cdp import config
from cdp.errors import ConfigError, LogUnavailableError

DEFAULT_PREFIX = "cdp."
DEFAULT_PARTITIONS = 4
BOOTSTRAP_ENV = config.KAFKA_BOOTSTRAP_ENV
PREFIX_ENV = config.KAFKA_PREFIX_ENV
FOREVER = -1
DAY_MS = 24 * 60 * 60 * 1000
LOG_MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # one append is one batch up to this size

# Logical names, used to ask for a topic whatever the prefix.
LOG = "log"
EVENTS_BY_CUSTOMER = "events.by-customer"
IDENTITY_ASSIGNMENTS = "identity.assignments"
IDENTITY_MERGES = "identity.merges"
PROFILES = "profiles"
DEADLETTERS = "deadletters"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic as it must exist. ``retention_ms`` is None for compacted topics."""

    name: str
    key: str
    partitions: int
    cleanup: str
    retention_ms: int | None
    doc: str
    extra: dict[str, str] = field(default_factory=dict)
    fixed: bool = False  # the partition count is part of the design, not the configurable N

    def configs(self) -> dict[str, str]:
        """The topic-level configuration to create it with."""
        configs = {"cleanup.policy": self.cleanup, **self.extra}
        if self.retention_ms is not None:
            configs["retention.ms"] = str(self.retention_ms)
        return configs


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Where the broker is and how the topics are named and sized."""

    bootstrap: str
    prefix: str = DEFAULT_PREFIX
    partitions: int = DEFAULT_PARTITIONS
    timeout: float = 30.0  # seconds a broker request (an append, a read) may take

    @classmethod
    def resolve(
        cls, bootstrap: str | None, prefix: str | None = None, partitions: int | None = None
    ) -> KafkaSettings:
        """Explicit values, else ``CDP_KAFKA_BOOTSTRAP`` / ``CDP_KAFKA_PREFIX``, else defaults."""
        address = bootstrap or config.kafka_bootstrap()
        if not address:
            raise ConfigError(
                f"no Kafka broker given: pass --bootstrap HOST:PORT or set {BOOTSTRAP_ENV}"
            )
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError(f"Kafka bootstrap {address!r} is not HOST:PORT")
        env_prefix = config.kafka_prefix()
        chosen = (
            prefix if prefix is not None else (DEFAULT_PREFIX if env_prefix is None else env_prefix)
        )
        count = DEFAULT_PARTITIONS if partitions is None else partitions
        if count < 1:
            raise ConfigError(f"partitions must be at least 1, not {count}")
        return cls(address, chosen, count)

    def topic(self, name: str) -> str:
        """The full name of a logical topic (``log`` → ``cdp.log``)."""
        return f"{self.prefix}{name}"


def topic_specs(
    prefix: str = DEFAULT_PREFIX, partitions: int = DEFAULT_PARTITIONS
) -> list[TopicSpec]:
    """Every topic of the distributed runtime, with ``partitions`` for the keyed ones."""
    if partitions < 1:
        raise ConfigError(f"partitions must be at least 1, not {partitions}")
    p = prefix
    return [
        TopicSpec(
            f"{p}{LOG}",
            "routing key: userId, else anonymousId, else messageId",
            1,
            "delete",
            FOREVER,
            "The event log: the one total order; offsets are EventLog offsets.",
            {"max.message.bytes": str(LOG_MAX_MESSAGE_BYTES)},
            fixed=True,
        ),
        TopicSpec(
            f"{p}{EVENTS_BY_CUSTOMER}",
            "customer id",
            partitions,
            "delete",
            7 * DAY_MS,
            "Events re-keyed by customer for the profile agents; re-derivable from the log.",
        ),
        TopicSpec(
            f"{p}{IDENTITY_ASSIGNMENTS}",
            "identifier (kind:value)",
            partitions,
            "compact",
            None,
            "Latest customer id of each identifier.",
        ),
        TopicSpec(
            f"{p}{IDENTITY_MERGES}",
            "loser customer id",
            1,
            "delete",
            FOREVER,
            "Explicit merged(from, into, reason) events, in decision order.",
            fixed=True,
        ),
        TopicSpec(
            f"{p}{PROFILES}",
            "customer id",
            partitions,
            "compact",
            None,
            "Latest profile snapshot (summary + lead) of each customer.",
        ),
        TopicSpec(
            f"{p}{DEADLETTERS}",
            "source/origin",
            1,
            "delete",
            30 * DAY_MS,
            "Rejected inputs with the reason, from the collector and the workers.",
            fixed=True,
        ),
    ]


@dataclass(frozen=True, slots=True)
class TopicState:
    """A topic as found on the broker, and how it differs from its spec."""

    spec: TopicSpec
    action: str  # "created" | "exists" | "missing"
    partitions: int | None
    configs: dict[str, str]
    problems: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.spec.name,
            "action": self.action,
            "key": self.spec.key,
            "partitions": self.partitions,
            "expected_partitions": self.spec.partitions,
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


def _admin(bootstrap: str) -> Any:
    from kafka.admin import KafkaAdminClient  # noqa: PLC0415  (kept off the import path of cdp)
    from kafka.errors import KafkaError  # noqa: PLC0415

    try:
        return KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=15_000, client_id="cdp-admin"
        )
    except KafkaError as error:
        raise LogUnavailableError(f"Kafka broker {bootstrap} is unreachable: {error}") from None


def _found(admin: Any, names: list[str]) -> tuple[dict[str, int], dict[str, dict[str, str]]]:
    """Partition counts and (where the broker reports them) configs of existing topics."""
    from kafka.admin import ConfigResource, ConfigResourceType  # noqa: PLC0415

    existing = set(admin.list_topics())
    present = [n for n in names if n in existing]
    partitions: dict[str, int] = {}
    configs: dict[str, dict[str, str]] = {n: {} for n in present}
    if present:
        for topic in admin.describe_topics(present):
            partitions[topic["name"]] = len(topic["partitions"])
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in present]
        )
        for name, entries in (described.get("topic") or {}).items():
            configs[name] = {key: str(entry.get("value")) for key, entry in entries.items()}
    return partitions, configs


def _problems(spec: TopicSpec, partitions: int, configs: dict[str, str]) -> tuple[str, ...]:
    problems = []
    if spec.fixed:
        if partitions != spec.partitions:
            problems.append(
                f"{spec.name} has {partitions} partitions; it must have exactly "
                f"{spec.partitions} (one total order)"
            )
    elif partitions < spec.partitions:
        problems.append(
            f"{spec.name} has {partitions} partitions, fewer than the {spec.partitions} asked for "
            "(add partitions with the broker's tools; init never changes an existing topic)"
        )
    elif partitions > spec.partitions:
        problems.append(
            f"{spec.name} has {partitions} partitions, more than the {spec.partitions} asked "
            "for (kept: partitions are never removed)"
        )
    for key, wanted in spec.configs().items():
        have = configs.get(key)
        # Brokers that report no configs at all (tansu) cannot be checked.
        if configs and have is not None and have != wanted:
            problems.append(f"{spec.name}: {key} is {have}, expected {wanted}")
    return tuple(problems)


def describe(
    bootstrap: str, prefix: str = DEFAULT_PREFIX, partitions: int = DEFAULT_PARTITIONS
) -> TopicsReport:
    """The topics of the table as they exist on the broker (nothing is created)."""
    specs = topic_specs(prefix, partitions)
    admin = _admin(bootstrap)
    try:
        counts, configs = _found(admin, [s.name for s in specs])
    finally:
        admin.close()
    states = []
    for spec in specs:
        if spec.name not in counts:
            states.append(TopicState(spec, "missing", None, {}, (f"{spec.name} does not exist",)))
        else:
            found = configs.get(spec.name, {})
            problems = _problems(spec, counts[spec.name], found)
            states.append(TopicState(spec, "exists", counts[spec.name], found, problems))
    return TopicsReport(tuple(states))


def init_topics(
    bootstrap: str,
    prefix: str = DEFAULT_PREFIX,
    partitions: int = DEFAULT_PARTITIONS,
    replication_factor: int = 1,
) -> TopicsReport:
    """Create the missing topics of the table; check (never change) the existing ones.

    ``replication_factor``: copies of each partition (3 in production, with
    ``min.insync.replicas=2`` on the brokers; 1 for a single test broker)."""
    from kafka.admin import NewTopic  # noqa: PLC0415
    from kafka.errors import KafkaError, TopicAlreadyExistsError  # noqa: PLC0415

    specs = topic_specs(prefix, partitions)
    admin = _admin(bootstrap)
    try:
        counts, _ = _found(admin, [s.name for s in specs])
        missing = [s for s in specs if s.name not in counts]
        created: set[str] = set()
        for spec in missing:  # one by one: a topic created meanwhile is not an error
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            spec.name,
                            spec.partitions,
                            replication_factor,
                            topic_configs=spec.configs(),
                        )
                    ]
                )
                created.add(spec.name)
            except TopicAlreadyExistsError:
                pass
            except KafkaError as error:
                raise LogUnavailableError(
                    f"cannot create topic {spec.name} on {bootstrap}: {error}"
                ) from None
    finally:
        admin.close()
    report = describe(bootstrap, prefix, partitions)
    return TopicsReport(
        tuple(
            TopicState(t.spec, "created", t.partitions, t.configs, t.problems)
            if t.spec.name in created
            else t
            for t in report.topics
        )
    )
