"""The broker fixtures give a working Kafka-protocol broker of each kind."""

from __future__ import annotations

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from tests.brokers import Broker

pytestmark = pytest.mark.integration


def test_broker_stores_and_returns_records(broker: Broker, topic_prefix: str) -> None:
    topic = f"{topic_prefix}smoke"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    try:
        offsets = [
            producer.send(topic, key=b"k", value=b"v%d" % i).get(30).offset for i in range(3)
        ]
    finally:
        producer.close()
    assert offsets == [0, 1, 2]
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, consumer_timeout_ms=5000)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        values = [m.value for m in consumer]
    finally:
        consumer.close()
    assert values == [b"v0", b"v1", b"v2"]
