"""The producer of the agents' outputs: everything they send except table changelogs.

faust has one producer, and its batch size is the broker profile's: one
record per batch on tansu (``streams.app``), because tansu reports a wrong
end offset for a partition whose last batch holds several records and
faust's table recovery, which reads changelogs up to that end, would then
lose updates. Only changelogs are read that way. The output topics
(by-customer bundles, assignments, merges, profiles, dead letters) are read
by the profile agent and by ``cdp.adapters.kafka.consumers.known_ends``
readers, which take the high watermark of their own fetches and so see whole
batches. With one record per batch the producer carries at most one record
per partition per broker round trip (aiokafka keeps one request in flight per
broker), which capped a worker at a few hundred events/s; this producer
batches (``BATCH_BYTES``, ``LINGER``) on every broker.

faust flushes only its own producer before it commits offsets, so the agents
await what they send here before the table writes that record it as done
(``streams.agents``); a stopped worker flushes this producer last, after
the agents (it is the app's first dependency, and mode stops them in reverse).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, Final

from aiokafka import AIOKafkaProducer  # type: ignore[import-untyped]  # no type information shipped
from mode import Service

BATCH_BYTES: Final = 512 * 1024
"""Largest produce batch per partition (under the broker's default 1 MB message limit)."""

LINGER_MS: Final = 5
"""Milliseconds a batch waits to fill: at most this much added latency per hop."""


class Outputs(Service):
    """An aiokafka producer, started and stopped with the faust app."""

    def __init__(self, bootstrap: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bootstrap = bootstrap
        self._producer: AIOKafkaProducer | None = None
        self._ready = asyncio.Event()
        #: Records queued per topic since the start (``streams.metrics`` reads it).
        self.sent: Counter[str] = Counter()

    async def on_start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            linger_ms=LINGER_MS,
            max_batch_size=BATCH_BYTES,
            max_request_size=4 * BATCH_BYTES,
        )
        await self._producer.start()
        self._ready.set()

    async def on_stop(self) -> None:
        if self._producer is not None:
            await self._producer.flush()
            await self._producer.stop()
            self._producer = None
            self._ready.clear()

    async def send(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None = None
    ) -> asyncio.Future[Any]:
        """Queue one record (``value`` None: a tombstone); the future is done when the broker has it."""
        if self._producer is None:  # an agent may run before the app started this
            await self._ready.wait()
        assert self._producer is not None
        self.sent[topic] += 1
        future: asyncio.Future[Any] = await self._producer.send(
            topic, value=value, key=key, partition=partition
        )
        return future
