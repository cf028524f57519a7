"""The distributed profile reader against real brokers: it answers what the
worker published (checked against the embedded data directory), keeps the
last value per key as compaction does, and follows updates."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import duckdb
import orjson
import pytest

from cdp.adapters.kafka.follower import ProfileTopics, TopicFollower
from cdp.adapters.kafka.lookups import STATE_COLUMNS
from cdp.config import Settings
from cdp.errors import NotFoundError
from cdp.read.keys import parse
from streams.messages import assignment_key, assignment_value, profile_value
from tests.brokers import Broker
from tests.integration.kafka.test_archive_helpers import (
    build_reference,
    create_topics,
    producer,
    publish_projections,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_reference(tmp_path_factory.mktemp("reference"), customers=30)


@pytest.fixture
def reader(broker: Broker, topic_prefix: str) -> Iterator[TopicFollower]:
    create_topics(broker.bootstrap, topic_prefix)
    with TopicFollower(broker.bootstrap, ProfileTopics.with_prefix(topic_prefix)) as running:
        yield running


def published(row: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's summary as a reader returns it (JSON types, no fold states)."""
    body = orjson.loads(profile_value(row))
    return {k: v for k, v in body.items() if k not in (*STATE_COLUMNS, "customer_id")}


def lookup(follower: TopicFollower, text: str) -> dict[str, Any]:
    """What the follower holds of whoever ``text`` names, as JSON values."""
    held = follower.find(parse(text))
    return {
        "customer_id": held.customer_id,
        "identifiers": held.identifiers,
        "profile": {
            k: v for k, v in held.snapshot.items() if k not in (*STATE_COLUMNS, "customer_id")
        },
        "merges": held.merges,
    }


def eventually(check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Wait until ``check()`` holds (a ``NotFoundError`` counts as not yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except NotFoundError:
            pass
        assert time.monotonic() < deadline, "the reader did not see the update in time"
        time.sleep(0.02)


def test_reader_answers_what_the_worker_published(
    broker: Broker, topic_prefix: str, reference: Settings, reader: TopicFollower
) -> None:
    data = publish_projections(broker.bootstrap, topic_prefix, reference)
    # Everything acknowledged before this call must be visible once it returns.
    reader.wait_until_caught_up()
    assert reader.stats()["customers"] == len(data["customers"])
    con = duckdb.connect(str(reference.database), read_only=True)
    try:
        owners = con.execute(
            "SELECT identifier, customer_id FROM identity_graph WHERE identifier <> ''"
        ).fetchall()
        held = con.execute(
            "SELECT customer_id, list(identifier ORDER BY identifier) FROM identity_graph "
            "WHERE identifier <> '' GROUP BY customer_id"
        ).fetchall()
    finally:
        con.close()
    identifiers = dict(held)
    assert len(owners) > len(data["customers"])
    for identifier, customer in owners:
        answer = lookup(reader, identifier)
        assert answer["customer_id"] == customer
        assert answer["identifiers"] == identifiers[customer]
        assert answer["profile"] == published(data["customers"][customer])
    for merge in data["merges"]:  # a merged-away id answers with its survivor
        survivor = lookup(reader, merge.from_customer)["customer_id"]
        assert survivor in data["customers"] and survivor != merge.from_customer
    assert data["merges"], "the reference has merges"
    with pytest.raises(NotFoundError):
        lookup(reader, "cus_ghost")  # published, then deleted by a tombstone
    with pytest.raises(NotFoundError):
        lookup(reader, "email:nobody@example.jp")
    assert 0 <= reader.lag_seconds() < float("inf")


def test_reader_follows_updates_and_compaction_semantics(
    broker: Broker, topic_prefix: str, reference: Settings, reader: TopicFollower
) -> None:
    data = publish_projections(broker.bootstrap, topic_prefix, reference, stale_first=False)
    reader.wait_until_caught_up()
    first, second = list(data["customers"])[:2]
    row = data["customers"][first]
    topics = ProfileTopics.with_prefix(topic_prefix)
    identifier = "email:moved@example.jp"
    sender = producer(broker.bootstrap)
    try:
        # A new version of a snapshot replaces the old one.
        sender.send(topics.profiles, profile_value({**row, "city": "Sapporo"}), first.encode())
        sender.flush()
        eventually(lambda: lookup(reader, first)["profile"]["city"] == "Sapporo")
        # An identifier assigned to one customer, then re-assigned to another.
        for owner in (first, second):
            assignment = (identifier, owner, 99, "")
            sender.send(
                topics.assignments, assignment_value(assignment), assignment_key(assignment)
            )
            sender.flush()
            eventually(lambda o=owner: lookup(reader, identifier)["customer_id"] == o)
        assert identifier not in lookup(reader, first)["identifiers"]
        assert identifier in lookup(reader, second)["identifiers"]
        # A tombstone deletes: the identifier key, then the profile.
        sender.send(topics.assignments, None, identifier.encode())
        sender.send(topics.profiles, None, second.encode())
        sender.flush()

        def gone() -> bool:
            try:
                lookup(reader, second)
            except NotFoundError:
                return True
            return False

        eventually(gone)
        with pytest.raises(NotFoundError):
            lookup(reader, identifier)
    finally:
        sender.close()
    assert reader.lag_seconds() < float("inf")


def test_a_second_reader_started_later_sees_the_same_final_state(
    broker: Broker, topic_prefix: str, reference: Settings, reader: TopicFollower
) -> None:
    data = publish_projections(broker.bootstrap, topic_prefix, reference)
    reader.wait_until_caught_up()
    with TopicFollower(broker.bootstrap, ProfileTopics.with_prefix(topic_prefix)) as late:
        late.wait_until_caught_up()
        assert late.stats()["customers"] == len(data["customers"])
        for customer in data["customers"]:
            assert lookup(late, customer) == lookup(reader, customer)
