"""The Kafka ``EventLog``: the one-partition log topic (``cdp.log``) as the source of truth.

Offsets are the topic's own offsets: the topic has one partition, it is
written only through this adapter (the collector, ``cdp ingest --kafka``),
and without transactions a Kafka partition numbers its records densely in
the order the broker appended them. ``append`` returns the offsets the broker
acknowledged, so they are right even with several writers.

**Durability.** The producer uses ``acks=all`` and is idempotent (both test
brokers accept ``InitProducerId``; production brokers do too): ``append``
returns only after the broker acknowledged every record, and the producer's
own retries never store a record twice.

**Atomicity.** An append is sent as ONE producer batch when its records fit
in ``max_batch_bytes`` (default 8 MB; the log topic is created with
``max.message.bytes`` to match): ``linger_ms`` is long and ``batch_size`` is
that limit, so the producer holds the records until ``append`` flushes them
together. A broker appends a batch as a unit, so a reader sees all of it or
none of it. What is *not* atomic:

- an append larger than ``max_batch_bytes`` goes out as several batches; a
  failure can leave a prefix of whole batches stored;
- a failure after the broker wrote a batch but before its acknowledgement
  arrived (timeout, connection lost) leaves the batch stored although
  ``append`` raised (``LogUnavailableError``).

If ``append`` fails before a batch left the process (an error while handing
records over, a bug, an interrupt), the unsent batch is discarded: it can
never reach the broker later. In every failure case the adapter marks itself
*stale*; the next append first reads the topic from its last known end and
indexes whatever did land. So a **retry after a failure is exactly-once in
the log**: records that landed are reported as duplicates with their
offsets, the rest are stored once.

**Dedup.** Like the DuckDB log: by ``messageId``, keeping the first copy. The
index (``blake2b-128(messageId) → offset``, about 130 bytes per event) is
rebuilt at open by reading the whole topic (the retained part: if retention
has shortened the log, ids older than its start are no longer known). It
covers this process's appends; two API replicas appending the same
``messageId`` at the same moment can both store it, which is why the
distributed worker ALSO dedups by ``messageId`` while reading the log in its
total order: one customer-visible copy either way.

**Reading.** ``read`` and ``high_water`` (which asks the broker, with a fix
for tansu's end offsets) go through a ``LogReader``
(``cdp.adapters.kafka.log_reader``), one consumer without a group; this module
holds the writing half: the producer, the dedup index and dead letters.

Not thread-safe: one thread uses a log at a time (the collector's writer
thread), as with the DuckDB log.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from cdp.adapters.kafka import codec as kafka_codec
from cdp.adapters.kafka.codec import DeadLetterMessage, Message, id_digest
from cdp.adapters.kafka.consumers import CLIENT_DEFAULTS, kafka_python
from cdp.adapters.kafka.keys import KeyRing
from cdp.adapters.kafka.log_reader import LogReader, unavailable
from cdp.adapters.kafka.own_writes import OwnWrites
from cdp.adapters.kafka.topics import (
    DEADLETTERS,
    KEYS,
    LOG,
    LOG_MAX_MESSAGE_BYTES,
    KafkaSettings,
    keys_topic_of,
)
from cdp.errors import ConfigError, LogUnavailableError
from cdp.ports.log import AppendResult, Record, StoredEvent

log = logging.getLogger(__name__)

RECORD_OVERHEAD = 64  # bytes a record may add to a batch beyond key/value/headers
BATCH_OVERHEAD = 128
ProducerFactory = Callable[..., Any]


class KafkaEventLog:
    """``EventLog`` adapter over the log topic; see the module docstring."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        dead_letter_topic: str | None = None,
        timeout: float = 30.0,
        max_batch_bytes: int = LOG_MAX_MESSAGE_BYTES,
        producer_factory: ProducerFactory | None = None,
        client_id: str = "cdp-log",
        keys: KeyRing | None = None,
        own_writes: OwnWrites | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.keys = keys
        """The key ring events are sealed under (``None``: stored in the clear)."""
        self.own_writes = own_writes
        """Told each event stored, for a reader of this topic in this process."""
        if own_writes is not None:
            own_writes.hold(keys)
        self._read_keys: KeyRing | None = None
        self.topic = topic
        self.dead_letter_topic = dead_letter_topic
        self.timeout = timeout
        self.max_batch_bytes = max_batch_bytes
        self._client_id = client_id
        self._producer_factory: ProducerFactory = producer_factory or kafka_python().KafkaProducer
        self._producer: Any = None
        self._index: dict[bytes, int] = {}
        self._indexed_to = 0  # offsets below this are in the index
        self._stale = False
        self.last_error: str | None = None
        self._reader: LogReader | None = LogReader(
            bootstrap,
            topic,
            timeout=timeout,
            max_batch_bytes=max_batch_bytes,
            client_id=f"{client_id}-reader",
            secret_of=self._secret_of,
        )
        try:
            self._reader.check_topic()
            self._catch_up()
            self._producer = self._new_producer()
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(
        cls, settings: KafkaSettings, pepper: bytes | None = None, **options: Any
    ) -> KafkaEventLog:
        """The log topic of ``settings`` (``cdp.log``), dead letters to ``cdp.services.deadletters``.

        With the installation's ``pepper`` (``cdp.services.privacy.files.pepper``),
        events are sealed under their identifiers' keys in ``cdp.keys``."""
        options.setdefault("timeout", settings.timeout)
        if pepper is not None and "keys" not in options:
            options["keys"] = KeyRing(
                settings.bootstrap, settings.topic(KEYS), timeout=settings.timeout, pepper=pepper
            )
        try:
            return cls(
                settings.bootstrap,
                settings.topic(LOG),
                dead_letter_topic=settings.topic(DEADLETTERS),
                **options,
            )
        except BaseException:
            if options.get("keys") is not None:
                options["keys"].close()
            raise

    def _secret_of(self, kid: bytes) -> bytes | None:
        """Key lookup for reading sealed records: the writer's ring, else a read-only
        ring of the key topic beside the log, opened at the first sealed record."""
        ring = self.keys or self._read_keys
        if ring is None:
            ring = self._read_keys = KeyRing(
                self.bootstrap,
                keys_topic_of(self.topic),
                timeout=self.timeout,
                client_id="cdp-log-keys",
            )
        return ring.secret_of(kid)

    # ---------------------------------------------------------------- clients
    def _new_producer(self) -> Any:
        kafka = kafka_python()
        timeout_ms = int(self.timeout * 1000)
        try:
            return self._producer_factory(
                bootstrap_servers=self.bootstrap,
                client_id=f"{self._client_id}-writer",
                acks="all",
                enable_idempotence=True,
                # One append = one batch: hold records until append flushes them.
                linger_ms=timeout_ms,
                batch_size=self.max_batch_bytes,
                max_request_size=self.max_batch_bytes + BATCH_OVERHEAD,
                request_timeout_ms=timeout_ms,
                delivery_timeout_ms=2 * timeout_ms + 1000,
                max_block_ms=timeout_ms,
                bootstrap_timeout_ms=timeout_ms,
                allow_auto_create_topics=False,
                **CLIENT_DEFAULTS,
            )
        except kafka.errors.KafkaError as error:
            raise unavailable(f"Kafka broker {self.bootstrap} is unreachable", error) from None

    # ------------------------------------------------------------------ reads
    @property
    def reader(self) -> LogReader:
        """The log's reading half (``LogUnavailableError`` once the log is closed)."""
        if self._reader is None:
            raise LogUnavailableError(f"the log of {self.topic} is closed")
        return self._reader

    def high_water(self) -> int:
        """One past the last offset stored, asked of the broker (see ``LogReader``)."""
        return self.reader.high_water()

    def read(
        self, start: int = 0, stop: int | None = None, batch_size: int = 10_000
    ) -> Iterator[list[StoredEvent]]:
        """Events with ``start <= offset < stop`` in offset order, in batches."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, not {batch_size}")
        yield from self.reader.events(start, stop, batch_size)

    def _catch_up(self) -> None:
        """Index every record from ``_indexed_to`` to the end of the topic."""
        end = self.high_water()
        for chunk in self.reader.records(self._indexed_to, end, 100_000):
            for message in chunk:
                try:
                    mid = kafka_codec.message_id_of(message.value, message.headers, message.key)
                except ValueError as error:  # read() will say so; the index skips it
                    log.warning("%s offset %d: %s", self.topic, message.offset, error)
                    continue
                self._index.setdefault(id_digest(mid), message.offset)
        self._indexed_to = max(self._indexed_to, end)
        self._stale = False

    # ----------------------------------------------------------------- writes
    def append(self, records: Sequence[Record]) -> AppendResult:
        """Store the new records (one producer batch when they fit); see the module docstring."""
        if not records:
            return AppendResult((), ())
        if self._stale:
            self._catch_up()
        known_offsets: list[int] = []
        new: list[bool] = []
        first_in_batch: dict[str, int] = {}  # messageId → position in ``fresh``
        fresh: list[Record] = []
        refs: list[int] = []  # for each record: -1 known offset, else index into fresh
        for record in records:
            mid = record.message_id
            known = self._index.get(id_digest(mid))
            if known is not None:
                known_offsets.append(known)
                new.append(False)
                refs.append(-1)
            elif mid in first_in_batch:
                known_offsets.append(-1)
                new.append(False)
                refs.append(first_in_batch[mid])
            else:
                first_in_batch[mid] = len(fresh)
                known_offsets.append(-1)
                new.append(True)
                refs.append(len(fresh))
                fresh.append(record)

        stored = self._produce(self._encode(fresh)) if fresh else []
        if stored and self.own_writes is not None:
            self.own_writes.wrote(stored, [record.data for record in fresh])
        for record, offset in zip(fresh, stored, strict=True):
            self._index[id_digest(record.message_id)] = offset
        if stored:
            self._indexed_to = max(self._indexed_to, stored[-1] + 1)
        final = tuple(o if r < 0 else stored[r] for o, r in zip(known_offsets, refs, strict=True))
        return AppendResult(final, tuple(new))

    def _encode(self, records: list[Record]) -> list[Message]:
        return encode_records(records, self.keys)

    def _produce(self, messages: list[Message]) -> list[int]:
        """Send ``messages`` to the log topic and return their acknowledged offsets."""
        kafka = kafka_python()
        for message in messages:
            if message.size + RECORD_OVERHEAD + BATCH_OVERHEAD > self.max_batch_bytes:
                raise LogUnavailableError(
                    f"a {message.size}-byte record does not fit a {self.max_batch_bytes}-byte batch"
                )
        try:
            if self._producer is None:
                self._producer = self._new_producer()
            producer = self._producer
            futures = [
                producer.send(self.topic, value=m.value, key=m.key, headers=m.headers, partition=0)
                for m in messages
            ]
            producer.flush(timeout=self.timeout)
            offsets = [int(f.get(timeout=0).offset) for f in futures]
        except BaseException as error:
            self._abandon()
            self.last_error = f"{type(error).__name__}: {error}"
            if isinstance(error, kafka.errors.KafkaError):
                raise unavailable(
                    f"append of {len(messages)} records to {self.topic} on {self.bootstrap} "
                    "failed (retry: records that landed are kept once)",
                    error,
                ) from None
            raise
        self.last_error = None
        return offsets

    def _abandon(self) -> None:
        """After a failed append: drop the producer and every record it has not sent,
        and re-read the topic's end before the next append (some batch may have landed)."""
        self._stale = True
        producer, self._producer = self._producer, None
        if producer is not None:
            discard(producer)

    def add_dead_letter(self, letter: DeadLetterMessage) -> None:
        """Store a rejected input on the dead-letter topic (acknowledged before returning)."""
        if self.dead_letter_topic is None:
            raise ConfigError("this Kafka log has no dead-letter topic")
        kafka = kafka_python()
        message = kafka_codec.encode_dead_letter(letter)
        try:
            if self._producer is None:
                self._producer = self._new_producer()
            future = self._producer.send(
                self.dead_letter_topic, value=message.value, key=message.key
            )
            self._producer.flush(timeout=self.timeout)
            future.get(timeout=0)
        except kafka.errors.KafkaError as error:
            self._abandon()
            raise unavailable(
                f"cannot store a dead letter on {self.dead_letter_topic}", error
            ) from None

    # ---------------------------------------------------------------- control
    def close(self) -> None:
        """Flush nothing (every append already did) and close both clients."""
        producer, self._producer = self._producer, None
        if producer is not None:
            producer.close(timeout=self.timeout)
        reader, self._reader = getattr(self, "_reader", None), None
        if reader is not None:
            reader.close()
        for ring in (getattr(self, "keys", None), getattr(self, "_read_keys", None)):
            if ring is not None:
                ring.close()
        self.keys = self._read_keys = None


def encode_records(records: Sequence[Record], keys: KeyRing | None) -> list[Message]:
    """The log-topic records of ``records``: sealed under their identifiers' keys
    when ``keys`` is a writer's ring (new keys stored, acknowledged, first), else
    in the clear."""
    if keys is None:
        return [kafka_codec.encode(r) for r in records]
    sealers = keys.sealers_of([r.event for r in records])
    return [kafka_codec.encode(r, s) for r, s in zip(records, sealers, strict=True)]


def broker_reachable(bootstrap: str, timeout: float = 1.0) -> bool:
    """Whether a broker of the ``HOST:PORT[,HOST:PORT...]`` list accepts a TCP
    connection (cheap enough for every /health). One is enough: a client
    bootstraps from any of them. ``[::1]:9092`` is an IPv6 address."""
    for address in filter(None, (part.strip() for part in bootstrap.split(","))):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                return True
        except (OSError, ValueError):
            continue
    return False


def discard(producer: Any) -> None:
    """Close a producer so that no record it still holds can reach the broker later.

    kafka-python has no public "abort" outside transactions (which tansu lacks),
    and ``close(0)`` flushes first, so the unsent batches are aborted through
    the accumulator, then the sender thread is stopped without draining."""
    kafka = kafka_python()
    error = kafka.errors.KafkaError("append abandoned; batch discarded")
    accumulator = getattr(producer, "_accumulator", None)
    if accumulator is not None:
        accumulator.abort_undrained_batches(error)
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(5)
    try:
        producer.close(timeout=0)
    except kafka.errors.KafkaError:
        log.warning("producer did not close cleanly after an abandoned append")
