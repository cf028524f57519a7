"""The composition root: the one place that chooses embedded or Kafka and puts
the pieces together (after cosmicpython's ``bootstrap.py``).

Entry points (the CLI, the HTTP app, the demo) ask here for what they run on
and open no adapter themselves:

- :func:`kafka_mode`: Kafka settings when a broker was given, else ``None``
  (the embedded data directory); the one test of which mode a command runs in.
- :func:`open_data`: the data directory opened for writing (an ``Engine``);
  beside a running ``cdp serve`` a ``ServerRunningError`` that names it and
  says what to do instead.
- :func:`open_read`: a read-only connection; while ``cdp serve`` owns the
  directory, the server's read connection over its local socket.
- :func:`open_sink`: where ``cdp ingest`` appends: the Kafka log topic, the
  running ``cdp serve``, or the engine.
- :func:`serving`: the :class:`Platform` ``cdp serve`` runs on: the writer
  and what it owns, the profile lookups, where dead letters go, the mode's
  health probe, and the start/stop of all of it.

Adapters are imported inside the functions: the CLI imports this module for
its commands, and ``cdp sql`` must not pay for Kafka clients or the web stack
(tests/e2e/test_cli_hygiene.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cdp.config import Settings
from cdp.services.privacy import files as privacy_files

if TYPE_CHECKING:
    import duckdb

    from cdp.adapters.kafka.groups import GroupWatcher
    from cdp.adapters.kafka.topics import KafkaSettings
    from cdp.adapters.socket.server import LocalServer
    from cdp.http.health import ModeProbe
    from cdp.http.metrics import ModeMetrics
    from cdp.ports.deadletters import DeadLetterSink
    from cdp.ports.lookups import ProfileLookups
    from cdp.runtime.engine import Engine
    from cdp.runtime.writer import GroupCommitWriter
    from cdp.services.ingest import Sink


def kafka_mode(
    bootstrap: str | None, prefix: str | None = None, input_prefix: str | None = None
) -> KafkaSettings | None:
    """Kafka mode when a broker is given (``--kafka``/``--bootstrap``, or
    ``CDP_KAFKA_BOOTSTRAP`` through the option), else ``None``: embedded."""
    if not bootstrap:
        return None
    from cdp.adapters.kafka.topics import KafkaSettings  # noqa: PLC0415

    return KafkaSettings.resolve(bootstrap, prefix, None, input_prefix)


def open_data(settings: Settings, instead: str = "") -> Engine:
    """The data directory for writing (``Engine.open``: created if needed,
    projections caught up). Beside a running ``cdp serve``, a
    ``ServerRunningError`` whose message ends with ``instead`` (what the user
    can do without stopping the server)."""
    from cdp.adapters.socket.client import ServerRunningError  # noqa: PLC0415
    from cdp.runtime.engine import Engine  # noqa: PLC0415

    try:
        return Engine.open(settings)
    except ServerRunningError as error:
        raise ServerRunningError(f"{error}{instead}", error.data_dir, error.pid) from None


def open_read(settings: Settings) -> duckdb.DuckDBPyConnection:
    """A read-only connection (no writes, no file access), projections caught up;
    through the running ``cdp serve`` when it owns the directory (see
    ``Engine.open_read_only`` for what the remote connection offers)."""
    from cdp.runtime.engine import Engine  # noqa: PLC0415

    return Engine.open_read_only(settings)


@contextmanager
def open_sink(
    settings: Settings,
    kafka: KafkaSettings | None = None,
    announce: Callable[[Any], None] | None = None,
) -> Iterator[Sink]:
    """Where ``cdp ingest`` appends, closed (and checkpointed) on exit.

    With ``kafka``: the log topic, one acknowledged append per batch (workers
    fold). Else the engine, or, when ``cdp serve`` owns the directory, the
    server: records are validated here and appended by its group-commit writer
    (durable when the call returns), and the server saves its projections at
    the end, so the next command sees the new events. ``announce(pid)`` is
    called first in that case (the CLI says the server is taking them)."""
    if kafka is not None:
        from cdp.adapters.kafka.log import KafkaEventLog  # noqa: PLC0415

        log = KafkaEventLog.open(kafka, pepper=privacy_files.pepper(settings.data_dir))
        try:
            yield log
        finally:
            log.close()
        return
    from cdp.adapters.socket import client as local_client  # noqa: PLC0415
    from cdp.runtime.engine import Engine  # noqa: PLC0415

    try:
        engine = Engine.open(settings)
    except local_client.ServerRunningError as busy:
        remote = local_client.connect(settings.data_dir)
        if remote is None:  # it stopped between the two calls
            raise busy from None
        if announce is not None:
            announce(remote.info.get("pid"))
        try:
            yield remote
            remote.checkpoint()
        finally:
            remote.close()
        return
    with engine, engine.bulk():  # fold once at the end: customer by customer when large
        yield engine


# ------------------------------------------------------------------ cdp serve
@dataclass(slots=True)
class Platform:
    """What ``cdp serve`` runs on, put together for one mode by :func:`serving`.

    The HTTP app uses these parts and never asks which mode it serves."""

    settings: Settings
    #: The one writer thread: owns the ``Engine`` (embedded) or the Kafka producer.
    writer: GroupCommitWriter[Any]
    #: "Who is this?" for the read routes.
    lookups: ProfileLookups
    #: Keeps a rejected request (on the writer's thread): table or topic.
    store_dead_letter: DeadLetterSink
    #: The mode's own health (Kafka: the broker); ``None`` when the writer says it all.
    probe: ModeProbe | None
    #: Kafka settings in Kafka mode, else ``None``.
    kafka: KafkaSettings | None = None
    #: Whether ``start`` starts the writer (a writer handed in is its caller's).
    owns_writer: bool = True
    #: The mode's own gauges for ``/metrics`` (Kafka: the workers' lag); ``None``: none.
    metrics: ModeMetrics | None = None
    _local: LocalServer | None = field(default=None, init=False, repr=False)

    def start(self) -> None:
        """Start the writer and warm the lookups (when owned), then open the
        data directory's local socket: the CLI's door while the server owns an
        embedded directory. Raises what opening raised (a served directory...)."""
        from cdp.adapters.socket.server import serve_local  # noqa: PLC0415

        if self.owns_writer:
            self.writer.start()
            self.lookups.warm()  # lookup indexes made at start-up, not on the first request
        embedded = self.owns_writer and self.kafka is None
        self._local = serve_local(self.settings.data_dir, self.writer, embedded)

    def stop(self) -> None:
        """Close the local socket and the lookups, then stop the writer (when owned):
        queued work finishes and projections are saved."""
        if self._local is not None:
            self._local.close()
            self._local = None
        self.lookups.close()
        if self.owns_writer:
            self.writer.stop()


def serving(
    settings: Settings,
    kafka: KafkaSettings | None = None,
    writer: GroupCommitWriter[Any] | None = None,
) -> Platform:
    """The platform of ``cdp serve``: Kafka mode with ``kafka`` (appends go to
    the log topic, nothing is folded here, dead letters go to the dead-letter
    topic, lookups read the compacted topics), else the embedded data
    directory. ``writer``: an already made writer (tests), which the platform
    then neither starts nor stops."""
    if kafka is not None:
        return _kafka_platform(settings, kafka, writer)
    return _embedded_platform(settings, writer)


def _embedded_platform(settings: Settings, writer: GroupCommitWriter[Any] | None) -> Platform:
    from cdp.read.reader import ReadModelLookups, engine_connection  # noqa: PLC0415
    from cdp.runtime.engine import Engine  # noqa: PLC0415
    from cdp.runtime.writer import GroupCommitWriter  # noqa: PLC0415

    the_writer: GroupCommitWriter[Any] = writer or GroupCommitWriter(lambda: Engine.open(settings))
    # The in-memory read model, loaded from the engine's database on the writer's thread.
    lookups = ReadModelLookups(settings, lambda: the_writer.call(engine_connection).result())
    return Platform(
        settings,
        the_writer,
        lookups,
        _dead_letter_to_table,
        probe=None,
        owns_writer=writer is None,
    )


def _kafka_platform(
    settings: Settings, kafka: KafkaSettings, writer: GroupCommitWriter[Any] | None
) -> Platform:
    from cdp import config  # noqa: PLC0415
    from cdp.adapters.kafka.groups import GroupWatcher  # noqa: PLC0415
    from cdp.adapters.kafka.log import KafkaEventLog  # noqa: PLC0415
    from cdp.adapters.kafka.lookups import KafkaProfileLookups  # noqa: PLC0415
    from cdp.adapters.kafka.own_writes import OwnWrites  # noqa: PLC0415
    from cdp.adapters.kafka.topics import EVENTS_BY_CUSTOMER, LOG, group_id  # noqa: PLC0415
    from cdp.runtime.writer import GroupCommitWriter  # noqa: PLC0415

    # The lookups read this writer's own events back without opening them again.
    own_writes = OwnWrites(kafka.topic(LOG))
    the_writer: GroupCommitWriter[Any] = writer or GroupCommitWriter(
        lambda: KafkaEventLog.open(
            kafka, pepper=privacy_files.pepper(settings.data_dir), own_writes=own_writes
        )
    )
    # The workers' group, measured in the background: /health, /metrics and the
    # lookups' freshness read the latest measurement and never wait on the broker.
    workers = GroupWatcher(
        kafka.bootstrap, group_id(kafka.prefix), [kafka.topic(LOG), kafka.topic(EVENTS_BY_CUSTOMER)]
    )
    # The compacted profile/identity topics: any replica answers for any customer.
    from cdp.services.privacy.erased import ErasedCustomers  # noqa: PLC0415

    lookups = KafkaProfileLookups(
        kafka,
        settings.runtime_config().scoring,
        workers,
        ErasedCustomers(settings.data_dir),
        own_writes=own_writes if writer is None else None,
    )
    return Platform(
        settings,
        the_writer,
        lookups,
        _dead_letter_to_topic,
        probe=_kafka_probe(
            kafka, the_writer, lookups.lag_seconds, workers, config.health_max_lag()
        ),
        kafka=kafka,
        owns_writer=writer is None,
        metrics=_kafka_metrics(workers, lookups.lag_seconds),
    )


def _dead_letter_to_table(
    appender: Any,
    *,
    received_at: datetime,
    source: str | None,
    endpoint: str,
    reason: str,
    body: bytes,
) -> None:
    """Embedded: the engine's ``dead_letters`` table (``cdp deadletter`` reads it)."""
    from cdp.services import deadletters  # noqa: PLC0415

    deadletters.add(
        appender.con,
        received_at=received_at,
        source=source,
        endpoint=endpoint,
        reason=reason,
        body=body,
    )


def _dead_letter_to_topic(
    appender: Any,
    *,
    received_at: datetime,
    source: str | None,
    endpoint: str,
    reason: str,
    body: bytes,
) -> None:
    """Kafka: the dead-letter topic, through the writer's ``KafkaEventLog``."""
    from cdp.adapters.kafka.codec import DeadLetterMessage  # noqa: PLC0415

    appender.add_dead_letter(DeadLetterMessage(received_at, source, endpoint, reason, body))


def _kafka_probe(
    kafka: KafkaSettings,
    writer: GroupCommitWriter[Any],
    lag_seconds: Callable[[], float],
    workers: GroupWatcher,
    max_lag: int,
) -> ModeProbe:
    """Kafka mode's health: no checkpoints; the broker, the last append and the
    profile reader's lag are what matter, and the workers' lag (degraded past
    ``max_lag`` events, or with no worker in the group)."""
    import asyncio  # noqa: PLC0415

    from cdp.adapters.kafka.log import broker_reachable  # noqa: PLC0415
    from cdp.http.health import ModeHealth  # noqa: PLC0415

    async def probe() -> ModeHealth:
        reachable = await asyncio.to_thread(broker_reachable, kafka.bootstrap)
        lag = lag_seconds()
        status = workers.latest()
        degraded = []
        if status is not None and not status.members:
            degraded.append(f"no worker is in the consumer group {status.group}")
        if status is not None and status.lag() > max_lag:
            degraded.append(f"the workers are {status.lag()} events behind (over {max_lag})")
        return ModeHealth(
            reachable and writer.last_error is None,
            {
                "kafka": {
                    "bootstrap": kafka.bootstrap,
                    "topic": kafka.topic("log"),
                    "reachable": reachable,
                    "last_append_error": writer.last_error,
                },
                "profile_reader_lag_seconds": None if lag == float("inf") else lag,
                "workers": None
                if status is None
                else {"group": status.group, "state": status.state, "members": len(status.members)},
                "lag": None
                if status is None
                else {
                    "events": status.lag(),
                    "by_topic": status.lag_by_topic(),
                    "oldest_unfolded_age_seconds": status.oldest_age(),
                    "max": max_lag,
                    "measured_at": status.measured_at,
                },
            },
            degraded,
        )

    return probe


def _kafka_metrics(workers: GroupWatcher, lag_seconds: Callable[[], float]) -> ModeMetrics:
    """Kafka mode's gauges for ``/metrics``: the workers' lag (from the watcher's
    latest measurement) and the profile reader's own lag."""
    from cdp.http.metrics import ModeGauge  # noqa: PLC0415

    def gauges() -> list[ModeGauge]:
        found = []
        reader = lag_seconds()
        if reader != float("inf"):
            found.append(
                ModeGauge(
                    "cdp_profile_reader_lag_seconds",
                    "Upper bound of how far this replica's reading of the topics is behind.",
                    reader,
                )
            )
        status = workers.latest()
        if status is None:  # not measured yet, or the broker does not answer
            return found
        group = {"group": status.group}
        for topic, lag in sorted(status.lag_by_topic().items()):
            found.append(
                ModeGauge(
                    "cdp_workers_lag_events",
                    "Records the workers have not processed, per topic.",
                    lag,
                    {**group, "topic": topic},
                )
            )
        age = status.oldest_age()
        found += [
            ModeGauge(
                "cdp_workers_members",
                "Members of the workers' consumer group.",
                len(status.members),
                group,
            ),
            ModeGauge(
                "cdp_workers_oldest_unfolded_age_seconds",
                "Age of the oldest record the workers have not processed (0: none).",
                age or 0.0,
                group,
            ),
            ModeGauge(
                "cdp_workers_lag_measured_timestamp_seconds",
                "When the workers' lag was measured (Unix time).",
                status.measured_at,
                group,
            ),
        ]
        return found

    return gauges
