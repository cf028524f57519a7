"""The reading half of the Kafka ``EventLog``: one consumer on the one-partition log topic.

``KafkaEventLog`` (``cdp.adapters.kafka.log``) reads through a ``LogReader``:
to rebuild its dedup index at open and after a failed append, and to serve
``read``/``high_water``. The reader owns no group and commits nothing; it
seeks to whatever offset it is asked for.

**High water.** ``high_water()`` asks the broker. ``ListOffsets(latest)`` is
wrong on tansu when the last batch holds several records (it returns the
last batch's base offset + 1), so the reader fetches from that offset − 1
and takes the fetch response's high watermark and the offsets it returned:
right on tansu, noida-db and Apache Kafka alike.

Not thread-safe, like the log it serves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from cdp.adapters.kafka import codec as kafka_codec
from cdp.adapters.kafka.consumers import kafka_python, open_consumer
from cdp.errors import ConfigError, LogCorruptError, LogUnavailableError
from cdp.ports.log import StoredEvent
from cdp.services.privacy.sealing import SealError
from schemas import EventValidationError


def unavailable(what: str, error: BaseException) -> LogUnavailableError:
    """The log's error for a failed broker call: what failed, and kafka-python's reason."""
    return LogUnavailableError(f"{what}: {type(error).__name__}: {error}")


class LogReader:
    """Reads the log topic ``topic`` on ``bootstrap`` by offset; see the module docstring."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        timeout: float,
        max_batch_bytes: int,
        client_id: str,
        secret_of: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.secret_of = secret_of
        """A key ring's lookup, to read sealed events (``cdp.adapters.kafka.keys``)."""
        self.topic = topic
        self.timeout = timeout
        self._tp = kafka_python().TopicPartition(topic, 0)
        self._consumer: Any = open_consumer(
            bootstrap,
            client_id=client_id,
            unreachable=lambda error: unavailable(
                f"Kafka broker {bootstrap} is unreachable", error
            ),
            fetch_max_wait_ms=100,
            fetch_max_bytes=64 * 1024 * 1024,
            # A whole append is one batch of up to max_batch_bytes: it must fit a fetch.
            max_partition_fetch_bytes=2 * max_batch_bytes,
            request_timeout_ms=int(timeout * 1000) + 5000,
            bootstrap_timeout_ms=int(timeout * 1000),
        )

    def check_topic(self) -> None:
        """Fail unless the topic exists with exactly one partition; then read it."""
        kafka = kafka_python()
        try:
            partitions = self._consumer.partitions_for_topic(self.topic)
        except kafka.errors.KafkaError as error:
            raise unavailable(f"cannot read metadata of {self.topic}", error) from None
        if not partitions:
            raise ConfigError(
                f"topic {self.topic} does not exist on {self.bootstrap}: run `cdp kafka init`"
            )
        if len(partitions) != 1:
            raise ConfigError(
                f"topic {self.topic} has {len(partitions)} partitions; the log must have "
                "exactly 1 (it is the total order)"
            )
        self._consumer.assign([self._tp])

    def low_water(self) -> int:
        """The first offset still stored (after retention, deletion or compaction)."""
        kafka = kafka_python()
        try:
            return int(self._consumer.beginning_offsets([self._tp])[self._tp])
        except kafka.errors.KafkaError as error:
            raise unavailable(f"cannot read the start of {self.topic}", error) from None

    def high_water(self) -> int:
        """One past the last offset stored, asked of the broker (see the module docstring)."""
        kafka = kafka_python()
        consumer, tp = self._consumer, self._tp
        try:
            latest = consumer.end_offsets([tp])[tp]
            if latest == 0:
                return 0
            first = consumer.beginning_offsets([tp])[tp]
            if latest <= first:
                return int(latest)
            consumer.seek(tp, latest - 1)
            end = latest
            deadline = time.monotonic() + self.timeout
            while True:
                batch = consumer.poll(timeout_ms=200, max_records=100_000).get(tp, [])
                if batch:
                    end = max(end, batch[-1].offset + 1, consumer.highwater(tp) or 0)
                    return int(end)
                if time.monotonic() > deadline:
                    raise LogUnavailableError(
                        f"no answer from {self.bootstrap} reading {self.topic} at {latest - 1}"
                    )
        except kafka.errors.KafkaError as error:
            raise unavailable(f"cannot read the end of {self.topic}", error) from None

    def records(self, start: int, stop: int, max_records: int) -> Iterator[list[Any]]:
        """Raw consumer records with ``start <= offset < stop``, in chunks."""
        kafka = kafka_python()
        consumer, tp = self._consumer, self._tp
        if start >= stop:
            return
        try:
            consumer.seek(tp, start)
            position = start
            deadline = time.monotonic() + self.timeout
            while position < stop:
                chunk = consumer.poll(timeout_ms=200, max_records=max_records).get(tp, [])
                kept = [m for m in chunk if position <= m.offset < stop]
                if not kept:
                    if time.monotonic() > deadline:
                        raise LogUnavailableError(
                            f"{self.topic} on {self.bootstrap}: nothing read at offset "
                            f"{position} within {self.timeout}s (high water {stop})"
                        )
                    continue
                deadline = time.monotonic() + self.timeout
                position = kept[-1].offset + 1
                yield kept
        except kafka.errors.KafkaError as error:
            raise unavailable(f"cannot read {self.topic}", error) from None

    def events(self, start: int, stop: int | None, batch_size: int) -> Iterator[list[StoredEvent]]:
        """Events with ``start <= offset < stop`` (``None``: the high water) in batches."""
        end = self.high_water() if stop is None else min(stop, self.high_water())
        pending: list[StoredEvent] = []
        for chunk in self.records(max(start, 0), end, batch_size):
            for message in chunk:
                try:
                    event = kafka_codec.decode_event(message.value, self.secret_of)
                except (EventValidationError, SealError) as error:
                    raise LogCorruptError(
                        f"{self.topic} record at offset {message.offset}: {error}"
                    ) from None
                if event is None:
                    continue  # sealed under a destroyed key: the person was erased
                pending.append(StoredEvent(message.offset, event))
                if len(pending) == batch_size:
                    yield pending
                    pending = []
        if pending:
            yield pending

    def close(self) -> None:
        """Close the consumer."""
        self._consumer.close()
