"""HTTP routes of the Snowplow tracker protocol: ``POST /com.snowplowanalytics.snowplow/tp2``
and the pixel ``GET /i``.

The mapping is ``connectors.sources.snowplow`` (pure); this module reads the
request, finds the source, and answers as Snowplow collectors do closely
enough for the trackers: 200 once the events are durable, 400 for a payload
that breaks the protocol (trackers do not retry 400/401), 401 for an unknown
app id, 503 + ``Retry-After`` when the log is saturated (trackers retry).

Which source: the app id (``aid``) of the events, registered with ``cdp
sources add NAME --snowplow-app-id AID``. Requests without a known app id are
refused before anything is stored (app ids are public, but an unknown caller
must not be able to fill the disk); a request from a known app id whose
payload is wrong is kept as a dead letter under that source, with the reason.
CORS for both paths is ``cdp.http.cors`` (path based); the routes only check that
the page's origin is one the source allows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from cdp.errors import AuthError
from cdp.http import cors
from cdp.http.errors import error_response
from cdp.http.intake import read_body
from cdp.ports.log import Record
from cdp.runtime.writer import Backpressure
from cdp.services import collector
from cdp.services.sources import SourceRegistry
from connectors.sources.snowplow import payload
from connectors.sources.snowplow.protocol import (
    PIXEL_ENDPOINT,
    POST_ENDPOINT,
    PayloadRejected,
    Problem,
)

POST_PATH: Final = "/com.snowplowanalytics.snowplow/tp2"
PIXEL_PATH: Final = "/i"
#: The 1x1 transparent GIF every Snowplow collector answers a pixel request with.
PIXEL_GIF: Final = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)

Submit = Callable[[list[Record]], Awaitable[Any]]
DeadLetter = Callable[[str, str, str, bytes, datetime], Awaitable[None]]


class _Refused(Exception):
    """An answer decided before the events are submitted."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _problems(error: PayloadRejected) -> list[dict[str, Any]]:
    return [p.as_dict() for p in error.problems]


def _records(
    events: list[dict[str, Any]], sources: list[str], received_at: datetime, where: str
) -> list[Record]:
    """Validate the mapped events as the Segment routes do, each under its own source.

    A problem the Segment contract finds (rare: the mapping checks the tracker
    fields first) is named by the tracker item and the Segment field.
    """
    records: list[Record] = []
    problems: list[Problem] = []
    for index, (event, source) in enumerate(zip(events, sources, strict=True)):
        try:
            records.extend(
                collector.to_records([event], received_at, source, server_received_at=True)
            )
        except collector.RequestRejected as error:
            item = where.format(index=index)
            problems.extend(
                Problem(item, f"as Segment {p.field or 'event'}: {p.reason}")
                for p in error.problems
            )
    if problems:
        raise PayloadRejected(problems)
    return records


def install(app: FastAPI, sources: SourceRegistry, submit: Submit, dead_letter: DeadLetter) -> None:
    """Add the tracker routes to ``app``.

    ``submit`` appends records durably (raising ``Backpressure`` when full);
    ``dead_letter(source, endpoint, reason, body, received_at)`` keeps a
    rejected request.
    """

    def source_of(app_id: str | None, request: Request) -> str:
        try:
            source = sources.source_for_app_id(app_id)
            cors.check_source_origin(request.scope, sources, source)
        except cors.OriginNotAllowedError as error:
            raise _Refused(error_response(403, str(error))) from None
        except AuthError as error:
            raise _Refused(error_response(401, str(error))) from None
        return source

    async def store(records: list[Record]) -> Response | None:
        try:
            await submit(records)
        except Backpressure as error:
            return error_response(503, str(error), headers={"Retry-After": str(error.retry_after)})
        return None

    async def post(request: Request) -> Response:
        received_at = datetime.now(UTC)
        try:
            raw = await read_body(request, collector.MAX_REQUEST_BYTES)
            body = collector.decompress(raw, request.headers.get("content-encoding"))
        except collector.RequestRejected as error:
            return error_response(error.status, str(error))
        parse_error: PayloadRejected | None = None
        items: list[Any] = []
        try:
            items = payload.payload_items(body)
            app_ids = payload.app_ids(items)
        except PayloadRejected as error:
            parse_error, app_ids = error, payload.loose_app_ids(body)
        try:
            # Every app id in the request must be known before anything is kept.
            if not app_ids:
                source_of(None, request)
            owners = {app_id: source_of(app_id, request) for app_id in app_ids}
        except _Refused as refused:
            return refused.response
        first = next(iter(owners.values()))
        try:
            if parse_error is not None:
                raise parse_error
            events = payload.to_events(items)
            # Each item is mapped only when its aid was a string, so it is known.
            item_sources = [owners[item["aid"]] for item in items]
            records = _records(events, item_sources, received_at, "data[{index}]")
        except PayloadRejected as error:
            await dead_letter(first, POST_ENDPOINT, str(error), body, received_at)
            return error_response(400, str(error), errors=_problems(error))
        return await store(records) or JSONResponse({"success": True, "events": len(records)})

    post.__doc__ = (
        "Snowplow tracker protocol (payload_data 1-0-x, every value a string); the app id "
        "`aid` picks the source. 200 once durable; 400 names each bad field "
        "(`data[i].FIELD`); 401 unknown app id; 503 + Retry-After when saturated."
    )

    async def pixel(request: Request) -> Response:
        received_at = datetime.now(UTC)
        params = request.query_params.multi_items()
        app_id = next((value for name, value in params if name == "aid"), None)
        try:
            source = source_of(app_id, request)
        except _Refused as refused:
            return refused.response
        try:
            event = payload.query_event(params)
            records = _records([event], [source], received_at, "")
        except PayloadRejected as error:
            query = request.url.query.encode()
            await dead_letter(source, PIXEL_ENDPOINT, str(error), query, received_at)
            return error_response(400, str(error), errors=_problems(error))
        return await store(records) or Response(
            PIXEL_GIF,
            media_type="image/gif",
            headers={"Cache-Control": "no-cache, no-store, must-revalidate"},
        )

    pixel.__doc__ = (
        "Snowplow pixel: one event as querystring parameters (as the trackers' GET method "
        "and email/ad pixels send it). Answers a 1x1 GIF once durable; errors as JSON."
    )
    app.post(POST_PATH, tags=["snowplow"], name="snowplow_tp2")(post)
    app.get(PIXEL_PATH, tags=["snowplow"], name="snowplow_pixel")(pixel)
