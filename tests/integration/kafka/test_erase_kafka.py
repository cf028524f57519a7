"""Erasure in Kafka mode, end to end on a real broker (docs/privacy.md).

A shop's events go through the collector's log adapter (sealed under their
identifiers' keys), a worker folds them exactly as the embedded runtime does;
one person is erased (a LINE friend known by email, phone, LINE id and
anonymous ids, the follow's ``line-U...`` among them; their keys destroyed);
a new generation of workers
folds the log again and gets everyone else's profiles unchanged and nothing
of the person; the old generation is dropped; then a dump of every remaining
topic holds none of the person's identifiers, name or phone, plain,
lower-cased or SHA-256, and the key topic holds none of their keys.

Runs on noida-db. tansu (memory only) never compacts a topic, so the
destroyed keys stay readable in its key topic: the erasure there is only as
good as the tombstones (docs/privacy.md says so).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from cdp.adapters.kafka import admin as kafka_admin
from cdp.adapters.kafka.erase import KafkaErasure
from cdp.adapters.kafka.keys import KeyRing
from cdp.adapters.kafka.log import KafkaEventLog
from cdp.adapters.kafka.topics import KEYS, KafkaSettings
from cdp.config import Settings
from cdp.services.privacy import erase, files
from cdp.services.privacy import requests as privacy_requests
from cdp.services.privacy.requests import Requests
from cdp.services.privacy.sealing import is_sealed
from tests import kafka_snapshot as snapshot
from tests.brokers import Broker
from tests.integration.kafka.test_streams_worker import Worker, embedded, generated

PERSON_FIELDS = ("email", "phone", "name", "first_name", "last_name", "first_name_kana")


def topics_with(bootstrap: str, prefix: str) -> list[str]:
    from kafka.admin import KafkaAdminClient  # noqa: PLC0415

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return sorted(n for n in admin.list_topics() if n.startswith(prefix))
    finally:
        admin.close()


def compact_soon(bootstrap: str, topic: str) -> None:
    """Roll and compact ``topic`` within seconds, not the minute ``cdp kafka init`` sets:
    the test waits for the compaction that removes the destroyed keys' bytes, which the
    broker runs only on a rolled segment (a production topic keeps the minute)."""
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient  # noqa: PLC0415

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        fast = {"segment.ms": "2000", "max.compaction.lag.ms": "2000"}
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=fast)])
    finally:
        admin.close()


def dump(bootstrap: str, topic: str) -> list[Any]:
    return [m for batch in [list(snapshot.records(bootstrap, topic, 30))] for m in batch]


def profiles_when(follower: snapshot.Follower, want: dict[str, Any], worker: Worker) -> None:
    parity = snapshot.Parity(follower, want)
    deadline = time.monotonic() + 180
    follower.catch_up(30)
    while not parity.check():
        assert worker.alive(), worker.tail()
        assert time.monotonic() < deadline, (parity.differ, worker.tail())
        time.sleep(0.5)
        follower.catch_up(30)
    assert follower.catch_up(30).comparable_profiles() == want


def forms_of(values: set[str]) -> set[bytes]:
    """Each value plain, lower-cased and as SHA-256 hex (what ad platforms are sent)."""
    found: set[bytes] = set()
    for value in values:
        for form in {value, value.lower()}:
            found.add(form.encode())
            found.add(hashlib.sha256(form.encode()).hexdigest().encode())
    return found


def test_an_erased_person_leaves_no_readable_byte_in_any_topic(
    broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    if broker.kind == "tansu":
        pytest.skip("tansu never compacts: destroyed keys stay in its key topic (docs/privacy.md)")
    p, g2 = topic_prefix, f"{topic_prefix}g2."
    assert kafka_admin.init_topics(broker.bootstrap, p, 2).ok
    settings = Settings(tmp_path / "api")
    kafka = KafkaSettings(broker.bootstrap, p, 2)
    records = generated(6)
    log = KafkaEventLog.open(kafka, pepper=files.pepper(settings.data_dir))
    try:
        log.append(records)
    finally:
        log.close()
    stored = dump(broker.bootstrap, p + "log")
    assert stored and all(is_sealed(m.value) for m in stored)

    # Generation 1 folds the sealed log exactly as the embedded runtime folds the events.
    want = snapshot.embedded_profiles(embedded(records))
    first = Worker(broker, p, None, tmp_path, name="g1").start()
    try:
        with snapshot.Follower(broker.bootstrap, p) as follower:
            profiles_when(follower, want, first)
            state = follower.catch_up(30)
    finally:
        first.stop()

    # The person: a LINE friend known by email, phone, LINE id and anonymous ids,
    # among them the follow's line-U... (linked by the LINE id the follow carries).
    owner = state.assignments()
    for identifier, c in owner.items():
        if identifier.startswith("line:"):
            follow = "anonymous_id:line-" + identifier.removeprefix("line:")
            assert owner.get(follow, c) == c, f"{follow} is not {identifier}'s customer"

    def alone(c: str) -> bool:
        # None of their identifiers' values inside another customer's identifiers.
        mine = [i.split(":", 1)[1] for i, cc in owner.items() if cc == c]
        return not any(v in i for i, cc in owner.items() if cc != c for v in mine)

    def kinds(c: str) -> set[str]:
        return {i.split(":", 1)[0] for i, cc in owner.items() if cc == c}

    customer = max(
        {
            c
            for i, c in owner.items()
            if i.startswith("anonymous_id:line-")
            and {"email", "phone", "line"} <= kinds(c)
            and alone(c)
        },
        key=lambda c: sum(1 for cc in owner.values() if cc == c),
    )
    keys = sorted(i for i, c in owner.items() if c == customer)
    email = next(k for k in keys if k.startswith("email:"))
    snap = state.profiles[customer]
    values = {k.split(":", 1)[1] for k in keys} | {
        str(snap[f]) for f in PERSON_FIELDS if isinstance(snap.get(f), str) and snap[f]
    }
    needles = forms_of(values)

    request = Requests(settings.data_dir).file(
        privacy_requests.SUPPRESS_WITH_DELETE, email, "test", "kafka"
    )
    done = erase.run(settings, request, [], KafkaErasure(settings, kafka))
    assert done.status == privacy_requests.FINISHED, done
    assert done.counts["keys_destroyed"] >= len(keys)

    # Generation 2 folds the same log: everyone else exactly as before, the person gone.
    assert kafka_admin.init_topics(broker.bootstrap, g2, 2, input_prefix=p).ok
    others = {c: row for c, row in want.items() if c != customer}
    second = Worker(broker, g2, None, tmp_path, name="g2", extra=["--input-prefix", p]).start()
    try:
        with snapshot.Follower(broker.bootstrap, g2) as follower:
            profiles_when(follower, others, second)
            assert customer not in follower.catch_up(30).profiles
    finally:
        second.stop()

    dropped = kafka_admin.drop_generation(broker.bootstrap, p)
    assert f"{p}profiles" in dropped and f"{p}log" not in dropped

    # The key topic: none of the person's keys once the broker compacted it.
    pepper = files.pepper(settings.data_dir)
    tokens = {bytes.fromhex(files.token(pepper, k)) for k in keys}
    deadline = time.monotonic() + 150
    compact_soon(broker.bootstrap, p + KEYS)
    ring = KeyRing(broker.bootstrap, p + KEYS, pepper=pepper)
    try:
        while any(m.value and m.value[:32] in tokens for m in dump(broker.bootstrap, p + KEYS)):
            assert time.monotonic() < deadline, "the broker did not compact the key topic"
            ring.keys_for([f"anonymous_id:visitor-{time.monotonic()}"])  # a new visitor
            time.sleep(2)
    finally:
        ring.close()

    # Every byte of every remaining topic: nothing of the person.
    remaining = topics_with(broker.bootstrap, p)
    assert f"{p}log" in remaining and f"{g2}profiles" in remaining
    for topic in remaining:
        for message in dump(broker.bootstrap, topic):
            blob = (message.key or b"") + (message.value or b"")
            blob += b"".join(v for _, v in message.headers or ())
            hits = [n for n in needles if n in blob]
            assert not hits, f"{topic}@{message.offset} holds {hits}"
