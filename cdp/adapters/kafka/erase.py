"""Erasure in Kafka mode: destroy the person's keys, stop serving them, and say
what the next rebuild removes.

The distributed log is sealed (``cdp.services.privacy.sealing``): every event
is encrypted under the keys of the identifiers it carries, kept in
``cdp.keys``. Erasing a person here:

1. finds them in the identity topics (``find_person``): the customer an
   identifier names, the customers merged into it, and every identifier key
   assigned to any of them (the identifier itself too, known or not);
2. destroys the keys of all those identifiers (tombstones in ``cdp.keys``,
   acknowledged by the brokers): from then on, no reader (worker, archiver,
   API, replay) can open any of their events, and a new generation of
   workers folding the log skips them, exactly as if the embedded log had
   deleted them;
3. puts their customer ids on the erased list (``cdp.services.privacy.erased``):
   every API replica stops serving them within a second.

What stays, until the rebuild: the topics the workers derived from the log
(profiles, identity assignments and merges, the by-customer stream, the
workers' changelogs) hold the person's last values in the clear. They are
re-derivable, so they are rebuilt: a new generation of topics folded from
the log, then the old generation dropped (``cdp kafka drop``; docs/privacy.md,
"Erasure in Kafka mode"). The request says so in ``counts``.
"""

from __future__ import annotations

from cdp.adapters.kafka.follower import ProfileTopics, TopicFollower
from cdp.adapters.kafka.keys import KeyRing
from cdp.adapters.kafka.topics import KEYS, KafkaSettings
from cdp.config import Settings
from cdp.errors import NotFoundError
from cdp.services.privacy import files
from cdp.services.privacy.erased import ErasedCustomers

Found = tuple[frozenset[str], frozenset[str]]
"""(customer ids, identifier keys) of a person."""


class KafkaErasure:
    """``cdp.services.privacy.erase.KafkaEraser`` over the topics of ``kafka``."""

    def __init__(self, settings: Settings, kafka: KafkaSettings) -> None:
        self.settings = settings
        self.kafka = kafka

    def find_person(self, identifier: str) -> Found:
        """See ``find_person``."""
        return find_person(self.kafka, identifier)

    def erase(
        self, customer_ids: frozenset[str], identifiers: frozenset[str], request_id: str
    ) -> dict[str, int]:
        """See ``erase``."""
        return erase(self.settings, self.kafka, customer_ids, identifiers, request_id)


def find_person(kafka: KafkaSettings, identifier: str, timeout: float = 120.0) -> Found:
    """The person ``identifier`` names in the identity and profile topics (the log is
    not read): their customers and every identifier key they have."""
    named = frozenset() if identifier.startswith("cus_") else frozenset({identifier})
    topics = ProfileTopics.with_prefix(kafka.prefix, kafka.input_prefix)
    topics = ProfileTopics(topics.profiles, topics.assignments, topics.merges, "", topics.keys)
    with TopicFollower(kafka.bootstrap, topics) as follower:
        follower.wait_until_caught_up(timeout)
        try:
            held = follower.find(identifier)
        except NotFoundError:
            return frozenset(), named
    customers = {held.customer_id} | {str(m["from_customer"]) for m in held.merges}
    return frozenset(customers), frozenset(held.identifiers) | named


def erase(
    settings: Settings,
    kafka: KafkaSettings,
    customer_ids: frozenset[str],
    identifiers: frozenset[str],
    request_id: str,
) -> dict[str, int]:
    """Destroy the keys of a person's ``identifiers`` and stop serving them (see the module docstring);
    counts of what was done."""
    ring = KeyRing(
        kafka.bootstrap,
        kafka.topic(KEYS),
        timeout=kafka.timeout,
        pepper=files.pepper(settings.data_dir),
        client_id="cdp-eraser",
    )
    try:
        destroyed = ring.destroy(sorted(identifiers))
    finally:
        ring.close()
    listed = ErasedCustomers(settings.data_dir).add(sorted(customer_ids), request_id)
    return {"keys_destroyed": destroyed, "customers_unserved": listed, "rebuild_pending": 1}
