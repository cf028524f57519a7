"""The one error body of every HTTP answer of ``cdp serve`` that is a 4xx or 5xx.

Whichever layer produced it (a route, FastAPI's request validation,
Starlette's routing for an unknown path or a wrong method, a static file that
is not there, an exception nobody expected), the body is::

    {"success": false, "error": "<what is wrong, in words>", "status": <code>}

A route may add keys when it has more to say (``errors``: the problems of
each item of a batch; the line report of a bulk import; the details of
``/health``), never fewer. Routes build the body with ``error_response``;
``install`` registers the exception handlers that give the framework's own
answers the same shape. ``tests/integration/test_error_shapes.py`` walks
every route of the app and provokes errors on each, so a new route cannot
escape the shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from cdp.errors import AuthError, CdpError, ForbiddenError, NotFoundError, TransientError
from cdp.jsonable import json_default
from cdp.read.bodies import ErrorBody

CORE_KEYS = frozenset({"success", "error", "status"})

# For the app's OpenAPI document: every route may answer a 4xx or 5xx in this
# shape (it also replaces FastAPI's own 422 schema, which this app never sends).
DOCUMENTED: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "The request was refused: `error` says why."},
    "5XX": {"model": ErrorBody, "description": "The server cannot answer now: `error` says why."},
}


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    """The error body: ``success``, ``error``, ``status``, then ``extra``.

    ``extra`` may not replace the three promised keys (a ``ValueError`` if it
    tries): a client must be able to rely on them."""
    clash = CORE_KEYS.intersection(extra)
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} would replace the error body's own")
    return {"success": False, "error": message, "status": status, **extra}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """A JSON response of ``error_body(status, message, **extra)``."""
    return Response(
        orjson.dumps(error_body(status, message, **extra), default=json_default),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def _routing_message(request: Request, error: StarletteHTTPException) -> str:
    """Starlette's bare "Not Found" / "Method Not Allowed", said with what was asked."""
    if error.status_code == 404 and error.detail == "Not Found":
        return f"not found: {request.method} {request.url.path}"
    if error.status_code == 405:
        allowed = (error.headers or {}).get("Allow")
        suffix = f"; allowed: {allowed}" if allowed else ""
        return f"method {request.method} is not allowed on {request.url.path}{suffix}"
    return str(error.detail)


def _field(location: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in location)


def install(
    app: FastAPI, pages: Callable[[Request, Exception], Response | None] | None = None
) -> None:
    """Give every error the framework or a route raises the shape of ``error_body``;
    ``pages(request, error)``, when given, may answer a platform error or an
    unexpected one with a page of its own instead (the console's HTML pages)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        headers = dict(error.headers) if error.headers else None
        return error_response(error.status_code, _routing_message(request, error), headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> Response:
        problems = [
            {"field": _field(item.get("loc", ())), "reason": str(item.get("msg", "invalid"))}
            for item in error.errors()
        ]
        first = problems[0] if problems else {"field": "request", "reason": "invalid"}
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return error_response(422, f"{first['field']}: {first['reason']}{more}", errors=problems)

    @app.exception_handler(CdpError)
    async def cdp_error(request: Request, error: CdpError) -> Response:
        page = pages(request, error) if pages is not None else None
        if page is not None:
            return page
        if isinstance(error, TransientError):  # e.g. the broker is down: nothing acknowledged
            return error_response(503, str(error), headers={"Retry-After": "1"})
        if isinstance(error, AuthError):
            return error_response(401, str(error))
        if isinstance(error, ForbiddenError):
            return error_response(403, str(error))
        if isinstance(error, NotFoundError):
            return error_response(404, str(error))
        return error_response(400, str(error))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        # Starlette re-raises the exception after this answer, so the server logs
        # the traceback; the client gets no traceback, only where to look.
        page = pages(request, error) if pages is not None else None
        if page is not None:
            return page
        return error_response(500, "internal server error; the server log has the details")
