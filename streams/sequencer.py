"""The identity agent's state and step, free of faust (so it is testable alone).

The identity agent reads ``cdp.log`` (one partition: the total order) and,
for every record, does what the embedded runtime does with a stored event:
skip a ``messageId`` seen before (the first copy wins), run
``projections.identity.apply`` and route the event to its customer. This
module holds that state (``IdentityGraph``, the seen ids, the next offset)
and turns a batch of records into the messages to send and the table writes
to make.

Persistence (a faust table with a changelog, see ``streams.agents``) is one
*journal* record per batch, under its own key ``j:<next offset>``: the next
log offset and every graph row and seen id the batch changed. One record is
atomic, and a changelog restores a prefix of the writes, so the table always
holds the journals of a prefix of the batches; ``restore`` replays them in
offset order. One changelog record per batch, not one per row and seen id: on
a broker that needs one record per produce batch (tansu) every record costs a
round trip, and the identity stage is the one partition everything waits for.

The agent writes a batch's journal only once the broker has every output of
that batch (it folds the next batch meanwhile, ``streams.agents``). After a
crash the table therefore holds an older journal: the batches after it are
redelivered and redone, giving the same outputs again, which the profile
agent skips. Tables written before journals had their own keys (``i:``,
``c:``, ``m:``, one ``journal``) are still restored, the newer journals on top.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

import orjson

from cdp.adapters.kafka import codec as kafka_codec
from projections import identity
from schemas import AnyEvent, EventValidationError, decode_stored
from streams import messages

JOURNAL_KEY: Final = "journal"  # the one journal of the format before ``j:`` keys
_JOURNAL: Final = "j:"  # "j:<next offset, 12 digits>" -> one batch's journal
_ROW: Final = "i:"  # identifier row: "i:<identifier>" -> [customer_id, seq, ""]
_MERGED: Final = "c:"  # merged-away customer: "c:<customer>" -> ["", seq, merged_into]
_SEEN: Final = "m:"  # "m:<messageId>" -> offset of the first copy

Target = Literal["by_customer", "assignments", "merges", "deadletters"]


@dataclass(frozen=True, slots=True)
class Output:
    """One record to send: to which topic (by role), key and value bytes."""

    target: Target
    key: bytes
    value: bytes


@dataclass(slots=True)
class Step:
    """What one batch produced: outputs to send first, then the table write (its journal)."""

    outputs: list[Output] = field(default_factory=list)
    writes: list[tuple[str, Any]] = field(default_factory=list)
    events: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    erased: int = 0
    gap: tuple[int, int] | None = None
    """``(expected, got)``: offset ``expected`` never came, ``got`` came instead;
    the batch was folded up to ``expected`` and the log must be read again from
    there (``streams.gaps``)."""


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One record of the log topic as the agent received it."""

    offset: int
    value: bytes | None
    timestamp: datetime
    """The broker's record time: a dead letter's ``receivedAt`` (no wall clock)."""
    source: str | None = None
    erased: bool = False
    """Sealed under a destroyed key: the person was erased; skipped, like a record
    the embedded log deleted."""


def _row_key(row: identity.Row) -> str:
    identifier, customer, _, _ = row
    return _ROW + identifier if identifier else _MERGED + customer


def _row_value(row: identity.Row) -> list[Any]:
    _, customer, seq, merged_into = row
    return [customer, seq, merged_into]


def _row_of(key: str, value: Sequence[Any]) -> identity.Row:
    customer, seq, merged_into = value
    identifier = key[len(_ROW) :] if key.startswith(_ROW) else ""
    return (identifier, str(customer), int(seq), str(merged_into))


def journal_key(next_offset: int) -> str:
    """The table key of the journal of the batch that ends before ``next_offset``
    (zero-padded: the keys sort in offset order)."""
    return f"{_JOURNAL}{next_offset:012d}"


class Sequencer:
    """Identity in log order: the graph, the seen message ids, the next log offset."""

    def __init__(
        self,
        rules: identity.Rules,
        graph: identity.IdentityGraph | None = None,
        seen: set[str] | None = None,
        next_offset: int = 0,
        log_topic: str = "cdp.log",
    ) -> None:
        self.graph = graph if graph is not None else identity.IdentityGraph(rules)
        self.seen = seen if seen is not None else set()
        self.next_offset = next_offset
        self.log_topic = log_topic

    @classmethod
    def restore(
        cls,
        items: Iterable[tuple[str, Any]],
        rules: identity.Rules,
        log_topic: str = "cdp.log",
    ) -> Sequencer:
        """The state a table's ``(key, value)`` items describe (journal re-applied on top)."""
        rows: dict[str, identity.Row] = {}
        seen: set[str] = set()
        journals: list[tuple[int, Mapping[str, Any]]] = []
        for key, value in items:
            if key.startswith(_JOURNAL) or key == JOURNAL_KEY:
                journals.append((int(value["next_offset"]), value))
            elif key.startswith(_SEEN):
                seen.add(key[len(_SEEN) :])
            elif key.startswith((_ROW, _MERGED)):
                rows[key] = _row_of(key, value)
        next_offset = 0
        # The old format's journal holds rows newer than its own keys; journals of
        # the same offset (old and new format) hold the same changes.
        for offset, journal in sorted(journals, key=lambda j: j[0]):
            next_offset = offset
            for key, value in journal["rows"]:
                rows[key] = _row_of(key, value)
            seen.update(journal["seen"])
        graph = identity.IdentityGraph.from_rows(rows.values(), rules)
        return cls(rules, graph, seen, next_offset, log_topic)

    def process(self, records: Iterable[LogRecord]) -> Step:
        """Fold a batch of log records in offset order.

        Records before ``next_offset`` were processed already and are skipped.
        A record past ``next_offset`` means records were skipped: folding stops
        there and ``Step.gap`` says so (nothing after it is folded).
        """
        step = Step()
        outputs, graph, seen = step.outputs, self.graph, self.seen
        new_seen: list[str] = []
        start = self.next_offset
        for record in records:
            offset, data = record.offset, record.value
            if offset < self.next_offset:
                continue
            if offset > self.next_offset:
                step.gap = (self.next_offset, offset)
                break
            self.next_offset = offset + 1
            if record.erased:
                step.erased += 1
                continue
            event = self._decode(record, step)
            if event is None:
                continue
            if event.message_id in seen:
                step.duplicates += 1
                continue
            seen.add(event.message_id)
            new_seen.append(event.message_id)
            step.events += 1
            resolution = identity.apply(graph, event, offset)
            for merge in resolution.merges:
                out = messages.merge_out_message(merge.from_customer, merge.into_customer, offset)
                outputs.append(Output("by_customer", out.customer.encode(), messages.encode(out)))
            if resolution.customer_id is not None:
                assert data is not None
                out = messages.event_message(resolution.customer_id, offset, data)
                outputs.append(Output("by_customer", out.customer.encode(), messages.encode(out)))
        if self.next_offset == start:
            return step
        changes = graph.take_changes()
        for row in changes.rows:
            outputs.append(
                Output("assignments", messages.assignment_key(row), messages.assignment_value(row))
            )
        for merge in changes.merges:
            key = merge.from_customer.encode()
            outputs.append(Output("merges", key, messages.merge_value(merge)))
        for rejection in changes.rejections:
            key = rejection.customer_id.encode()
            outputs.append(Output("merges", key, messages.rejection_value(rejection)))
        row_writes = [(_row_key(row), _row_value(row)) for row in changes.rows]
        journal = {"next_offset": self.next_offset, "rows": row_writes, "seen": new_seen}
        step.writes.append((journal_key(self.next_offset), journal))
        return step

    def skip_to(self, offset: int) -> None:
        """Go on from ``offset``: the records before it are gone from the log (retention)."""
        if offset < self.next_offset:
            raise ValueError(f"cannot skip back from {self.next_offset} to {offset}")
        self.next_offset = offset

    def _decode(self, record: LogRecord, step: Step) -> AnyEvent | None:
        """The stored event, or ``None`` after queueing a dead letter that says why."""
        data = record.value
        reason: str | None = None
        try:
            if data is None:
                reason = "empty record (no value)"
            else:
                return decode_stored(data)  # read as the contract it was written under
        except orjson.JSONDecodeError as error:
            reason = f"not JSON: {error}"
        except (EventValidationError, ValueError) as error:
            reason = f"invalid event: {error}"
        except Exception as error:  # anything else a broken record triggers: never crash
            reason = f"undecodable: {type(error).__name__}: {error}"
        step.dead_letters += 1
        letter = kafka_codec.DeadLetterMessage(
            received_at=record.timestamp,
            source=record.source,
            origin=f"{self.log_topic}@{record.offset}",
            reason=f"log offset {record.offset}: {reason}",
            body=data or b"",
        )
        encoded = kafka_codec.encode_dead_letter(letter)
        step.outputs.append(Output("deadletters", encoded.key, encoded.value))
        return None
