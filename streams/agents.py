"""The faust agents. Wiring only: decode, look up state, call the fold, write the table, emit.

- ``identity`` reads ``cdp.log`` (one partition) in batches and hands them to
  ``streams.sequencer.Sequencer``; it sends the outputs (the by-customer ones
  as one bundle per partition) and folds the next batch while the broker
  takes them: a batch's journal is written once the broker has all of its
  outputs, before the next batch's (``Sequencer`` explains why that order is
  exact after a crash). One batch is in flight at a time.
- ``profiles`` reads ``cdp.events.by-customer`` bundles and hands each message
  to a ``streams.profiles.Batch``; it sends what the batch says, writes each
  customer's one table value, then each partition's next offset.

Both fold a partition's records only in unbroken offset order and seek back
over a gap (``streams.gaps`` says why faust's consumer makes that necessary).

The folds themselves are ``projections`` via ``cdp.runtime.customer`` (the embedded
runtime's own code).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import faust.streams as faust_streams

from cdp.adapters.kafka import codec as kafka_codec
from cdp.adapters.kafka import topics as kafka_topics
from cdp.adapters.kafka.keys import KeyRing
from cdp.errors import MessageError
from cdp.services.privacy import sealing
from streams import messages
from streams.app import Wiring
from streams.gaps import Cursors, Seeks
from streams.profiles import Batch, States
from streams.sequencer import LogRecord, Output, Sequencer

log = logging.getLogger(__name__)

BATCH_WITHIN = 0.05
"""Seconds the identity agent waits to fill a batch."""

PROFILE_WITHIN = 0.2
"""Seconds the profile agent waits to fill a batch. Its costs are per customer per
batch (a table write and a snapshot), so it gathers longer than the identity agent:
a customer's several events of a catch-up make one write, for 0.2 s of freshness."""

SETTLE_EVERY = 0.5
"""Seconds between checks that write an idle identity agent's last journal."""


@dataclass(slots=True)
class _InFlight:
    """An identity batch whose outputs are on their way: its journal is written after them."""

    sent: list[Any]
    writes: list[tuple[str, Any]]
    event: Any


def _log_record(event: Any, ring: KeyRing | None) -> LogRecord:
    """The log record of a faust event, unsealed with ``ring`` (caught up already)."""
    message = event.message
    value = message.value
    erased = False
    if sealing.is_sealed(value) and ring is not None:
        try:
            value = sealing.unseal(value, ring.known)
            erased = value is None
        except sealing.SealError:
            pass  # the sequencer dead-letters the bytes as they are
    return LogRecord(
        offset=message.offset,
        value=value,
        timestamp=datetime.fromtimestamp(message.timestamp, UTC),
        source=kafka_codec.source_of(message.headers),
        erased=erased,
    )


def _kids(events: Any) -> set[bytes]:
    kids: set[bytes] = set()
    for event in events:
        value = event.message.value
        if sealing.is_sealed(value):
            with contextlib.suppress(sealing.SealError):
                kids.update(sealing.kids_of(value))
    return kids


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
    partitions = config.kafka.partitions
    producer = wiring.outputs
    targets = {
        "by_customer": config.topic(kafka_topics.EVENTS_BY_CUSTOMER),
        "assignments": config.topic(kafka_topics.IDENTITY_ASSIGNMENTS),
        "merges": config.topic(kafka_topics.IDENTITY_MERGES),
        "deadletters": config.topic(kafka_topics.DEADLETTERS),
    }
    profiles_topic = config.topic(kafka_topics.PROFILES)
    current: dict[str, Sequencer] = {}
    rings: list[KeyRing] = []  # the key ring, opened at the first sealed record
    in_flight: list[_InFlight] = []  # the identity batch whose journal waits (at most one)
    cursors = Cursors()  # by-customer partitions
    states = States()  # decoded customer states, by the table value they came from
    seeks = Seeks()

    async def _forget(sender: Any, revoked: Any, **kwargs: Any) -> None:
        # Whoever gets the partitions next restores from the table (and redoes
        # a batch whose journal was still in flight).
        current.clear()
        in_flight.clear()
        cursors.forget(list(revoked))
        states.clear()
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

    journal_lock = asyncio.Lock()

    async def settle() -> None:
        """Write the in-flight batch's journal once the broker has all its outputs."""
        async with journal_lock:  # journals in batch order, whoever calls
            if not in_flight:
                return
            batch = in_flight.pop()
            if batch.sent:
                await asyncio.gather(*batch.sent)
            _make_current(batch.event)
            for key, value in batch.writes:
                wiring.identity[key] = value

    @app.timer(interval=SETTLE_EVERY)  # type: ignore[untyped-decorator]  # faust leaves it untyped
    async def settle_idle() -> None:
        # No next batch may come for a while: do not leave the journal unwritten.
        if in_flight and all(f.done() for f in in_flight[0].sent):
            await settle()

    async def send_outputs(outputs: list[Output]) -> list[Any]:
        sent = []
        routed = [(o.key.decode(), o.value) for o in outputs if o.target == "by_customer"]
        for p, record in messages.bundles(routed, partitions).items():
            sent.append(await producer.send(targets["by_customer"], None, record, p))
        for out in outputs:
            if out.target != "by_customer":
                sent.append(await producer.send(targets[out.target], out.key, out.value))
        return sent

    @app.agent(wiring.log, name="identity")
    async def identity_agent(stream: Any) -> None:
        async for events in stream.take_events(config.log_batch, within=BATCH_WITHIN):
            sequencer = current.get("log")
            if sequencer is None:
                await settle()  # a journal still in flight comes before the restore
                sequencer = Sequencer.restore(wiring.identity.items(), rules.identity, log_topic)
                current["log"] = sequencer
                log.info("identity state restored: next log offset %d", sequencer.next_offset)
            kids = _kids(events)
            if kids and not rings:
                rings.append(
                    await asyncio.to_thread(
                        KeyRing,
                        config.kafka.bootstrap,
                        config.topic(kafka_topics.KEYS),
                        timeout=config.kafka.timeout,
                    )
                )
            ring = rings[0] if rings else None
            if ring is not None and ring.unread(kids):
                await asyncio.to_thread(ring.catch_up)  # keys are stored before their events
                ring.settle(kids)
            records = [_log_record(e, ring) for e in events]
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
            sent = await send_outputs(step.outputs)
            # The previous batch's journal, once the broker has its outputs; this
            # batch's outputs travel meanwhile and its journal waits for them.
            await settle()
            if step.writes:
                in_flight.append(_InFlight(sent, step.writes, events[-1]))

    @app.agent(wiring.by_customer, name="profiles")
    async def profiles_agent(stream: Any) -> None:
        async for events in stream.take_events(config.customer_batch, within=PROFILE_WITHIN):
            batch = Batch(rules.scoring, wiring.customers.get, states)
            source_of_key: dict[str, Any] = {}
            letters: list[Any] = []
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
                    received = messages.decode_record(event.message.value)
                except MessageError as error:
                    letters.append(await _dead_letter(wiring, targets, event, str(error)))
                    continue
                for message in received:
                    batch.apply(message)
                    source_of_key[message.customer] = event
            result = batch.finish()
            forwarded = [(m.customer, messages.encode(m)) for m in result.by_customer]
            sent = [
                await producer.send(targets["by_customer"], None, record, p)
                for p, record in messages.bundles(forwarded, partitions).items()
            ]
            for customer_id, snapshot in result.snapshots:
                sent.append(await producer.send(profiles_topic, customer_id.encode(), snapshot))
            sent.extend(letters)
            if sent:  # the broker has them before the writes that say they were sent
                await asyncio.gather(*sent)
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


async def _dead_letter(
    wiring: Wiring, targets: dict[str, str], event: Any, reason: str
) -> asyncio.Future[Any]:
    message = event.message
    letter = kafka_codec.DeadLetterMessage(
        received_at=datetime.fromtimestamp(message.timestamp, UTC),
        source=None,
        origin=f"{message.topic}[{message.partition}]@{message.offset}",
        reason=reason,
        body=message.value or b"",
    )
    encoded = kafka_codec.encode_dead_letter(letter)
    return await wiring.outputs.send(targets["deadletters"], encoded.key, encoded.value)
