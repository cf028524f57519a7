"""The Segment tracking API: ``POST /v1/{identify,track,page,screen,group,alias}``,
``/v1/batch`` (and ``/v1/import``), and analytics.js's short paths (``/v1/t``, …).

The collector semantics (limits, parsing, validation, records) are
``cdp.services.collector``; a route here reads the request, finds the source,
hands the records to the writer and says how it went. Browsers call these
routes, so the source's allowed origins are checked too (``cdp.http.cors``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cdp.errors import AuthError
from cdp.http import cors
from cdp.http.errors import error_response
from cdp.http.intake import SUCCESS, Intake, basic_username, read_body
from cdp.runtime.writer import Backpressure
from cdp.services import collector
from cdp.services.sources import SourceRegistry

# The events are parsed from raw bytes with orjson, not by FastAPI, so the
# OpenAPI document is told the body's shape by hand.
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "A Segment-spec event (see "
                    'schemas/jsonschema/); /v1/batch takes {"batch": [events], "context", '
                    '"integrations", "sentAt"}.',
                }
            }
        },
    }
}


def router(sources: SourceRegistry, intake: Intake) -> APIRouter:
    """The Segment routes, authenticating against ``sources`` and writing through ``intake``."""
    routes = APIRouter()

    async def collect(endpoint: str, request: Request) -> Response:
        received_at = datetime.now(UTC)
        try:
            header_key = basic_username(request.headers.get("authorization"))
            raw = await read_body(request, collector.MAX_REQUEST_BYTES)
            # Limits and parsing come before authentication only as far as needed
            # to find a key in the body; nothing is stored for unknown callers.
            body = collector.decompress(raw, request.headers.get("content-encoding"))
        except AuthError as error:
            return error_response(401, str(error))
        except collector.RequestRejected as error:
            return _rejected(error)
        parse_error: collector.RequestRejected | None = None
        items: list[dict[str, Any]] = []
        body_key: str | None = None
        try:
            items, body_key = collector.parse(endpoint, body)
        except collector.RequestRejected as error:
            parse_error = error
        try:
            source = sources.authenticate(header_key or body_key)
            cors.check_source_origin(request.scope, sources, source)
        except cors.OriginNotAllowedError as error:  # a page the source does not allow
            return error_response(403, str(error))
        except AuthError as error:
            return error_response(401, str(error))
        try:
            if parse_error is not None:
                raise parse_error
            records = collector.to_records(
                items,
                received_at,
                source,
                single=endpoint in collector.SINGLE_TYPES,
                server_received_at=True,
            )
        except collector.RequestRejected as error:
            await intake.dead_letter(source, endpoint, str(error), body, received_at)
            return _rejected(error)
        try:
            await intake.submit(records)
        except Backpressure as error:
            return error_response(503, str(error), headers={"Retry-After": str(error.retry_after)})
        return JSONResponse(SUCCESS)

    def route(endpoint: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return await collect(endpoint, request)

        # One handler per endpoint, named for it: the OpenAPI operation ids.
        handler.__name__ = f"collect_{endpoint}"
        handler.__doc__ = (
            f"Segment `{endpoint}` call. Write key as HTTP Basic username or `writeKey`. "
            '200 `{"success": true}` once durable; 400/413 name each bad item; '
            "401 bad key; 503 + Retry-After when the log is saturated."
        )
        return handler

    for endpoint in (*collector.SINGLE_TYPES, *collector.BATCH_ENDPOINTS):
        routes.post(f"/v1/{endpoint}", openapi_extra=_BODY_DOC, tags=["collector"])(route(endpoint))
    for short, endpoint in collector.SHORT_PATHS.items():  # analytics.js: /v1/t, ..., /v1/b
        routes.post(f"/v1/{short}", include_in_schema=False)(route(endpoint))
    return routes


def _rejected(error: collector.RequestRejected) -> Response:
    """The error answer naming each bad item."""
    return error_response(error.status, str(error), errors=[p.as_dict() for p in error.problems])
