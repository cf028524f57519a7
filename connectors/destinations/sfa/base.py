"""The push protocol the three SFA platforms share.

An SFA destination differs from an ad audience in three ways:

- **Adds only.** Each member is one upserted record (new or changed since
  the last push). A member who leaves the segment is not deleted from the
  SFA, where sales may be working on them: they are only no longer updated.
  (Erasure does not reach the SFA yet; see docs/sales.md.)
- **Per-record errors.** A chunk can succeed for some records and fail for
  others (Salesforce ``allOrNone: false``, HubSpot 207, kintone's per-record
  validation errors). The chunk is acknowledged, the failures are kept in the
  plan (``state["record_errors"]``: customer id → the vendor's message, saved
  with the chunk's done mark) and, when the plan completes, left out of the
  synced set and stored in ``record_errors`` of the synced state, which
  ``cdp destinations status`` shows. The next push sends them again.
- **A field mapping.** Rows are the mapped SFA fields of ``records``; the
  journal stores them, so a resumed chunk is byte-identical.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any

import duckdb

from connectors.destinations.members import Member
from connectors.destinations.push.base import Layout, Platform, Run, cut
from connectors.destinations.push.journal import Chunk
from connectors.destinations.sfa import records
from connectors.destinations.sfa.config import SfaDestination

RECORD_ERRORS = "record_errors"
#: How much of a vendor's error message is kept per record.
MESSAGE_LIMIT = 300


class SfaPlatform(Platform):
    """An SFA's upsert protocol; subclasses define ``send`` and ``check``."""

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

    def layout(
        self,
        adds: list[str],
        removes: list[str],
        current: Mapping[str, Any],
        synced_extra: Mapping[str, Any],
        chunk_size: int,
    ) -> tuple[Layout, dict[str, Any]]:
        return cut("add", adds, chunk_size), {}

    @abc.abstractmethod
    def send(self, run: Run, chunk: Chunk, total: int) -> dict[str, str]:
        """Upsert one chunk; the records the SFA refused: customer id → its message."""
        raise NotImplementedError

    def push(self, run: Run) -> None:
        errors: dict[str, str] = run.plan.state.setdefault(RECORD_ERRORS, {})
        total = len(run.plan.chunks)
        for chunk in run.pending("add"):
            failed = self.send(run, chunk, total)
            errors.update({key: message[:MESSAGE_LIMIT] for key, message in failed.items()})
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
