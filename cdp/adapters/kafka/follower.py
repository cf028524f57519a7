"""The topics a Kafka-mode API replica follows to answer profile lookups.

``TopicFollower`` follows four topics from their beginning into memory and
keeps following them in a background thread (``cdp.adapters.kafka.lookups``
answers from what it holds):

- ``cdp.profiles`` (compacted, key customer id): the latest snapshot of each
  customer, a ``customers``-table row as JSON (``streams.messages.profile_value``);
  a tombstone (null value) removes the customer (merged away);
- ``cdp.identity.assignments`` (compacted, key ``kind:value``, or
  ``@customer`` for a merged-away customer): identity-graph rows as JSON
  ``{identifier, customer_id, seq, merged_into}``;
- ``cdp.identity.merges``: ``{"kind": "merge", from_customer, into_customer,
  via, reason, message_id, offset, at}`` (rejections are skipped);
- ``cdp.log``: the events themselves, for the log clock and each identifier's
  most recent events (``cdp.adapters.kafka.recent``).

Last value per key wins, as compaction would leave it. ``find(identifier)``
resolves an identifier (or a ``cus_`` id, following merges as
``cdp.read.merges`` does) to what is held of its customer; ``lag_seconds()`` bounds how stale the answer can be: every record
the broker had acknowledged more than ``lag_seconds()`` ago is visible.

Why not faust's table routing (ask the worker owning the partition): it
needs the workers' web ports reachable and up, a rebalance makes lookups
fail or wait, and every lookup is one more network hop; reading the
compacted topics keeps the API independent of the workers, at the price of
memory for every snapshot in each replica and a staleness of one poll
interval (docs/archive.md has the figures).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

import orjson

from cdp.adapters.kafka.consumers import known_ends, open_consumer, poll
from cdp.adapters.kafka.keys import KeyRing
from cdp.adapters.kafka.own_writes import OwnWrites
from cdp.adapters.kafka.recent import RecentEvents
from cdp.adapters.kafka.topics import (
    DEFAULT_PREFIX,
    IDENTITY_ASSIGNMENTS,
    IDENTITY_MERGES,
    KEYS,
    LOG,
    PROFILES,
)
from cdp.errors import LogUnavailableError, NotFoundError
from cdp.read.keys import CUSTOMER_PREFIX, no_profile, not_found
from cdp.read.merges import merge_chain, survivor
from cdp.services.privacy import sealing

log = logging.getLogger(__name__)

MERGE_FIELDS = ("from_customer", "into_customer", "via", "reason", "message_id", "offset", "at")


@dataclass(frozen=True, slots=True)
class ProfileTopics:
    """The four topics the follower reads (the defaults are the decided names)."""

    profiles: str = DEFAULT_PREFIX + PROFILES
    assignments: str = DEFAULT_PREFIX + IDENTITY_ASSIGNMENTS
    merges: str = DEFAULT_PREFIX + IDENTITY_MERGES
    log: str = DEFAULT_PREFIX + LOG
    keys: str = DEFAULT_PREFIX + KEYS
    """The key topic the log's sealed events open with (``cdp.adapters.kafka.keys``)."""

    @classmethod
    def with_prefix(cls, prefix: str, input_prefix: str | None = None) -> ProfileTopics:
        """The topics under another prefix than ``cdp.`` (e.g. ``CDP_KAFKA_PREFIX``); the
        log under ``input_prefix`` when it has one of its own (``CDP_KAFKA_INPUT_PREFIX``)."""
        log_prefix = prefix if input_prefix is None else input_prefix
        return cls(
            prefix + PROFILES,
            prefix + IDENTITY_ASSIGNMENTS,
            prefix + IDENTITY_MERGES,
            log_prefix + LOG,
            log_prefix + KEYS,
        )


@dataclass(frozen=True, slots=True)
class Held:
    """One customer as the follower holds it, read under one lock (``find``)."""

    customer_id: str
    identifiers: list[str]
    #: The latest ``cdp.profiles`` snapshot: a ``customers`` row as JSON values.
    snapshot: dict[str, Any]
    merges: list[Mapping[str, Any]]
    #: The customer's newest events (at most ``RING``), newest first.
    recent_events: list[dict[str, Any]]
    #: The log clock over the log topic read so far; None before any event.
    as_of: datetime | None
    #: The last log-topic offset read (-1: none).
    log_offset: int


class TopicFollower:
    """In-memory copy of the compacted profile and identity topics and of the log
    topic's recent events, kept current by a background thread."""

    def __init__(
        self,
        bootstrap: str,
        topics: ProfileTopics | None = None,
        poll_ms: int = 100,
        rescan_seconds: float = 30.0,
        own_writes: OwnWrites | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.topics = topics or ProfileTopics()
        #: What this process's writer has just written to the log topic and the keys
        #: it holds: used before unsealing and before the key topic.
        self.own_writes = (
            own_writes if own_writes is not None and own_writes.topic == self.topics.log else None
        )
        self.poll_ms = poll_ms
        self.rescan_seconds = rescan_seconds
        self._lock = threading.Lock()
        self._profiles: dict[str, dict[str, Any]] = {}
        self._owner: dict[str, str] = {}  # identifier key → customer id
        self._identifiers: dict[str, set[str]] = {}  # customer id → identifier keys
        self._merged_into: dict[str, str] = {}  # loser → survivor
        self._merges: dict[str, list[dict[str, Any]]] = {}  # survivor → merges into it
        self._events = RecentEvents()
        self._records = 0
        self._caught_up_since: float | None = None
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._ring: KeyRing | None = None  # opened at the first sealed log record

    # ------------------------------------------------------------ lifecycle
    def start(self) -> TopicFollower:
        """Start following the topics in a background thread (from their beginning)."""
        consumer = self._consumer()
        self._thread = threading.Thread(
            target=self._run, args=(consumer,), name="cdp-topic-follower", daemon=True
        )
        self._thread.start()
        return self

    def wait_until_caught_up(self, timeout: float = 60.0, since: float | None = None) -> None:
        """Block until everything the broker acknowledged before ``since`` is visible.

        ``since`` is a ``time.monotonic()`` reading (default: now), so a caller
        that has just published can read its own writes.
        """
        moment = time.monotonic() if since is None else since
        deadline = time.monotonic() + timeout
        while self._caught_up_since is None or self._caught_up_since < moment:
            self._raise_if_failed()
            if time.monotonic() >= deadline:
                raise LogUnavailableError(
                    f"topic follower did not catch up with {self.bootstrap} in {timeout:.0f}s"
                )
            time.sleep(0.02)

    def close(self) -> None:
        """Stop following and release the consumer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def __enter__(self) -> TopicFollower:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --------------------------------------------------------------- answers
    def find(self, identifier: str) -> Held:
        """What is held of whoever ``identifier`` (a parsed key or ``cus_`` id) names,
        read under one lock; ``NotFoundError`` naming it when nobody has it (yet:
        see ``lag_seconds``)."""
        self._raise_if_failed()
        with self._lock:
            if identifier.startswith(CUSTOMER_PREFIX):
                customer = survivor(identifier, self._profiles.__contains__, self._merged_into.get)
            else:
                customer = self._owner.get(identifier)
            if customer is None:
                raise NotFoundError(not_found(identifier))
            snapshot = self._profiles.get(customer)
            if snapshot is None:
                raise NotFoundError(no_profile(customer))
            identifiers = sorted(self._identifiers.get(customer, ()))
            merges = merge_chain(customer, lambda c: self._merges.get(c, ()))
            events = self._events.of(customer, identifiers, self._owner)
            return Held(
                customer, identifiers, snapshot, merges, events, self._events.as_of,
                self._events.last_offset,
            )  # fmt: skip

    def lag_seconds(self) -> float:
        """Upper bound on staleness: records acknowledged before now − lag are visible.

        The reader takes a fence time, then asks the broker for the end of every
        partition; once it has applied everything up to there, all that was
        acknowledged before the fence is visible, and it takes a new fence.
        ``inf`` until the reader has caught up once.
        """
        since = self._caught_up_since
        return float("inf") if since is None else max(0.0, time.monotonic() - since)

    def stats(self) -> dict[str, Any]:
        """Counts of what is held, and the lag."""
        with self._lock:
            return {
                "customers": len(self._profiles),
                "identifiers": len(self._owner),
                "merged_customers": len(self._merged_into),
                "records_read": self._records,
                "lag_seconds": self.lag_seconds(),
            }

    # ---------------------------------------------------------------- inside
    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise LogUnavailableError(
                f"topic follower stopped following {self.bootstrap}: {self._error}"
            )

    # ------------------------------------------------------------- following
    def _consumer(self) -> Any:
        return open_consumer(
            self.bootstrap,
            client_id="cdp-profile-reader",
            unreachable=lambda error: LogUnavailableError(
                f"Kafka broker {self.bootstrap} is unreachable: {error}"
            ),
            # A broker may hold a fetch this long when there is nothing new;
            # it bounds how late an update is seen (default 500 ms).
            fetch_max_wait_ms=self.poll_ms,
        )

    def _assign(self, consumer: Any, assigned: set[Any]) -> set[Any]:
        from kafka import TopicPartition  # noqa: PLC0415

        wanted = {
            TopicPartition(topic, p)
            for topic in (
                self.topics.profiles,
                self.topics.assignments,
                self.topics.merges,
                self.topics.log,
            )
            if topic  # an empty name: not followed (the eraser reads no log)
            for p in consumer.partitions_for_topic(topic) or ()
        }
        if wanted != assigned:
            consumer.assign(sorted(wanted))
            new = sorted(wanted - assigned)
            if new:
                consumer.seek_to_beginning(*new)
        return wanted

    def _run(self, consumer: Any) -> None:
        try:
            assigned = self._assign(consumer, set())
            rescanned = time.monotonic()
            fence, target = 0.0, None
            while not self._stop.is_set():
                batches = poll(consumer, self.poll_ms)  # idle: ~10 fetches/s on any broker
                for tp, messages in batches.items():
                    self._apply(tp.topic, messages)
                now = time.monotonic()
                if target is None:
                    fence, target = now, known_ends(consumer, assigned)
                if all(consumer.position(tp) >= end for tp, end in target.items()):
                    self._caught_up_since, target = fence, None
                if now - rescanned >= self.rescan_seconds or not assigned:
                    assigned, target = self._assign(consumer, assigned), None
                    rescanned = now
        except BaseException as error:  # reported to every caller of find()
            self._error = error
        finally:
            with contextlib.suppress(Exception):
                consumer.close()
            if self._ring is not None:
                self._ring.close()

    def _apply(self, topic: str, messages: list[Any]) -> None:
        if topic == self.topics.log:
            messages = self._opened(messages)  # before the lock: it may ask the broker
        with self._lock:
            self._records += len(messages)
            for message in messages:
                if topic == self.topics.profiles:
                    self._apply_profile(message)
                elif topic == self.topics.assignments:
                    self._apply_assignment(message)
                elif topic == self.topics.log:
                    self._events.add(message)
                elif message.value is not None:
                    self._apply_merge(orjson.loads(message.value))

    def _opened(self, messages: list[Any]) -> list[Any]:
        """The log records with their sealed values opened; the erased ones left out."""
        if not any(sealing.is_sealed(m.value) for m in messages):
            return messages
        own = {} if self.own_writes is None else self.own_writes.take(m.offset for m in messages)
        kids: set[bytes] = set()
        for message in messages:
            if message.offset not in own and sealing.is_sealed(message.value):
                with contextlib.suppress(sealing.SealError):  # said below, per record
                    kids.update(sealing.kids_of(message.value))
        secret_of = self._secret_of
        elsewhere = [kid for kid in kids if secret_of(kid) is None]
        if elsewhere:  # keys of other writers (or destroyed): from the key topic
            if self._ring is None:
                self._ring = KeyRing(self.bootstrap, self.topics.keys, client_id="cdp-profile-keys")
            self._ring.prepare(elsewhere)  # one catch-up for the batch, not one per key
        opened = []
        for message in messages:
            mine = own.get(message.offset)
            if mine is not None:  # this process wrote it: its bytes, not opened again
                opened.append(message._replace(value=mine))
            elif sealing.is_sealed(message.value):
                try:
                    value = sealing.unseal(message.value, secret_of)
                except sealing.SealError as error:
                    log.warning("%s offset %d: %s", self.topics.log, message.offset, error)
                    continue
                if value is None:
                    continue  # the person was erased
                opened.append(message._replace(value=value))
            else:
                opened.append(message)
        return opened

    def _secret_of(self, kid: bytes) -> bytes | None:
        """A key's secret: from this process's writer, else as the key topic had it."""
        shared = self.own_writes
        secret = None if shared is None else shared.known(kid)
        if secret is None and self._ring is not None:
            secret = self._ring.known(kid)
        return secret

    def _apply_profile(self, message: Any) -> None:
        customer = message.key.decode()
        if message.value is None:
            self._profiles.pop(customer, None)
        else:
            self._profiles[customer] = orjson.loads(message.value)

    def _apply_assignment(self, message: Any) -> None:
        record_key = message.key.decode()
        if message.value is None:  # tombstone: the key is gone
            if record_key.startswith("@"):
                self._merged_into.pop(record_key[1:], None)
            else:
                self._unassign(record_key)
            return
        row = orjson.loads(message.value)
        identifier, customer = str(row["identifier"]), str(row["customer_id"])
        if identifier:
            self._unassign(identifier)
            self._owner[identifier] = customer
            self._identifiers.setdefault(customer, set()).add(identifier)
        elif row.get("merged_into"):
            self._merged_into[customer] = str(row["merged_into"])

    def _unassign(self, identifier: str) -> None:
        previous = self._owner.pop(identifier, None)
        if previous is not None:
            held = self._identifiers.get(previous)
            if held is not None:
                held.discard(identifier)
                if not held:
                    del self._identifiers[previous]

    def _apply_merge(self, body: dict[str, Any]) -> None:
        if body.get("kind", "merge") != "merge":
            return
        loser, survivor = str(body["from_customer"]), str(body["into_customer"])
        self._merged_into.setdefault(loser, survivor)
        # The merge's own fields, as every mode lists them (not the topic's ``kind``).
        merge = {name: body.get(name) for name in MERGE_FIELDS}
        self._merges.setdefault(survivor, []).append(merge)
