"""The faust agents. Wiring only: decode, look up state, call the fold, write the table, emit.

- ``identity`` reads ``cdp.log`` (one partition) in batches and hands them to
  ``streams.sequencer.Sequencer``; it sends the outputs, waits until the
  broker has them, then writes the journal and the changed rows
  (``Sequencer`` explains why that order is exact after a crash).
- ``profiles`` reads ``cdp.events.by-customer`` and hands each message to
  a ``streams.profiles.Batch``; it sends what the batch says, writes each
  customer's one table value, then each partition's next offset.

Both fold a partition's records only in unbroken offset order and seek back
over a gap (``streams.gaps`` says why faust's consumer makes that necessary).

The folds themselves are ``projections`` via ``cdp.runtime.customer`` (the embedded
runtime's own code).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from datetime import UTC, datetime
from typing import Any

import faust.streams as faust_streams

from cdp.adapters.kafka import codec as kafka_codec
from cdp.errors import MessageError
from streams import messages
from streams.app import Wiring
from streams.gaps import Cursors, Seeks
from streams.profiles import Batch
from streams.sequencer import LogRecord, Sequencer

log = logging.getLogger(__name__)

BATCH_WITHIN = 0.05
"""Seconds an agent waits to fill a batch."""


def _log_record(event: Any) -> LogRecord:
    message = event.message
    return LogRecord(
        offset=message.offset,
        value=message.value,
        timestamp=datetime.fromtimestamp(message.timestamp, UTC),
        source=kafka_codec.source_of(message.headers),
    )


def _make_current(event: Any) -> None:
    """Make ``event`` faust's current event in this task.

    Table writes find their changelog partition, and with RocksDB reads and
    writes find their database (one per partition), through the current
    event, a context variable that ``take_events()`` sets only in its own
    background task. ``Stream._set_current_event`` must not be
    used instead: it also changes what ``take_events`` records for the next
    event, which then replaces the first event of the next batch.
    """
    faust_streams._current_event.set(weakref.ref(event))


def register(wiring: Wiring) -> None:
    """Attach both agents to ``wiring.app``."""
    app, config = wiring.app, wiring.config
    rules = config.runtime
    log_topic = config.topic("log")
    targets = {
        "by_customer": wiring.by_customer,
        "assignments": wiring.assignments,
        "merges": wiring.merges,
        "deadletters": wiring.deadletters,
    }
    current: dict[str, Sequencer] = {}
    cursors = Cursors()  # by-customer partitions
    seeks = Seeks()

    async def _forget(sender: Any, revoked: Any, **kwargs: Any) -> None:
        # Whoever gets the partitions next restores from the table.
        current.clear()
        cursors.forget(list(revoked))
        seeks.forget(list(revoked))

    app.on_partitions_revoked.connect(_forget)  # type: ignore[arg-type]  # faust's stub is narrower

    async def seek_back(tp: Any, offset: int) -> None:
        log.warning("%s: records from offset %d were skipped; reading them again", tp, offset)
        await app.consumer.seek_wait({tp: offset})

    @app.timer(interval=1.0)  # type: ignore[untyped-decorator]  # faust leaves it untyped
    async def repeat_seeks() -> None:
        for tp, offset in seeks.due():
            await seek_back(tp, offset)

    async def earliest(tp: Any) -> int:
        return int((await app.consumer.earliest_offsets(tp)).get(tp, 0) or 0)

    async def retained_from(tp: Any, want: int) -> int | None:
        """The partition's earliest offset if the records from ``want`` up to it are gone
        (retention, not a skip: nothing will bring them back); else None."""
        first = await earliest(tp)
        if first <= want:
            return None
        log.error(
            "%s: offsets %d..%d are gone (retention): going on from %d", tp, want, first - 1, first
        )
        return first

    @app.agent(wiring.log, name="identity")
    async def identity_agent(stream: Any) -> None:
        async for events in stream.take_events(config.log_batch, within=BATCH_WITHIN):
            sequencer = current.get("log")
            if sequencer is None:
                sequencer = Sequencer.restore(wiring.identity.items(), rules.identity, log_topic)
                current["log"] = sequencer
                log.info("identity state restored: next log offset %d", sequencer.next_offset)
            records = [_log_record(e) for e in events]
            tp, before = events[0].message.tp, sequencer.next_offset
            step = sequencer.process(records)
            if step.gap is not None:
                want = step.gap[0]
                first = await retained_from(tp, want)
                if first is not None:  # then nothing was folded yet: redo the batch from there
                    sequencer.skip_to(first)
                    step = sequencer.process(records)
                elif seeks.gap(tp, want):
                    await seek_back(tp, want)
            if sequencer.next_offset > before:
                seeks.arrived(tp, sequencer.next_offset - 1)
            # Wait until the broker has every output before the journal is written.
            sent = [
                await targets[out.target].send(key=out.key, value=out.value) for out in step.outputs
            ]
            if sent:
                await asyncio.gather(*sent)
            _make_current(events[-1])
            for key, value in step.writes:
                wiring.identity[key] = value

    @app.agent(wiring.by_customer, name="profiles")
    async def profiles_agent(stream: Any) -> None:
        async for events in stream.take_events(config.customer_batch, within=BATCH_WITHIN):
            batch = Batch(rules.scoring, wiring.customers.get)
            source_of_key: dict[str, Any] = {}
            advanced: dict[Any, Any] = {}  # partition -> its last event
            cursors.new_batch()
            for event in events:
                tp, offset = event.message.tp, event.message.offset
                # Table reads look in the current event's partition (RocksDB keeps one
                # database per partition): this record's, where its key's value lives.
                _make_current(event)
                if not cursors.known(tp):
                    stored = wiring.customers.get(partition_key(tp.partition))
                    cursors.start(tp, int(stored) if stored is not None else await earliest(tp))
                if offset > cursors.next[tp] and tp not in cursors.gapped:
                    first = await retained_from(tp, cursors.next[tp])
                    if first is not None:
                        cursors.start(tp, first)
                if not cursors.admit(tp, offset):
                    continue
                advanced[tp] = event
                seeks.arrived(tp, offset)
                try:
                    message = messages.decode_message(event.message.value)
                except MessageError as error:
                    await _dead_letter(wiring, event, str(error))
                    continue
                batch.apply(message)
                source_of_key[message.customer] = event
            result = batch.finish()
            for out in result.by_customer:
                await wiring.by_customer.send(key=out.customer.encode(), value=messages.encode(out))
            for customer_id, snapshot in result.snapshots:
                await wiring.profiles.send(key=customer_id.encode(), value=snapshot)
            for key, value in result.writes:
                _make_current(source_of_key[key])  # the changelog partition of the key
                wiring.customers[key] = value
            for tp, want in cursors.gapped.items():
                if seeks.gap(tp, want):
                    await seek_back(tp, want)
            for tp, event in advanced.items():  # after the values: a prefix never claims more
                _make_current(event)
                wiring.customers[partition_key(tp.partition)] = cursors.next[tp]


def partition_key(partition: int) -> str:
    """The ``customers`` table key of a by-customer partition's next offset (not a customer id)."""
    return f"~next-offset:{partition}"


async def _dead_letter(wiring: Wiring, event: Any, reason: str) -> None:
    message = event.message
    letter = kafka_codec.DeadLetterMessage(
        received_at=datetime.fromtimestamp(message.timestamp, UTC),
        source=None,
        origin=f"{message.topic}[{message.partition}]@{message.offset}",
        reason=reason,
        body=message.value or b"",
    )
    encoded = kafka_codec.encode_dead_letter(letter)
    await wiring.deadletters.send(key=encoded.key, value=encoded.value)
