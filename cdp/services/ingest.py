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
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from cdp.ports.log import AppendResult, Record
from cdp.runtime.bulk import paused_gc
from schemas import EventValidationError, decode, dumps, loads, stamp
from schemas.stamp import content_message_id, lacks_message_id
from schemas.time_bounds import check_event_times

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

    def message_id(self, raw: dict[str, Any]) -> str:
        """The id of ``raw``, the next occurrence of its content in this input."""
        first = content_message_id(raw)
        key = int(first[5:21], 16)  # 64 bits of the digest after "auto-"
        if key not in self._seen:
            self._seen.add(key)
            return first
        occurrence = self._repeats.get(key, 1) + 1
        self._repeats[key] = occurrence
        return content_message_id(raw, occurrence)


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
    data_in: bytes | None = None
    if isinstance(raw, dict):
        parsed = raw
    else:
        data_in = raw.encode() if isinstance(raw, str) else raw
        parsed = loads(data_in)
    if message_id is None and content_ids is not None and lacks_message_id(parsed):
        message_id = content_ids.message_id(parsed)
    stamped = stamp(parsed, received_at, message_id)
    event = decode(stamped)
    check_event_times(event, received_at)
    # Keep the producer's exact bytes when stamping changed nothing.
    data = data_in if data_in is not None and stamped is parsed else dumps(stamped)
    return Record(event, data, source)


def ingest(
    items: Iterable[tuple[str, bytes | str | dict[str, Any]]],
    sink: Sink,
    *,
    source: str | None = None,
    received_at: datetime | None = None,
    batch_size: int = 5_000,
    progress: Callable[[int], None] | None = None,
    on_reject: Callable[[str, bytes | str | dict[str, Any], str], None] | None = None,
) -> IngestReport:
    """Validate and append every item; return counts and per-item errors.

    ``received_at`` defaults to now (UTC); it is the only clock read and it
    happens here, at the edge, never in a fold. ``on_reject(location, raw,
    reason)`` is told about every rejected item (to keep it as a dead letter).
    ``items`` is one file (or one bulk body): identical items without a
    ``messageId`` in it are told apart by their occurrence (``ContentIds``).
    """
    now = received_at or datetime.now(UTC)
    report = IngestReport()
    content_ids = ContentIds()
    batch: list[Record] = []

    def flush() -> None:
        if batch:
            result = sink.append(batch)
            report.accepted += result.appended
            report.duplicates += result.duplicates
            if progress is not None:
                progress(len(batch))
            batch.clear()

    with paused_gc():
        for location, raw in items:
            report.read += 1
            try:
                batch.append(to_record(raw, now, source, content_ids=content_ids))
            except EventValidationError as error:
                report.rejected += 1
                if len(report.errors) < MAX_REPORTED_ERRORS:
                    report.errors.append(ItemError(location, str(error)))
                if on_reject is not None:
                    on_reject(location, raw, str(error))
                if progress is not None:
                    progress(1)
                continue
            if len(batch) >= batch_size:
                flush()
        flush()
    return report
