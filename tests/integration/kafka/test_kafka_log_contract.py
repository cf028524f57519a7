"""The Kafka ``EventLog`` held to the port's contract, against both real brokers.

``fail_next_append`` wraps the real kafka-python producer in a proxy that
hands the first half of the next append's records to the producer and then
raises: those records sit in the producer's batch, and the adapter must make
sure they never reach the broker. ``stored_counts`` reads the topic with a
plain consumer, beneath the port.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from cdp.adapters.kafka import codec as kafka_codec
from cdp.adapters.kafka.admin import init_topics
from cdp.adapters.kafka.log import KafkaEventLog
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.ports.log import EventLog
from tests.brokers import Broker
from tests.integration.test_log_contract import (
    EventLogContract,
    InjectedFault,
    ids,
    make_records,
    read_all,
)

pytestmark = pytest.mark.integration


class FaultyProducer:
    """A real ``KafkaProducer`` that can be told to fail half-way through one append."""

    def __init__(self, real: Any, faults: dict[str, bool]) -> None:
        self.real = real
        self.faults = faults
        self.sent = 0

    def send(self, *args: Any, **kwargs: Any) -> Any:
        if self.faults.get("armed") and self.sent >= 1:
            self.faults["armed"] = False
            raise InjectedFault(f"simulated failure after {self.sent} records were handed over")
        self.sent += 1
        return self.real.send(*args, **kwargs)

    def flush(self, *args: Any, **kwargs: Any) -> Any:
        self.sent = 0
        return self.real.flush(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def count_raw(bootstrap: str, topic: str) -> list[str]:
    """messageIds of every record physically in ``topic``, read with a plain consumer."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=1500,
    )
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        return [orjson.loads(m.value)["messageId"] for m in consumer]
    finally:
        consumer.close()


class TestKafkaEventLog(EventLogContract):
    """The Kafka adapter over a fresh log topic per test."""

    @pytest.fixture(autouse=True)
    def _kafka(self, broker: Broker, topic_prefix: str) -> Iterator[None]:
        self.settings = KafkaSettings(broker.bootstrap, topic_prefix, 2)
        assert init_topics(broker.bootstrap, topic_prefix, 2).ok
        self.faults: dict[int, dict[str, bool]] = {}
        self.opened: list[KafkaEventLog] = []
        yield
        for log in self.opened:
            log.close()

    def _open(self, faults: dict[str, bool]) -> KafkaEventLog:
        def factory(**config: Any) -> FaultyProducer:
            return FaultyProducer(KafkaProducer(**config), faults)

        log = KafkaEventLog.open(self.settings, producer_factory=factory, timeout=10)
        self.faults[id(log)] = faults
        self.opened.append(log)
        return log

    def make_log(self, tmp_path: Path) -> EventLog:
        return self._open({})

    def reopen(self, log: EventLog) -> EventLog:
        log.close()
        return self._open(self.faults[id(log)])

    def fail_next_append(self, log: EventLog) -> None:
        self.faults[id(log)]["armed"] = True

    def stored_counts(self, log: EventLog) -> tuple[int, int]:
        found = count_raw(self.settings.bootstrap, self.settings.topic("log"))
        return len(found), len(set(found))

    # ------------------------------------------------------- adapter specifics
    def test_records_carry_the_documented_key_value_and_headers(
        self, log: EventLog, broker: Broker
    ) -> None:
        """value = Record.data, key = userId/anonymousId/messageId, header source."""
        records = make_records(*ids("a", 4), source="shop.jsonl")
        log.append(records)
        consumer = KafkaConsumer(
            bootstrap_servers=broker.bootstrap, group_id=None, consumer_timeout_ms=1500
        )
        try:
            tp = TopicPartition(self.settings.topic("log"), 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            raw = list(consumer)
        finally:
            consumer.close()
        assert [m.value for m in raw] == [r.data for r in records]
        expected_keys = [
            (getattr(r.event, "user_id", None) or getattr(r.event, "anonymous_id", None)).encode()
            for r in records
        ]
        assert [m.key for m in raw] == expected_keys
        assert [kafka_codec.source_of(m.headers) for m in raw] == ["shop.jsonl"] * 4
        assert [kafka_codec.decode_event(m.value) for m in raw] == [r.event for r in records]

    def test_one_append_is_one_batch_and_high_water_counts_every_record(
        self, log: EventLog, broker: Broker
    ) -> None:
        """Multi-record batches are what tansu's ListOffsets gets wrong: the adapter's
        high water must still be one past the last record (checked by reading)."""
        for n, size in enumerate((7, 1, 5)):
            log.append(make_records(*ids(f"b{n}", size)))
        assert log.high_water() == 13
        assert len(count_raw(broker.bootstrap, self.settings.topic("log"))) == 13
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=None)
        try:
            tp = TopicPartition(self.settings.topic("log"), 0)
            listed = consumer.end_offsets([tp])[tp]
        finally:
            consumer.close()
        if "end_offsets_per_batch" in broker.quirks:
            assert listed == 9  # base offset of the last batch + 1: the quirk is real here
        else:
            assert listed == 13

    def test_appended_offsets_are_the_broker_offsets(self, log: EventLog) -> None:
        first = log.append(make_records(*ids("a", 3)))
        assert [s.offset for s in read_all(log)] == list(first.offsets)

    def test_a_second_writer_dedups_what_the_first_stored(self, log: EventLog) -> None:
        """The index is rebuilt from the topic at open, so another process appending
        the same messageIds later stores nothing."""
        log.append(make_records(*ids("a", 4)))
        other = self._open({})
        result = other.append(make_records("a-2", "c-0", "a-0"))
        assert result.offsets == (2, 4, 0)
        assert result.new == (False, True, False)
        assert log.high_water() == 5

    def test_missing_topic_is_a_config_error_naming_kafka_init(self, broker: Broker) -> None:
        from cdp.errors import ConfigError  # noqa: PLC0415

        with pytest.raises(ConfigError, match="kafka init"):
            KafkaEventLog(broker.bootstrap, "no-such-topic-here", timeout=5)

    def test_append_after_abandon_reindexes_what_landed(self, log: EventLog) -> None:
        """A batch that reached the broker although append failed (ack lost) is found
        at the next append, so the retry stores nothing twice."""
        assert isinstance(log, KafkaEventLog)
        batch = make_records(*ids("a", 3))
        log.append(batch)
        # Pretend the acknowledgement of that append was lost: forget it.
        log._index.clear()
        log._indexed_to = 0
        log._abandon()
        retry = log.append(batch + make_records("b-0"))
        assert retry.offsets == (0, 1, 2, 3)
        assert retry.new == (False, False, False, True)
        assert Counter(count_raw(self.settings.bootstrap, self.settings.topic("log"))) == Counter(
            [*ids("a", 3), "b-0"]
        )
