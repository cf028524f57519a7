"""The topics of the distributed runtime, and ``init_topics`` that creates them.

The table (docs/kafka.md says why each row is so):

=========================== ==================== ========== ======= =========
topic (prefix ``cdp.``)     key                  partitions cleanup retention
=========================== ==================== ========== ======= =========
``log``                     routing key          1          delete  forever
``keys``                    key id               1          compact -
``events.by-customer``      customer id          N          delete  7 days
``identity.assignments``    ``kind:value``       N          compact -
``identity.merges``         loser customer id    1          delete  forever
``profiles``                customer id          N          compact -
``deadletters``             source/origin        1          delete  30 days
``<app>-identity-changelog`` (faust table)       1          compact -
``<app>-customers-changelog`` (faust table)      N          compact -
=========================== ==================== ========== ======= =========

``keys`` holds one key per identifier, under which the log's events are
sealed (``cdp.adapters.kafka.keys``); erasing a person tombstones theirs. It
is named by the input prefix, like the log it unlocks.

``log`` has exactly one partition: it is the total order every identity
decision depends on, and its offsets are the ``EventLog`` offsets. ``N`` is
configurable (default 4). ``<app>`` is the workers' faust app id, the prefix
and ``--app-id`` (``cdp.cdp-worker``). The log is named by the *input*
prefix (the prefix unless set apart), so a new generation of workers can
read the same log and write topics of its own (docs/operations.md).

Only ``init_topics`` (``cdp kafka init``) creates topics, the workers' table
changelogs included: a worker finds the partition count in the topics
(``cdp.adapters.kafka.layout``) and never creates one. ``init_topics`` is
idempotent: it creates what is missing, never changes or shrinks what exists,
and reports every difference between what exists and the table, replication
included.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cdp import config
from cdp.errors import ConfigError

DEFAULT_PREFIX = "cdp."
DEFAULT_PARTITIONS = 4
DEFAULT_APP_ID = "cdp-worker"
"""The workers' ``--app-id``: with the prefix, their consumer group and table names."""
BOOTSTRAP_ENV = config.KAFKA_BOOTSTRAP_ENV
PREFIX_ENV = config.KAFKA_PREFIX_ENV
FOREVER = -1
DAY_MS = 24 * 60 * 60 * 1000
LOG_MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # one append is one batch up to this size

# Logical names, used to ask for a topic whatever the prefix.
LOG = "log"
KEYS = "keys"
MINUTE_MS = 60 * 1000
EVENTS_BY_CUSTOMER = "events.by-customer"
IDENTITY_ASSIGNMENTS = "identity.assignments"
IDENTITY_MERGES = "identity.merges"
PROFILES = "profiles"
DEADLETTERS = "deadletters"
IDENTITY_TABLE = "identity"
CUSTOMERS_TABLE = "customers"
"""The workers' faust tables; faust names a table's changelog ``<app>-<table>-changelog``."""


def group_id(prefix: str, app_id: str = DEFAULT_APP_ID) -> str:
    """The workers' faust app id: their consumer group, and the stem of their changelogs."""
    return f"{prefix}{app_id}"


def changelog(prefix: str, app_id: str, table: str) -> str:
    """The changelog topic faust uses for ``table`` of the workers ``prefix`` + ``app_id``."""
    return f"{group_id(prefix, app_id)}-{table}-changelog"


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
    input_prefix: str | None = None
    """Prefix of the input log alone; ``None``: the prefix (one generation of topics)."""

    @classmethod
    def resolve(
        cls,
        bootstrap: str | None,
        prefix: str | None = None,
        partitions: int | None = None,
        input_prefix: str | None = None,
    ) -> KafkaSettings:
        """Explicit values, else ``CDP_KAFKA_BOOTSTRAP`` / ``CDP_KAFKA_PREFIX`` /
        ``CDP_KAFKA_INPUT_PREFIX``, else defaults."""
        address = bootstrap or config.kafka_bootstrap()
        if not address:
            raise ConfigError(
                f"no Kafka broker given: pass --bootstrap HOST:PORT or set {BOOTSTRAP_ENV}"
            )
        for entry in address.split(","):  # a broker list: HOST:PORT,HOST:PORT,...
            host, sep, port = entry.strip().rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ConfigError(
                    f"Kafka bootstrap {address!r} is not HOST:PORT[,HOST:PORT...] "
                    f"({entry.strip()!r})"
                )
        env_prefix = config.kafka_prefix()
        chosen = (
            prefix if prefix is not None else (DEFAULT_PREFIX if env_prefix is None else env_prefix)
        )
        count = DEFAULT_PARTITIONS if partitions is None else partitions
        if count < 1:
            raise ConfigError(f"partitions must be at least 1, not {count}")
        source = input_prefix if input_prefix is not None else config.kafka_input_prefix()
        return cls(address, chosen, count, input_prefix=None if source == chosen else source)

    @property
    def log_prefix(self) -> str:
        """The prefix of the input log (``--input-prefix``, else the prefix)."""
        return self.prefix if self.input_prefix is None else self.input_prefix

    def topic(self, name: str) -> str:
        """The full name of a logical topic (``log`` → ``cdp.log``); the log takes
        the input prefix (and so do its keys), every other topic the prefix."""
        return f"{self.log_prefix if name in (LOG, KEYS) else self.prefix}{name}"


def keys_topic_of(log_topic: str) -> str:
    """The key topic beside the log topic ``log_topic`` (``cdp.log`` → ``cdp.keys``)."""
    return log_topic.removesuffix(LOG) + KEYS


def topic_specs(
    prefix: str = DEFAULT_PREFIX,
    partitions: int = DEFAULT_PARTITIONS,
    *,
    input_prefix: str | None = None,
    app_id: str = DEFAULT_APP_ID,
) -> list[TopicSpec]:
    """Every topic of the distributed runtime, with ``partitions`` for the keyed ones;
    the log is named by ``input_prefix`` (default: ``prefix``)."""
    if partitions < 1:
        raise ConfigError(f"partitions must be at least 1, not {partitions}")
    p = prefix
    return [
        TopicSpec(
            f"{prefix if input_prefix is None else input_prefix}{LOG}",
            "routing key: userId, else anonymousId, else messageId",
            1,
            "delete",
            FOREVER,
            "The event log: the one total order; offsets are EventLog offsets.",
            {"max.message.bytes": str(LOG_MAX_MESSAGE_BYTES)},
            fixed=True,
        ),
        TopicSpec(
            f"{prefix if input_prefix is None else input_prefix}{KEYS}",
            "key id (8 random bytes)",
            1,
            "compact",
            None,
            "One key per identifier; the log's events are sealed under them. Erasure "
            "tombstones a person's keys; compaction removes them within minutes.",
            {
                "max.compaction.lag.ms": str(MINUTE_MS),
                "segment.ms": str(MINUTE_MS),
                "min.cleanable.dirty.ratio": "0.01",
                "delete.retention.ms": str(DAY_MS),
            },
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
        TopicSpec(
            changelog(prefix, app_id, IDENTITY_TABLE),
            "table key",
            1,
            "compact",
            None,
            "The workers' identity table (faust changelog): union-find and journal.",
            fixed=True,
        ),
        TopicSpec(
            changelog(prefix, app_id, CUSTOMERS_TABLE),
            "customer id",
            partitions,
            "compact",
            None,
            "The workers' customer table (faust changelog): fold state per customer; "
            "partitioned like by-customer.",
        ),
    ]
