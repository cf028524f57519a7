"""``cdp kafka status`` against each broker, on a group of a plain kafka-python consumer
(the worker's group is covered in test_lag_visible.py): members, committed offsets,
ends, lag, and the exit statuses scripts rely on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer
from typer.testing import CliRunner

from cdp.adapters.kafka.admin import init_topics
from cdp.adapters.kafka.groups import GroupReader
from cdp.cli import app as cli
from tests.brokers import Broker

pytestmark = pytest.mark.integration


def run(*args: str) -> tuple[int, str]:
    json = ["--json"] if "--json" in args else []
    rest = [a for a in args if a != "--json"]
    result = CliRunner().invoke(cli, [*json, "kafka", "status", *rest])
    return result.exit_code, result.stdout


@pytest.fixture
def member(broker: Broker, topic_prefix: str) -> Iterator[KafkaConsumer]:
    """A consumer in the group ``{prefix}cdp-worker`` that read and committed 2 of 5 events."""
    assert init_topics(broker.bootstrap, topic_prefix, 2).ok
    log = f"{topic_prefix}log"
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=20)
    for n in range(5):  # batched: tansu's ListOffsets would say less than 5
        producer.send(log, f"e{n}".encode())
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(
        log,
        bootstrap_servers=broker.bootstrap,
        group_id=f"{topic_prefix}cdp-worker",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=2000,
        max_poll_records=2,
    )
    taken = 0
    deadline = time.monotonic() + 60
    while taken < 2:
        assert time.monotonic() < deadline, "the consumer got no records"
        for tp, records in consumer.poll(500, max_records=2 - taken).items():
            taken += len(records)
            consumer.commit({tp: _offset(records[-1].offset + 1)})
    try:
        yield consumer
    finally:
        consumer.close()


def _offset(offset: int) -> Any:
    from kafka.structs import OffsetAndMetadata  # noqa: PLC0415

    return OffsetAndMetadata(offset, None, -1)


def test_status_shows_members_offsets_and_lag(
    broker: Broker, topic_prefix: str, member: KafkaConsumer
) -> None:
    code, out = run("--bootstrap", broker.bootstrap, "--prefix", topic_prefix, "--json")
    assert code == 0, out
    found = json.loads(out)
    assert found["group"] == f"{topic_prefix}cdp-worker"
    assert found["state"] == "Stable"
    assert len(found["members"]) == 1
    assignment = found["members"][0]["assignment"]
    # noida-db reports assignments; tansu leaves them out (null: unknown, not none).
    assert assignment in (None, [{"topic": f"{topic_prefix}log", "partition": 0}])
    log = [p for p in found["partitions"] if p["topic"] == f"{topic_prefix}log"]
    assert log == [
        {
            "topic": f"{topic_prefix}log",
            "partition": 0,
            "committed": 2,
            "end": 5,
            "lag": 3,
            "oldest_unprocessed_ms": log[0]["oldest_unprocessed_ms"],
        }
    ]
    assert log[0]["oldest_unprocessed_ms"] > 0
    by_customer = [p for p in found["partitions"] if p["topic"].endswith("events.by-customer")]
    assert [(p["partition"], p["committed"], p["lag"]) for p in by_customer] == [
        (0, None, 0),
        (1, None, 0),
    ]

    code, out = run("--bootstrap", broker.bootstrap, "--prefix", topic_prefix, "--max-lag", "2")
    assert code == 1
    assert "lag 3 exceeds --max-lag 2" in out
    assert f"{topic_prefix}log" in out  # the table names the partitions
    code, _ = run("--bootstrap", broker.bootstrap, "--prefix", topic_prefix, "--max-lag", "3")
    assert code == 0


def test_a_group_without_members_fails(broker: Broker, topic_prefix: str) -> None:
    assert init_topics(broker.bootstrap, topic_prefix, 2).ok
    code, out = run("--bootstrap", broker.bootstrap, "--prefix", topic_prefix, "--app-id", "gone")
    assert code == 1
    assert f"group {topic_prefix}gone has no members" in out


def test_the_reader_keeps_its_connections(broker: Broker, topic_prefix: str) -> None:
    assert init_topics(broker.bootstrap, topic_prefix, 1).ok
    reader = GroupReader(broker.bootstrap)
    try:
        first = reader.status("nobody", [f"{topic_prefix}log"])
        again = reader.status("nobody", [f"{topic_prefix}log"])
    finally:
        reader.close()
    assert first.lag() == again.lag() == 0
    assert first.members == again.members == ()


def test_kafka_pythons_undecodable_faust_metadata_line_is_dropped() -> None:
    """faust's members use a subscription kafka-python cannot decode; it would log the
    whole group, raw bytes included, at WARNING on every description (every 5 s in
    the API)."""
    import logging  # noqa: PLC0415

    from cdp.adapters.kafka import groups  # noqa: PLC0415
    from cdp.adapters.kafka.consumers import kafka_python  # noqa: PLC0415

    groups._admin_class(kafka_python())
    decoder = logging.getLogger("kafka.admin._groups")

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord(decoder.name, logging.WARNING, __file__, 1, message, (), None)

    assert not decoder.filter(record("Unable to decode member_metadata for Group(...)/m-1"))
    assert decoder.filter(record("Unable to reach the coordinator"))
