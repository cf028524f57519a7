"""The push protocol the three SFA platforms share.

An SFA destination differs from an ad audience in four ways:

- **Adds only.** Each member is one upserted record (new or changed since
  the last push). A member who leaves the segment is not deleted from the
  SFA, where sales may be working on them: they are only no longer updated.
- **Per-record errors.** A chunk can succeed for some records and fail for
  others (Salesforce ``allOrNone: false``, HubSpot 207, kintone's per-record
  validation errors). The chunk is acknowledged, the failures are kept in the
  plan (``state["record_errors"]``: customer id → the vendor's message, saved
  with the chunk's done mark) and, when the plan completes, left out of the
  synced set and stored in ``record_errors`` of the synced state, which
  ``cdp destinations status`` shows. The next push sends them again.
- **Record ids kept, deleted on erasure.** The SFA's id of every record a
  chunk created or updated is kept (``connectors.destinations.sfa.pushed``)
  before the chunk is marked done; an erasure deletes those records through
  ``delete`` (``connectors.destinations.sfa.erase``).
- **A field mapping.** Rows are the mapped SFA fields of ``records``; the
  journal stores them, so a resumed chunk is byte-identical.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb

from connectors.destinations.members import Member
from connectors.destinations.push.base import Changes, Layout, Platform, Run, cut
from connectors.destinations.push.http import Transport
from connectors.destinations.push.journal import Chunk
from connectors.destinations.sfa import records
from connectors.destinations.sfa.config import SfaDestination
from connectors.destinations.sfa.pushed import PushedRecords

RECORD_ERRORS = "record_errors"
#: How much of a vendor's error message is kept per record.
MESSAGE_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Sent:
    """What the SFA answered for one upserted chunk."""

    failed: dict[str, str] = field(default_factory=dict)
    """Records it refused: customer id → its message."""
    record_ids: dict[str, str] = field(default_factory=dict)
    """Records it created or updated: customer id → the SFA's own record id."""


@dataclass(frozen=True, slots=True)
class Deleted:
    """What the SFA answered for one deletion request."""

    deleted: list[str] = field(default_factory=list)
    """Record ids now gone (deleted, or gone already)."""
    refused: dict[str, str] = field(default_factory=dict)
    """Record ids it would not delete: id → its message."""


class SfaPlatform(Platform):
    """An SFA's upsert protocol; subclasses define ``send``, ``delete`` and ``check``."""

    max_delete = 100
    """Most record ids per deletion request."""

    def __init__(self, destination: SfaDestination) -> None:
        self.destination = destination
        self._values: dict[str, dict[str, Any]] = {}

    def prepare(self, con: duckdb.DuckDBPyConnection, customer_ids: list[str]) -> None:
        self._values = records.load(
            con, self.destination.name, self.destination.mapping(), customer_ids
        )

    def values(self, member: Member) -> dict[str, Any]:
        """Every source of one member (``records``), identifiers normalised."""
        values = dict(self._values.get(member.customer_id, {}))
        values.update(customer_id=member.customer_id, email=member.email, phone=member.phone)
        return values

    def row(self, member: Member) -> Any | None:
        record = records.mapped(
            self.destination.mapping(), self.destination.constants, self.values(member)
        )
        if record.get(self.destination.key_field()) in (None, ""):
            return None
        return record

    def exclusion(self, member: Member) -> str:
        return "no_email" if self.destination.key_source() == "email" else "no_usable_identifier"

    def layout(self, changes: Changes) -> tuple[Layout, dict[str, Any]]:
        return cut("add", changes.adds, changes.chunk_size), {}

    @abc.abstractmethod
    def send(self, run: Run, chunk: Chunk, total: int) -> Sent:
        """Upsert one chunk: the records the SFA refused and the ids of those it kept."""
        raise NotImplementedError

    @abc.abstractmethod
    def delete(self, transport: Transport, record_ids: list[str]) -> Deleted:
        """Delete at most ``max_delete`` records by the SFA's own ids. A record that
        is gone already counts as deleted (a resend after a lost answer)."""
        raise NotImplementedError

    def push(self, run: Run) -> None:
        errors: dict[str, str] = run.plan.state.setdefault(RECORD_ERRORS, {})
        total = len(run.plan.chunks)
        kept = PushedRecords(run.journal.data_dir, self.destination.name)
        for chunk in run.pending("add"):
            sent = self.send(run, chunk, total)
            kept.add(sent.record_ids)  # before the done mark: a resend answers the same ids
            errors.update({key: message[:MESSAGE_LIMIT] for key, message in sent.failed.items()})
            run.done(chunk)  # persists the errors with the done mark
        # The refused records stay out of the synced set, so the next push resends them.
        run.plan.adds = [key for key in run.plan.adds if key not in errors]
        run.plan.state["synced_extra"] = {RECORD_ERRORS: dict(errors)}


def describe(payload: Any, keys: tuple[str, ...] = ("errorCode", "message")) -> str:
    """A vendor's error body as one line: the first of ``keys`` joined by ": "."""
    if isinstance(payload, list) and payload:
        payload = payload[0]
    if isinstance(payload, Mapping):
        parts = [str(payload[k]) for k in keys if payload.get(k)]
        if parts:
            return ": ".join(parts)
    return str(payload)[:500]
