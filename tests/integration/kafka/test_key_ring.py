"""The key topic's reading side on a real broker: ``KeyRing.prepare`` settles a
batch's keys with one catch-up (the topic follower opens the log's sealed
records that way), a destroyed key is never opened again, and the follower of
`cdp serve --kafka` takes its own writer's events and keys before the topics."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime

from cdp.adapters.kafka import admin as kafka_admin
from cdp.adapters.kafka.follower import ProfileTopics, TopicFollower
from cdp.adapters.kafka.keys import KeyRing
from cdp.adapters.kafka.log import KafkaEventLog
from cdp.adapters.kafka.own_writes import OwnWrites
from cdp.adapters.kafka.topics import KEYS, LOG, KafkaSettings
from cdp.ports.log import Record
from cdp.services.ingest import to_record
from cdp.services.privacy import sealing
from tests.brokers import Broker

RECEIVED = datetime(2026, 11, 1, tzinfo=UTC)


class CountingRing(KeyRing):
    """A read-only ring that counts its catch-ups (each is a broker round trip)."""

    catch_ups = 0

    def catch_up(self) -> None:
        self.catch_ups += 1
        super().catch_up()


def test_prepare_reads_a_batch_of_new_keys_once_and_settles_destroyed_ones(
    broker: Broker, topic_prefix: str
) -> None:
    assert kafka_admin.init_topics(broker.bootstrap, topic_prefix, 1).ok
    topic = topic_prefix + KEYS
    writer = KeyRing(broker.bootstrap, topic, pepper=secrets.token_bytes(32))
    reader = CountingRing(broker.bootstrap, topic)
    try:
        [old] = writer.keys_for(["email:hanako@shop.jp"])
        # Written after the reader opened: it has not read them yet.
        new = writer.keys_for(["email:taro@shop.jp", "line:U0123", "anonymous_id:a-1"])
        sealing.seal(b'{"a":1}', new)  # its cipher is memoised...
        assert sealing._cipher.cache_info().currsize > 0
        assert writer.destroy(["line:U0123"]) == 1
        assert sealing._cipher.cache_info().currsize == 0  # ...until a key is destroyed
        never = secrets.token_bytes(8)  # a key id nobody wrote (or compacted away)
        wanted = [old.kid, *(k.kid for k in new), never]
        reader.catch_ups = 0

        reader.prepare(wanted)

        assert reader.catch_ups == 1
        assert not reader.unread(wanted)
        assert reader.known(old.kid) == old.secret
        assert reader.known(new[0].kid) == new[0].secret
        assert reader.known(new[2].kid) == new[2].secret
        assert reader.known(new[1].kid) is None  # destroyed
        assert reader.known(never) is None
        reader.prepare(wanted)  # all settled: no broker call
        assert reader.catch_ups == 1
        assert reader.secret_of(new[1].kid) is None and reader.catch_ups == 1
    finally:
        reader.close()
        writer.close()


def test_a_follower_takes_its_own_writers_events_and_keys_before_the_topics(
    broker: Broker, topic_prefix: str
) -> None:
    """``cdp serve --kafka`` reads back what its writer has just sealed: the events
    still held come from the writer as stored (``OwnWrites``), older ones open with
    the writer's keys, and only another replica's keys are read from the topic."""
    assert kafka_admin.init_topics(broker.bootstrap, topic_prefix, 1).ok
    kafka = KafkaSettings(broker.bootstrap, topic_prefix, 1)
    pepper = secrets.token_bytes(32)
    own = OwnWrites(kafka.topic(LOG), keep=2)
    mine = KafkaEventLog.open(kafka, pepper=pepper, own_writes=own)
    other = KafkaEventLog.open(kafka, pepper=pepper)  # another API replica

    def event(user: str) -> Record:
        raw = {"type": "track", "event": "Page Viewed", "userId": user, "messageId": user}
        return to_record(raw | {"timestamp": "2026-11-01T00:00:00Z"}, RECEIVED, "test")

    topics = ProfileTopics.with_prefix(topic_prefix)
    try:
        mine.append([event("u-a"), event("u-b"), event("u-c")])  # u-a: past the two held
        assert sorted(own._events) == [1, 2]
        with TopicFollower(broker.bootstrap, topics, own_writes=own) as follower:
            follower.wait_until_caught_up(30)
            assert own._events == {}  # handed over, each once
            assert follower._ring is None  # u-a opened with the writer's keys: no fetch
            for user in ("u-a", "u-b", "u-c"):
                assert f"user_id:{user}" in follower._events._rings
            other.append([event("u-other")])
            follower.wait_until_caught_up(30)
            assert follower._ring is not None  # the other replica's key: from the topic
            assert "user_id:u-other" in follower._events._rings
    finally:
        mine.close()
        other.close()


def test_a_writers_sealers_are_kept_per_identifier_set_until_a_key_is_destroyed(
    broker: Broker, topic_prefix: str
) -> None:
    """``sealers_for`` stores a new set's keys first, then seals by lookup; after an
    erasure of one identifier, no set holding it seals under the destroyed key again."""
    assert kafka_admin.init_topics(broker.bootstrap, topic_prefix, 1).ok
    topic = topic_prefix + KEYS
    writer = KeyRing(broker.bootstrap, topic, pepper=secrets.token_bytes(32))
    reader = KeyRing(broker.bootstrap, topic)
    hanako = ("user_id:u-1", "email:hanako@shop.jp")
    taro = ("anonymous_id:a-9",)
    try:
        first = writer.sealers_for([hanako, (), taro, hanako])
        assert first[1] is None  # an event naming nobody stays in the clear
        assert first[0] is first[3]  # one sealer per set in a write
        assert writer.sealers_for([hanako])[0] is first[0]  # and kept for the next
        sealed = first[0].seal(b'{"a":1}')  # type: ignore[union-attr]
        assert len(sealing.kids_of(sealed)) == 2  # under both of hanako's keys
        assert sealing.unseal(sealed, reader.secret_of) == b'{"a":1}'  # stored before use

        assert writer.destroy(["email:hanako@shop.jp"]) == 1
        again = writer.sealers_for([hanako, taro])
        assert again[0] is not first[0]
        assert again[1] is not first[2]  # every kept sealer went with the key
        reader.catch_up()  # reads the tombstone
        assert sealing.unseal(sealed, reader.secret_of) is None
        resealed = again[0].seal(b'{"a":2}')  # type: ignore[union-attr]
        assert sealing.unseal(resealed, reader.secret_of) == b'{"a":2}'  # a new key, stored
    finally:
        reader.close()
        writer.close()


def _event(body: dict[str, object]) -> Record:
    return to_record({"timestamp": "2026-11-01T00:00:00Z", **body}, RECEIVED, "web")


def test_a_writer_seals_each_event_under_every_identifier_it_names(
    broker: Broker, topic_prefix: str
) -> None:
    """``sealers_of`` gives each event the sealer of ``every_identifier_of`` it: an
    event naming only its envelope's ids by those ids (kept), one naming more (an
    email in its context traits) under every one; an erasure drops what was kept."""
    assert kafka_admin.init_topics(broker.bootstrap, topic_prefix, 1).ok
    writer = KeyRing(broker.bootstrap, topic_prefix + KEYS, pepper=secrets.token_bytes(32))
    envelope = {"userId": "u-1", "anonymousId": "a-1"}
    page = _event({"type": "page", "messageId": "m1", **envelope}).event
    again = _event({"type": "track", "event": "Clicked", "messageId": "m2", **envelope}).event
    traits = {"traits": {"email": "Hanako@Shop.jp"}}
    named = _event({"type": "page", "messageId": "m3", "context": traits, **envelope}).event
    nobody = _event({"type": "page", "messageId": "m4", "anonymousId": "null"}).event
    try:
        sealers = writer.sealers_of([page, again, named, nobody])
        assert sealers[0] is sealers[1]  # one person, one sealer
        assert sealers[0] is writer.sealers_for([("user_id:u-1", "anonymous_id:a-1")])[0]
        assert sealers[2] is not sealers[0]  # the email's key too
        assert len(sealing.kids_of(sealers[2].seal(b"{}"))) == 3  # type: ignore[union-attr]
        assert sealers[3] is None  # junk ids only: nobody's, in the clear
        assert writer.sealers_of([page])[0] is sealers[0]  # kept for the next write

        assert writer.destroy(["anonymous_id:a-1"]) == 1
        after = writer.sealers_of([page, named])
        assert after[0] is not sealers[0] and after[1] is not sealers[2]
        assert len(sealing.kids_of(after[0].seal(b"{}"))) == 2  # type: ignore[union-attr]
    finally:
        writer.close()
