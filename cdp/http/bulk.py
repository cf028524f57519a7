"""``POST /v1/bulk``: a JSON Lines file of Segment events over HTTP, as ``cdp ingest``.

The lines run through ``cdp.services.ingest`` on a worker thread (a file of
100 MB must not hold the event loop), appending through the app's writer; a
bulk import waits out backpressure instead of failing, because its caller is
a script, not a browser. Bad lines are reported by number and kept as dead
letters.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cdp.errors import AuthError
from cdp.http.errors import error_response
from cdp.http.intake import Intake, basic_username, read_body
from cdp.ports.log import AppendResult, Record
from cdp.runtime.writer import Backpressure
from cdp.services import collector
from cdp.services.ingest import IngestReport, ingest
from cdp.services.sources import SourceRegistry

MAX_BULK_BYTES: Final = 100 * 1024 * 1024  # decompressed JSONL per bulk request


def bulk_import(intake: Intake, body: bytes, source: str, received_at: datetime) -> IngestReport:
    """Run a JSONL body through ``ingest`` (blocking: call it on a worker thread)."""
    writer = intake.writer

    class WriterSink:
        def append(self, records: list[Record], /) -> AppendResult:
            while True:
                try:
                    return writer.submit(records).result()
                except Backpressure as error:
                    time.sleep(error.retry_after)  # a bulk import waits instead of failing

    rejected: list[tuple[str, bytes, str]] = []

    def keep(location: str, raw: bytes | str | dict[str, Any], reason: str) -> None:
        data = (
            raw
            if isinstance(raw, bytes)
            else orjson.dumps(raw)
            if isinstance(raw, dict)
            else raw.encode()
        )
        rejected.append((location, data, reason))

    lines = ((f"line {n}", line.strip()) for n, line in enumerate(body.split(b"\n"), 1))
    report = ingest(
        ((loc, line) for loc, line in lines if line),
        WriterSink(),
        source=source,
        received_at=received_at,
        on_reject=keep,
        suppressions=intake.suppressions,
    )
    if rejected:

        def store(appender: Any) -> None:
            # All of a file's dead letters in one writer call: one transaction.
            for location, data, reason in rejected:
                intake.store_dead_letter(
                    appender,
                    received_at=received_at,
                    source=source,
                    endpoint="bulk",
                    reason=f"{location}: {reason}",
                    body=data,
                )

        writer.call(store).result()
    return report


def router(sources: SourceRegistry, intake: Intake) -> APIRouter:
    """``POST /v1/bulk``, authenticating against ``sources``, writing through ``intake``."""
    routes = APIRouter()

    @routes.post(
        "/v1/bulk",
        tags=["collector"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            }
        },
    )
    async def bulk(request: Request) -> Response:
        """Bulk import: JSON Lines of Segment events (gzip allowed, up to 100 MB).

        Like `cdp ingest`: bad lines are listed by line number and kept as dead
        letters, good lines are appended; re-sending the file adds nothing
        (dedup by messageId, or a hash of a line's content and position when it
        has none, so two identical lines are still two events), so an
        interrupted import is resumed by sending it again. 200 when every line
        was accepted, 422 (with the same report) when some were rejected.
        """
        received_at = datetime.now(UTC)
        try:
            source = sources.authenticate(basic_username(request.headers.get("authorization")))
            raw = await read_body(request, MAX_BULK_BYTES)
            body = collector.decompress(
                raw, request.headers.get("content-encoding"), MAX_BULK_BYTES
            )
        except AuthError as error:
            return error_response(401, str(error))
        except collector.RequestRejected as error:
            return error_response(error.status, str(error))
        report = await asyncio.to_thread(bulk_import, intake, body, source, received_at)
        if report.rejected:
            return error_response(
                422,
                f"{report.rejected} of {report.read} lines were rejected (see errors)",
                **report.as_dict(),
            )
        return JSONResponse({"success": True, **report.as_dict()})

    return routes
