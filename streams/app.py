"""The faust application factory: broker, store, broker profile, topics and tables.

No import-time global app (it would make everything untestable): ``create_app``
builds one from a ``WorkerConfig``, and ``streams.agents.register`` attaches
the agents to it.

Broker profiles (``--broker-profile``) collect the settings one kind of
broker needs; their producer settings are faust's producer's, which writes
the table changelogs only (the agents' outputs go through
``streams.outputs``, batched on every broker); see docs/streams.md:

- ``kafka`` (Apache Kafka, Redpanda): 256 KB batches with a 10 ms linger, a 10 s
  session timeout (a dead worker's partitions move within seconds) and static
  membership (``group.instance.id``: a worker back within the session timeout
  gets its partitions again with no rebalance);
- ``tansu``: session timeout 6 s and heartbeat 2 s (a group join takes half
  the session timeout there) and ``producer_max_batch_size=1`` byte, so every
  changelog record is its own batch: tansu reports wrong end offsets for
  batches of several records, and faust's table recovery would then stop
  early and lose updates;
- ``noida`` (noida-db): session 6 s, heartbeat 2 s, 10 ms linger, dynamic members.
  noida-db 0.2.3 never expires the session of a killed member: its partitions
  stay assigned to it, and a new member joining then leaves the group in
  ``CompletingRebalance`` (``python -m bench.group_failover --broker noida``,
  the Kafka client alone). It does keep static members: a killed worker
  restarted with the same ``--instance-id`` takes its partitions back at once.
"""

from __future__ import annotations

import hashlib
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import faust

from cdp import config as cdp_config
from cdp.adapters.kafka import topics as kafka_topics
from cdp.errors import ConfigError
from cdp.runtime.config import RuntimeConfig
from streams.outputs import Outputs

PROFILE_ENV: Final = cdp_config.BROKER_PROFILE_ENV
STORES: Final = ("memory", "rocksdb")
IDENTITY_TABLE: Final = kafka_topics.IDENTITY_TABLE
CUSTOMERS_TABLE: Final = kafka_topics.CUSTOMERS_TABLE


@dataclass(frozen=True, slots=True)
class BrokerProfile:
    """Consumer-group and producer settings suited to one kind of broker."""

    name: str
    session_timeout: float
    heartbeat_interval: float
    producer_max_batch_size: int
    doc: str
    producer_linger: float = 0.0
    """Seconds the producer waits to fill a batch: fewer, larger produce requests."""
    rebalance_timeout: float = 60.0
    """Seconds a live member has to rejoin once a rebalance starts (faust's
    ``broker_rebalance_timeout``); a dead one is dropped after ``session_timeout``."""
    static_membership: bool = False
    """Join with ``group.instance.id`` (KIP-345, ``WorkerConfig.group_instance_id``):
    a worker restarted within ``session_timeout`` gets its partitions back with no
    rebalance. Off where the broker does not keep static members: a static member
    never sends LeaveGroup, so without them a SIGTERM'd worker's partitions would
    wait ``session_timeout`` instead of moving at once."""


BATCH: Final = 262_144
"""Changelog producer batch for brokers with right end offsets: 256 KB, room for many
customer values (a few KB each) per request instead of the 16 KB default's handful."""

LINGER: Final = 0.01
"""Producer linger for brokers that batch (``python -m bench.worker``: 413 events/s at
10 ms against 281 at 0 on noida, 18,723 events; each hop waits at most this long)."""

BROKER_PROFILES: Final = {
    p.name: p
    for p in (
        BrokerProfile(
            "kafka",
            10.0,
            3.0,
            BATCH,
            "Apache Kafka or Redpanda (production).",
            LINGER,
            static_membership=True,
        ),
        BrokerProfile(
            "tansu",
            6.0,
            2.0,
            1,
            "tansu: joins take half the session timeout; one record per batch so that "
            "end offsets, and with them table recovery, are right.",
        ),
        BrokerProfile(
            "noida",
            6.0,
            2.0,
            BATCH,
            "noida-db: never expires a killed member (bench/group_failover.py); dynamic "
            "members, so a SIGTERM'd worker's partitions move at once.",
            LINGER,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    """Everything a worker process needs to know."""

    kafka: kafka_topics.KafkaSettings
    """Where the topics are; ``partitions`` is what the topics have (``cdp.adapters.kafka.layout``)."""
    app_id: str = kafka_topics.DEFAULT_APP_ID
    store: str = "memory"
    data_dir: Path = Path(".cdp-data")
    broker_profile: str = "kafka"
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    replication: int = 1
    """Copies of the topics' partitions, as found (workers create no topic)."""
    wait: float = 300.0
    """Seconds to wait for the topics ``cdp kafka init`` makes before giving up."""
    metrics_port: int = 6066
    """Port of ``GET /metrics`` and ``GET /health/live`` (``streams.metrics``); 0: none."""
    log_batch: int = 500
    """Records the identity agent takes at once (one flush and one journal per batch)."""
    customer_batch: int = 256
    """By-customer records (bundles) the profile agent takes at once, within
    ``streams.agents.PROFILE_WITHIN``: one write and one snapshot per customer per
    batch, so the larger the batch, the fewer of both per event."""
    instance_id: str | None = None
    """This worker's ``group.instance.id`` (``cdp worker --instance-id``); None: derived
    from the host name and data directory (``default_instance_id``)."""

    def __post_init__(self) -> None:
        if self.store not in STORES:
            raise ConfigError(f"store {self.store!r} is not one of {', '.join(STORES)}")
        if self.broker_profile not in BROKER_PROFILES:
            known = ", ".join(BROKER_PROFILES)
            raise ConfigError(f"broker profile {self.broker_profile!r} is not one of {known}")
        if self.log_batch < 1:
            raise ConfigError(f"log batch must be at least 1, not {self.log_batch}")

    @property
    def profile(self) -> BrokerProfile:
        return BROKER_PROFILES[self.broker_profile]

    @property
    def group_id(self) -> str:
        """The faust app id: consumer group and changelog topic names derive from it."""
        return kafka_topics.group_id(self.kafka.prefix, self.app_id)

    def topic(self, name: str) -> str:
        """Full name of a logical topic of ``cdp.adapters.kafka.topics``."""
        return self.kafka.topic(name)

    @property
    def group_instance_id(self) -> str | None:
        """The static member id the consumer joins with: ``instance_id`` when given
        (whatever the profile), else the derived one where the profile has static
        membership, else None (a dynamic member)."""
        if self.instance_id or not self.profile.static_membership:
            return self.instance_id
        return default_instance_id(self.data_dir)


def default_instance_id(data_dir: Path) -> str:
    """``HOSTNAME-HASH``: stable across restarts of one worker (a StatefulSet pod keeps
    its host name and volume), different for two workers on one host (each has its
    own data directory). Two live members with one id fence each other off."""
    where = hashlib.sha1(str(data_dir.resolve()).encode(), usedforsecurity=False)
    host = "".join(c if c.isalnum() or c in "._-" else "-" for c in socket.gethostname())
    return f"{host or 'worker'}-{where.hexdigest()[:8]}"


def default_profile() -> str:
    """The broker profile from ``CDP_KAFKA_BROKER_PROFILE``, else ``kafka``."""
    return cdp_config.broker_profile()


@dataclass(frozen=True, slots=True)
class Wiring:
    """The app with its topics and tables, ready for ``streams.agents.register``."""

    app: faust.App
    config: WorkerConfig
    log: Any
    by_customer: Any
    assignments: Any
    merges: Any
    profiles: Any
    deadletters: Any
    identity: Any
    customers: Any
    outputs: Outputs
    """The producer of everything but the changelogs (``streams.outputs``)."""


def _store_url(config: WorkerConfig) -> str:
    if config.store == "rocksdb":
        try:
            import rocksdict  # noqa: F401, PLC0415  (the rocksdb extra)
        except ImportError:
            raise ConfigError(
                "store rocksdb needs the rocksdb extra: pip install 'cdp[rocksdb]'"
            ) from None
        return "rocksdb://"
    return "memory://"


def create_app(config: WorkerConfig) -> Wiring:
    """A faust app for ``config``, with the topics and tables the agents use."""
    profile = config.profile
    # One directory per group: a new generation (another prefix or app id) on the
    # same volume must never open the old generation's RocksDB tables.
    datadir = config.data_dir / "streams" / config.group_id
    app = faust.App(
        config.group_id,
        broker=f"kafka://{config.kafka.bootstrap}",
        store=_store_url(config),
        datadir=str(datadir),
        autodiscover=False,
        web_enabled=False,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=profile.session_timeout,
        broker_heartbeat_interval=profile.heartbeat_interval,
        broker_rebalance_timeout=profile.rebalance_timeout,
        consumer_group_instance_id=config.group_instance_id,
        producer_max_batch_size=profile.producer_max_batch_size,
        producer_linger=profile.producer_linger,
        producer_acks=-1,
        topic_partitions=config.kafka.partitions,
        topic_replication_factor=config.replication,
        # Only `cdp kafka init` creates topics, changelogs included: a worker that
        # created them would pick partitions and replicas of its own (issue 15).
        topic_allow_declare=False,
        topic_disable_leader=True,  # no on_leader timers, so no leader topic
        table_standby_replicas=0,
        # An unexpected error must not ack (= drop) the record: the agent restarts
        # and the record is processed again.
        stream_ack_exceptions=False,
        key_serializer="raw",
        value_serializer="raw",
    )
    n = config.kafka.partitions

    def topic(name: str, partitions: int | None = None) -> Any:
        return app.topic(
            config.topic(name),
            partitions=partitions,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )

    log = topic(kafka_topics.LOG, 1)
    by_customer = topic(kafka_topics.EVENTS_BY_CUSTOMER, n)
    # str keys and JSON values: what is written is what a changelog restores.
    schema: Any = faust.Schema(key_serializer="json", value_serializer="json")
    identity_table = app.Table(IDENTITY_TABLE, partitions=1, schema=schema)
    customers_table = app.Table(CUSTOMERS_TABLE, partitions=n, schema=schema)
    # The app's first dependency: started before the agents, stopped after them.
    outputs = Outputs(config.kafka.bootstrap)
    app.add_dependency(outputs)
    return Wiring(
        app=app,
        config=config,
        log=log,
        by_customer=by_customer,
        assignments=topic(kafka_topics.IDENTITY_ASSIGNMENTS),
        merges=topic(kafka_topics.IDENTITY_MERGES),
        profiles=topic(kafka_topics.PROFILES),
        deadletters=topic(kafka_topics.DEADLETTERS),
        identity=identity_table,
        customers=customers_table,
        outputs=outputs,
    )
