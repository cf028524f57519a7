"""The dead-letter store: every request rejected after authentication, with why.

Nothing a producer sent after proving who it is gets lost: a request that
breaks the contract (or a verified webhook that cannot be mapped) is kept in
the ``dead_letters`` table with its source, endpoint, reason and exact body.
``cdp deadletter list`` shows them; ``cdp deadletter retry`` runs them
through the same path again (after a contract fix, say) and appends those
that now pass, marking them ``retried``; the rest keep their new reason.

A retry is idempotent: items without a ``messageId`` get ids derived from
the dead letter and the item's index (``retry_message_ids``), not fresh
server ids, so a retry interrupted after its append and run again stores
nothing twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb

from cdp.errors import CdpError
from cdp.ports.log import Record
from cdp.services.message_ids import MessageIds

DDL = """
CREATE TABLE IF NOT EXISTS dead_letters (
    id          BIGINT      NOT NULL,
    received_at TIMESTAMPTZ NOT NULL,
    source      VARCHAR,
    endpoint    VARCHAR     NOT NULL,
    reason      VARCHAR     NOT NULL,
    body        BLOB        NOT NULL,
    status      VARCHAR     NOT NULL,
    retried_at  TIMESTAMPTZ,
    events      INTEGER
)
"""
PENDING, RETRIED = "pending", "retried"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One rejected request."""

    id: int
    received_at: datetime
    source: str | None
    endpoint: str
    reason: str
    body: bytes
    status: str

    def as_dict(self, with_body: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "received_at": self.received_at,
            "source": self.source,
            "endpoint": self.endpoint,
            "reason": self.reason,
            "status": self.status,
            "bytes": len(self.body),
        }
        if with_body:
            data["body"] = self.body.decode("utf-8", errors="replace")
        return data


def retry_message_ids(letter: DeadLetter) -> MessageIds:
    """Ids for the items of ``letter`` that have no ``messageId``: ``dl-{id}-{body
    hash}-{index}``, the same on every retry (the hash guards against a letter id
    used again after the table was recreated)."""
    digest = hashlib.sha256(letter.body).hexdigest()[:12]
    prefix = f"dl-{letter.id}-{digest}-"
    return lambda index: f"{prefix}{index}"


def create(con: duckdb.DuckDBPyConnection) -> None:
    """Create the table if missing."""
    con.execute(DDL)


def add(
    con: duckdb.DuckDBPyConnection,
    *,
    received_at: datetime,
    source: str | None,
    endpoint: str,
    reason: str,
    body: bytes,
) -> int:
    """Store one rejected request durably; return its id."""
    row = con.execute("SELECT coalesce(max(id), 0) + 1 FROM dead_letters").fetchone()
    new_id = int(row[0]) if row else 1
    con.execute(
        "INSERT INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
        [new_id, received_at, source, endpoint, reason, body, PENDING],
    )
    return new_id


def select(
    con: duckdb.DuckDBPyConnection, status: str | None = PENDING, limit: int = 100
) -> list[DeadLetter]:
    """Dead letters, oldest first (``status=None``: all)."""
    condition = "WHERE status = ?" if status else ""
    params: list[Any] = [status] if status else []
    rows = con.execute(
        f"SELECT id, received_at, source, endpoint, reason, body, status FROM dead_letters "
        f"{condition} ORDER BY id LIMIT ?",
        [*params, limit],
    ).fetchall()
    return [DeadLetter(int(r[0]), r[1], r[2], r[3], r[4], bytes(r[5]), r[6]) for r in rows]


@dataclass(frozen=True, slots=True)
class Rebuilt:
    """What a dead letter holding several items gives when only some of them map now:
    the records to append, and ``(reason, body)`` per item that still does not,
    kept as a new pending dead letter of its own (as the live route would have)."""

    records: list[Record]
    unmapped: list[tuple[str, bytes]]


@dataclass(slots=True)
class RetryReport:
    """What a retry did."""

    retried: int = 0
    events: int = 0
    still_failing: int = 0


def retry(
    con: duckdb.DuckDBPyConnection,
    append: Callable[[list[Record]], Any],
    rebuild: Callable[[DeadLetter], list[Record] | Rebuilt],
    now: datetime,
    limit: int = 10_000,
) -> RetryReport:
    """Run pending dead letters through ``rebuild`` again and append what passes.

    A ``Rebuilt`` answer splits a letter: its records are appended, its unmapped
    items become new pending letters, and the letter is marked retried, all
    of it in one transaction after the (idempotent) append."""
    report = RetryReport()
    for letter in select(con, PENDING, limit):
        try:
            rebuilt = rebuild(letter)
        except CdpError as error:
            report.still_failing += 1
            con.execute("UPDATE dead_letters SET reason = ? WHERE id = ?", [str(error), letter.id])
            continue
        records, unmapped = (
            (rebuilt.records, rebuilt.unmapped) if isinstance(rebuilt, Rebuilt) else (rebuilt, [])
        )
        append(records)
        con.execute("BEGIN TRANSACTION")
        try:
            for reason, body in unmapped:
                add(
                    con,
                    received_at=letter.received_at,
                    source=letter.source,
                    endpoint=letter.endpoint,
                    reason=reason,
                    body=body,
                )
            con.execute(
                "UPDATE dead_letters SET status = ?, retried_at = ?, events = ? WHERE id = ?",
                [RETRIED, now, len(records), letter.id],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        report.retried += 1
        report.events += len(records)
    return report
