"""A worker follows the topics ``cdp kafka init`` made, and nothing else creates topics.

Issue 15: workers assumed 4 partitions where the topics had 12 (faust then
crash-looped with ``PartitionsMismatch`` in a process that stayed up), created
missing topics with 1 replica before the init Job ran, and one ``--prefix``
moved the input log with the outputs. Against both brokers of the suite.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from typer.testing import CliRunner

from cdp.adapters.kafka import admin as kafka_admin
from cdp.adapters.kafka import topics as kafka_topics
from cdp.adapters.kafka.layout import TopicsMissingError, discover, wait_for_layout
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.cli import app
from cdp.errors import ConfigError
from tests import kafka_snapshot as snapshot
from tests.brokers import Broker
from tests.integration.kafka.test_streams_worker import Worker, generated, produce

pytestmark = pytest.mark.integration


def topics_with(bootstrap: str, prefix: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return {n for n in admin.list_topics() if n.startswith(prefix)}
    finally:
        admin.close()


def worker_cli(broker: Broker, tmp_path: Path, *args: str) -> Any:
    return CliRunner().invoke(
        app,
        [
            "--data-dir", str(tmp_path / "data"), "worker", "--bootstrap", broker.bootstrap,
            "--broker-profile", broker.kind, *args,
        ],
    )  # fmt: skip


def test_a_worker_follows_the_partitions_of_the_topics(broker: Broker, topic_prefix: str) -> None:
    assert kafka_admin.init_topics(broker.bootstrap, topic_prefix, 3).ok
    layout = discover(KafkaSettings(broker.bootstrap, topic_prefix), "cdp-worker")
    assert (layout.partitions, layout.replication) == (3, 1)


def test_a_partition_count_other_than_the_topics_is_refused_with_exit_2(
    broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    assert kafka_admin.init_topics(broker.bootstrap, topic_prefix, 3).ok
    result = worker_cli(broker, tmp_path, "--prefix", topic_prefix, "--partitions", "4")
    assert result.exit_code == 2, result.output
    assert "has 3 partitions, but --partitions says 4" in result.output


def test_topics_that_disagree_on_partitions_are_refused(broker: Broker, topic_prefix: str) -> None:
    """by-customer and the customers changelog must be co-partitioned (faust's
    PartitionsMismatch), and so must the other keyed topics."""
    changelog = kafka_topics.changelog(topic_prefix, "cdp-worker", "customers")
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(changelog, 2, 1)])
    finally:
        admin.close()
    report = kafka_admin.init_topics(broker.bootstrap, topic_prefix, 3)
    assert not report.ok  # init says so too
    with pytest.raises(ConfigError, match=f"{changelog} has 2, expected 3"):
        discover(KafkaSettings(broker.bootstrap, topic_prefix), "cdp-worker")


def test_a_worker_creates_no_topic_it_waits_then_exits_2(
    broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    result = worker_cli(broker, tmp_path, "--prefix", topic_prefix, "--wait", "0")
    assert result.exit_code == 2, result.output
    assert "only `cdp kafka init` creates topics" in result.output
    assert f"{topic_prefix}log" in result.output
    assert topics_with(broker.bootstrap, topic_prefix) == set()

    said: list[float] = []
    started = time.monotonic()
    with pytest.raises(ConfigError, match="gave up after 2 s"):
        wait_for_layout(
            KafkaSettings(broker.bootstrap, topic_prefix),
            "cdp-worker",
            wait=2.0,
            sleep=lambda s: (said.append(s), time.sleep(s)),
        )
    assert said and time.monotonic() - started >= 2.0  # it did wait, retrying
    assert topics_with(broker.bootstrap, topic_prefix) == set()


def test_a_worker_waits_for_init_then_starts(broker: Broker, topic_prefix: str) -> None:
    """The init Job and the workers start in any order: the worker waits."""
    settings = KafkaSettings(broker.bootstrap, topic_prefix)
    with pytest.raises(TopicsMissingError):
        discover(settings, "cdp-worker")
    calls = 0

    def init_meanwhile(seconds: float) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            assert kafka_admin.init_topics(broker.bootstrap, topic_prefix, 2).ok

    layout = wait_for_layout(settings, "cdp-worker", wait=60.0, sleep=init_meanwhile)
    assert layout.partitions == 2


def test_replication_is_checked_by_init(broker: Broker, topic_prefix: str) -> None:
    """One noida-db broker cannot hold 2 copies: it refuses to create the topic, and
    init keeps trying for ``wait`` seconds (a cluster still forming), then says why.
    tansu accepts any factor and reports that many replica nodes (it replicates
    nothing): init then reads back what the broker says, and so does a worker."""
    if broker.kind == "noida":
        with pytest.raises(ConfigError, match="with 2 replicas: fewer brokers are up"):
            kafka_admin.init_topics(broker.bootstrap, topic_prefix, 2, 2, wait=1.0)
        assert topics_with(broker.bootstrap, topic_prefix) == set()
        return
    report = kafka_admin.init_topics(broker.bootstrap, topic_prefix, 2, 2, wait=1.0)
    assert report.ok and {t.replicas for t in report.topics} == {2}
    layout = discover(KafkaSettings(broker.bootstrap, topic_prefix), "cdp-worker")
    assert layout.replication == 2


def test_replicas_below_min_insync_are_a_problem() -> None:
    spec = kafka_topics.topic_specs("cdp.", 2)[0]
    problems = kafka_admin._replica_problems(spec, 1, {"min.insync.replicas": "2"}, None)
    assert problems and "NOT_ENOUGH_REPLICAS" in problems[0]
    assert kafka_admin._replica_problems(spec, 3, {"min.insync.replicas": "2"}, 3) == []


def test_a_new_generation_reads_the_old_log_and_writes_its_own_topics(
    broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    """The documented upgrade: workers under ``--prefix <p>v2. --input-prefix <p>``
    fold the existing log into topics of their own; nothing else is created, and the
    first generation's topics are untouched."""
    v2 = f"{topic_prefix}v2."
    assert kafka_admin.init_topics(broker.bootstrap, topic_prefix, 2).ok
    first = topics_with(broker.bootstrap, topic_prefix)
    report = kafka_admin.init_topics(broker.bootstrap, v2, 2, input_prefix=topic_prefix)
    assert report.ok
    assert report.created and f"{topic_prefix}log" not in report.created
    records = generated(3)
    produce(broker, topic_prefix, records)

    worker = Worker(broker, v2, None, tmp_path, extra=["--input-prefix", topic_prefix]).start()
    try:
        deadline = time.monotonic() + 120
        profiles: dict[str, Any] = {}
        with snapshot.Follower(broker.bootstrap, v2) as follower:
            while time.monotonic() < deadline and not profiles:
                profiles = follower.catch_up(10).profiles
        assert profiles, worker.tail()
        assert worker.alive(), worker.tail()
    finally:
        worker.stop()
    assert topics_with(broker.bootstrap, topic_prefix) == first | set(report.created)
    assert not any(n.startswith(f"{v2}log") for n in report.created)
