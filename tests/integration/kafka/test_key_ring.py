"""The key topic's reading side on a real broker: ``KeyRing.prepare`` settles a
batch's keys with one catch-up (the topic follower opens the log's sealed
records that way), and a destroyed key is never opened again."""

from __future__ import annotations

import secrets

from cdp.adapters.kafka import admin as kafka_admin
from cdp.adapters.kafka.keys import KeyRing
from cdp.adapters.kafka.topics import KEYS
from cdp.services.privacy import sealing
from tests.brokers import Broker


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
