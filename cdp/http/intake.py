"""What every write route of ``cdp serve`` shares: the body, the key, the writer.

- :func:`read_body`: the raw request body, refused (``413``) past a limit
  while it is still on the wire, so a huge body is never held in memory.
- :func:`basic_username`: the Segment write key, sent as the username of
  HTTP Basic credentials.
- :class:`Intake`: the door to the one ``GroupCommitWriter`` of the app —
  submit records (acknowledged once durable), run a function on the writer's
  thread, keep a rejected request as a dead letter. Submitted records pass
  the suppression gate first (``cdp.services.privacy.suppressions``): a
  suppressed person's events are counted and dropped, and the route answers
  as if they were accepted. Where a dead letter goes
  (the ``dead_letters`` table or the dead-letter topic) depends on the mode,
  so the wiring hands the writer-thread function in (``cdp.ports.deadletters.DeadLetterSink``);
  the routes never learn which mode they serve.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fastapi import Request

from cdp.errors import AuthError
from cdp.ports.deadletters import DeadLetterSink
from cdp.ports.log import AppendResult, Record
from cdp.runtime.writer import GroupCommitWriter
from cdp.services import collector
from cdp.services.privacy.suppressions import SuppressionGate

#: The answer of a write route once its events are durable.
SUCCESS: Final = {"success": True}


def basic_username(header: str | None) -> str | None:
    """The username of an HTTP Basic ``Authorization`` header (Segment's write key)."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):  # binascii.Error, and non-ASCII text
        raise AuthError("Authorization header is not valid Basic credentials") from None
    return decoded.partition(":")[0] or None


async def read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes on the wire (413)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> collector.RequestRejected:
    return collector.RequestRejected(
        [collector.Problem(None, "", f"request is over the {limit // 1024} KB limit")], 413
    )


@dataclass(frozen=True, slots=True)
class Intake:
    """The writer of the app, where its dead letters go, and the suppression gate."""

    writer: GroupCommitWriter[Any]
    store_dead_letter: DeadLetterSink
    suppressions: SuppressionGate

    async def submit(self, records: list[Record]) -> AppendResult:
        """Append ``records`` but a suppressed person's; returns once durable
        (``Backpressure`` when saturated). The result covers the records kept."""
        records = self.suppressions.keep(records, set())
        if not records:
            return AppendResult((), ())
        return await asyncio.wrap_future(self.writer.submit(records))

    async def run(self, fn: Callable[[Any], Any]) -> Any:
        """Run ``fn(appender)`` on the writer's thread, between group commits."""
        return await asyncio.wrap_future(self.writer.call(fn))

    async def dead_letter(
        self, source: str, endpoint: str, reason: str, body: bytes, received_at: datetime
    ) -> None:
        """Keep a request that could not be turned into events, with the reason."""
        await self.run(
            lambda appender: self.store_dead_letter(
                appender,
                received_at=received_at,
                source=source,
                endpoint=endpoint,
                reason=reason,
                body=body,
            )
        )
