"""Ingest: raw events from any source → validated records → the log → projections.

Sources (files, HTTP, webhooks) hand over ``(location, raw)`` pairs where
``location`` says where the item came from (``orders.jsonl:17``) and ``raw`` is
the JSON bytes of one event or an already-parsed dict. Each item is parsed,
size-checked, stamped (``schemas.stamp``) and validated; a bad item becomes an
``ItemError`` naming its location and every offending field, and the good
ones go on. Valid items are appended in batches: each batch is one durable
transaction, so an interrupted import leaves whole batches, and running it
again stores only what is missing (dedup by ``messageId``; an item without
one gets a hash of its content and of how many identical items came before
it in the same input (``ContentIds``), so the same file imported again, in
any order and under any name, is the same events, while two identical lines
of one file are two events).

Every item's times are bounded against the moment of the import
(``schemas.time_bounds``): one dated more than 24 h ahead is rejected.

With a ``SuppressionGate`` (``cdp ingest`` and ``/v1/bulk`` pass one), valid
items of a suppressed person are dropped before the append and counted in the
report's ``suppressed`` (``cdp.services.privacy.suppressions``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import chain, islice
from typing import TYPE_CHECKING, Any, Protocol

from cdp.ports.log import AppendResult, Record
from cdp.runtime.heap import paused_gc
from schemas import AnyEvent, EventValidationError, decode, decode_stored, dumps, loads, stamp
from schemas.sales import contact_anonymous_id
from schemas.stamp import content_message_id, lacks_message_id
from schemas.time_bounds import check_event_times

if TYPE_CHECKING:
    from cdp.services.privacy.suppressions import SuppressionGate
    from cdp.services.validation_pool import Outcome

MAX_REPORTED_ERRORS = 1_000


class Sink(Protocol):
    """Where valid records go: ``Engine`` (append durably and fold) or any ``EventLog``
    (e.g. ``KafkaEventLog`` for ``cdp ingest --kafka``: append only, workers fold)."""

    def append(self, records: list[Record], /) -> AppendResult: ...


@dataclass(frozen=True, slots=True)
class ItemError:
    """One rejected item: where it was and why."""

    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


@dataclass(slots=True)
class IngestReport:
    """What an ingest did."""

    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    #: Valid items not stored: they carry a suppressed person's identifier.
    suppressed: int = 0
    errors: list[ItemError] = field(default_factory=list)

    @property
    def errors_truncated(self) -> int:
        """How many errors happened beyond the ones kept in ``errors``."""
        return self.rejected - len(self.errors)

    def as_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "suppressed": self.suppressed,
            "errors": [{"location": e.location, "message": e.message} for e in self.errors],
            "errors_not_shown": self.errors_truncated,
        }


class ContentIds:
    """The ids of one input's items that have no ``messageId``: the hash of the
    content and its occurrence number in this input (``content_message_id``).

    Remembers one 64-bit key per distinct content seen (about 60 bytes each),
    only for items without a ``messageId``; a file whose items carry ids costs
    nothing. Not thread-safe: one per input.
    """

    __slots__ = ("_repeats", "_seen")

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._repeats: dict[int, int] = {}

    def first(self, first_id: str) -> bool:
        """Count an occurrence of the content whose first id is ``first_id``
        (``content_message_id(raw)``); True if it is the first one, and then
        that is its id. False: call ``message_id`` for the repeat's id."""
        key = int(first_id[5:21], 16)  # 64 bits of the digest after "auto-"
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def message_id(self, raw: dict[str, Any]) -> str:
        """The id of ``raw``, the next occurrence of its content in this input."""
        first = content_message_id(raw)
        if self.first(first):
            return first
        key = int(first[5:21], 16)
        occurrence = self._repeats.get(key, 1) + 1
        self._repeats[key] = occurrence
        return content_message_id(raw, occurrence)


def parsed_form(raw: bytes | str | dict[str, Any]) -> tuple[dict[str, Any], bytes | None]:
    """An item parsed (size-checked), with the producer's bytes (``None`` for a dict)."""
    if isinstance(raw, dict):
        return raw, None
    data_in = raw.encode() if isinstance(raw, str) else raw
    return loads(data_in), data_in


def checked(
    parsed: dict[str, Any], data_in: bytes | None, received_at: datetime, message_id: str | None
) -> tuple[AnyEvent, bytes]:
    """Stamp and validate a parsed item: the event and the exact bytes to store.

    ``EventValidationError`` if bad. The stored bytes are the producer's
    (``data_in``) when stamping changed nothing, else the stamped form.
    """
    stamped = stamp(parsed, received_at, message_id)
    contact = contact_anonymous_id(stamped)  # a sales event named by its contact only
    if contact is not None:
        stamped = {**stamped, "anonymousId": contact}
    event = decode(stamped)
    check_event_times(event, received_at)
    # Keep the producer's exact bytes when stamping changed nothing.
    data = data_in if data_in is not None and stamped is parsed else dumps(stamped)
    return event, data


def to_record(
    raw: bytes | str | dict[str, Any],
    received_at: datetime,
    source: str | None,
    *,
    message_id: str | None = None,
    content_ids: ContentIds | None = None,
) -> Record:
    """Parse, stamp and validate one raw event; ``EventValidationError`` if bad.

    ``received_at`` is when the platform received it (a clock reading at the
    door). An item without a ``messageId`` gets ``message_id`` if given, else
    its id from ``content_ids`` (its input's occurrence count), else the hash
    of its content alone.
    """
    parsed, data_in = parsed_form(raw)
    if message_id is None and content_ids is not None and lacks_message_id(parsed):
        message_id = content_ids.message_id(parsed)
    event, data = checked(parsed, data_in, received_at, message_id)
    return Record(event, data, source)


Item = tuple[str, bytes | str | dict[str, Any]]


def ingest(
    items: Iterable[Item],
    sink: Sink,
    *,
    source: str | None = None,
    received_at: datetime | None = None,
    batch_size: int = 5_000,
    progress: Callable[[int], None] | None = None,
    on_reject: Callable[[str, bytes | str | dict[str, Any], str], None] | None = None,
    workers: int | None = None,
    suppressions: SuppressionGate | None = None,
) -> IngestReport:
    """Validate and append every item; return counts and per-item errors.

    ``received_at`` defaults to now (UTC); it is the only clock read and it
    happens here, at the edge, never in a fold. ``on_reject(location, raw,
    reason)`` is told about every rejected item (to keep it as a dead letter).
    ``items`` is one file (or one bulk body): identical items without a
    ``messageId`` in it are told apart by their occurrence (``ContentIds``).

    ``workers``: validation processes (``cdp.services.validation_pool``);
    ``None`` or ``1`` validates here. Off by default: the appending process
    decodes each returned event again (``decode_stored``), which costs about
    what validating it costs, so on 2 cores the pool measured 0.96x of
    validating here (docs/benchmarks.md). The log, the report and the
    rejects are the same either way: items are appended in input order, in
    the same batches.

    ``suppressions``: the gate that drops a suppressed person's items (counted
    in ``report.suppressed``); an id that came beside a suppressed one in
    this input is refused for the rest of it.
    """
    now = received_at or datetime.now(UTC)
    report = IngestReport()
    batch: list[Record] = []
    linked: set[str] = set()  # keys refused in this input (the gate's memory)

    def flush() -> None:
        if batch:
            kept = batch if suppressions is None else suppressions.keep(batch, linked)
            report.suppressed += len(batch) - len(kept)
            if kept:
                result = sink.append(kept)
                report.accepted += result.appended
                report.duplicates += result.duplicates
            if progress is not None:
                progress(len(batch))
            batch.clear()

    checked_items = _checked_items(items, now, source, workers)
    # closing: an append that fails stops the pool's workers at once.
    with paused_gc(), closing(checked_items):
        for location, raw, result in checked_items:
            report.read += 1
            if isinstance(result, str):
                report.rejected += 1
                if len(report.errors) < MAX_REPORTED_ERRORS:
                    report.errors.append(ItemError(location, result))
                if on_reject is not None:
                    on_reject(location, raw, result)
                if progress is not None:
                    progress(1)
                continue
            batch.append(result)
            if len(batch) >= batch_size:
                flush()
        flush()
    return report


def _checked_items(
    items: Iterable[Item], now: datetime, source: str | None, workers: int | None
) -> Generator[tuple[str, bytes | str | dict[str, Any], Record | str], None, None]:
    """Every item with its record or its error message, in input order."""
    # The pool module builds on this one (``checked``); imported when used.
    from cdp.services.validation_pool import (  # noqa: PLC0415
        CHUNK_ITEMS,
        ValidationPool,
    )

    content_ids = ContentIds()
    stream = iter(items)
    if workers is None or workers < 2:
        for location, raw in stream:
            yield location, raw, _serial(raw, now, source, content_ids)
        return
    located = iter(lambda: list(islice(stream, CHUNK_ITEMS)), [])
    first = next(located, None)
    if first is None:  # nothing past the first items: no pool to start
        return
    chunks = ((chunk, [raw for _, raw in chunk]) for chunk in chain([first], located))
    with ValidationPool(workers) as pool:
        for chunk, outcomes in pool.check(chunks, now):
            for (location, raw), outcome in zip(chunk, outcomes, strict=True):
                yield location, raw, _from_outcome(outcome, raw, now, source, content_ids)


def _serial(
    raw: bytes | str | dict[str, Any], now: datetime, source: str | None, content_ids: ContentIds
) -> Record | str:
    try:
        return to_record(raw, now, source, content_ids=content_ids)
    except EventValidationError as error:
        return str(error)


def _from_outcome(
    outcome: Outcome,
    raw: bytes | str | dict[str, Any],
    now: datetime,
    source: str | None,
    content_ids: ContentIds,
) -> Record | str:
    """A worker's answer as the serial path's: the record (its event decoded from
    the stored bytes), or the error message."""
    if isinstance(outcome, tuple):
        first_id, outcome = outcome
        if not content_ids.first(first_id):  # a repeat: its id counts the ones before
            return _serial(raw, now, source, content_ids)
    if isinstance(outcome, str):
        return outcome
    return Record(decode_stored(outcome), outcome, source)
