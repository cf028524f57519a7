"""The read API of ``cdp serve``: profile lookup and segments, behind read tokens.

- ``GET /v1/profiles/{type}:{value}`` (scope ``profiles:read``): the unified
  profile of whoever has that identifier (``email``, ``phone``, ``user_id``,
  ``anonymous_id``, ``line``, ``x``, ``instagram``) or ``cus_`` id: profile,
  lead score, stage with its explanation, current segments, identifiers,
  merges and the ``?events=N`` most recent events;
- ``GET /v1/segments`` and ``GET /v1/segments/{name}`` (scope
  ``segments:read``): the catalog, and one segment's count and members,
  paged by a cursor in customer-id order.

Lookups are answered by a ``ProfileLookups`` (``cdp.ports.lookups``): in
embedded mode ``cdp.read.reader.ReadModelLookups``, from the in-memory read
model of the last checkpoint (its docstring says how fresh each part of an
answer is), in Kafka mode ``cdp.adapters.kafka.lookups.KafkaProfileLookups``;
the response bodies are in ``cdp.read.bodies``.
In-memory lookups run on the event loop; the rest, and segment scans, on a
few threads.

Every request, refused ones included, is recorded in the audit log
(``cdp.services.privacy.audit``): the token's name, the action, the status and,
instead of the identifier, its kind and peppered token (never the value, nor a
plain hash of it, which anyone could match against a guess). The ``cdp.audit``
logger gets the same line without any target.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from cdp.errors import AuthError, CdpError, ForbiddenError, LogUnavailableError, NotFoundError
from cdp.http.errors import error_response
from cdp.jsonable import json_default
from cdp.ports.lookups import ProfileLookups
from cdp.read.bodies import ERRORS, ProfileBody, SegmentList, SegmentPage
from cdp.read.entry import RING
from cdp.services.privacy.audit import AuditLog
from cdp.services.tokens import PROFILES_READ, SEGMENTS_READ, TokenRegistry

audit = logging.getLogger("cdp.audit")
MAX_EVENTS = 1000
MAX_PAGE = 10_000
READ_THREADS = 4
#: Audit action per route; the actor of a request without a valid token.
ACTIONS = {"profile": "profile.lookup", "segments": "segment.list", "segment": "segment.read"}
UNAUTHENTICATED = "unauthenticated"


def json_response(data: Any, status: int = 200) -> Response:
    """``data`` as JSON (already serialised when it is ``bytes``)."""
    body = data if isinstance(data, bytes) else orjson.dumps(data, default=json_default)
    return Response(body, status_code=status, media_type="application/json")


# ------------------------------------------------------------------- routes
def bearer(request: Request) -> str | None:
    """The read token of ``Authorization: Bearer <token>`` (None without the header);
    ``AuthError`` for another scheme. Shared by every route behind read tokens."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthError("the read API takes `Authorization: Bearer <read token>`")
    return token.strip() or None


def int_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A whole-number query parameter in ``[low, high]``; ``ValueError`` naming it."""
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"query parameter {name!r} must be a whole number, not {text!r}") from None
    if not low <= value <= high:
        raise ValueError(f"query parameter {name!r} must be between {low} and {high}, not {value}")
    return value


def _query_doc(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema}  # fmt: skip


def read_router(reader: ProfileLookups, tokens: TokenRegistry, audit_log: AuditLog) -> APIRouter:
    """The routes of the read API over ``reader`` (any ``ProfileLookups``: the read
    model, SQL or the Kafka topics), authenticated by ``tokens``, each request
    recorded in ``audit_log`` (whose ``close`` is the caller's)."""
    router = APIRouter(tags=["read"], responses=ERRORS)
    # A few threads do the reads: DuckDB releases the GIL while it works, and
    # more threads than cores only queue on the GIL and stretch the tail.
    # Segments (which may scan for seconds) have their own, so lookups never wait
    # behind them.
    lookups = anyio.CapacityLimiter(READ_THREADS)
    scans = anyio.CapacityLimiter(2)

    async def in_thread(
        fn: Callable[[], Response], limiter: anyio.CapacityLimiter | None = None
    ) -> Response:
        return await anyio.to_thread.run_sync(fn, limiter=limiter or lookups)

    def answer(
        request: Request,
        route: str,
        scope: str,
        target: str,
        work: Callable[[], tuple[Any, str]],
    ) -> Response:
        """Authenticate, authorise, run ``work`` and answer; record the outcome.
        ``target`` is a segment target, or for profiles the identifier text
        (recorded only as ``AuditLog.subject`` of it)."""
        who = UNAUTHENTICATED
        status = 500
        parsed = False  # is target the identifier key the lookup normalised?
        try:
            token = tokens.identify(bearer(request))
            who = token.name
            tokens.require(token, scope)
            data, target = work()
            parsed = True
            status = 200
            return json_response(data)
        except AuthError as error:
            status = 401
            return error_response(401, str(error))
        except ForbiddenError as error:
            status = 403
            return error_response(403, str(error))
        except ValueError as error:
            status = 400
            return error_response(400, str(error))
        except NotFoundError as error:
            status = 404
            return error_response(404, str(error))
        except LogUnavailableError as error:
            status = 503
            return error_response(503, str(error))
        except CdpError as error:
            status = 400
            return error_response(400, str(error))
        finally:
            shown = audit_log.subject(target, normalised=parsed) if route == "profile" else target
            audit_log.record(who, ACTIONS[route], shown, {"status": status})
            audit.info("token=%s scope=%s route=%s status=%d", who, scope, route, status)

    # Query parameters are parsed by hand (documented through openapi_extra) so
    # that a malformed one is a 400 in this API's error shape, not FastAPI's 422.
    @router.get(
        "/v1/profiles/{identifier:path}",
        response_model=None,
        responses={200: {"model": ProfileBody, "description": "The unified profile."}},
        openapi_extra={
            "parameters": [
                _query_doc(
                    "events",
                    "Recent events to return (default 10).",
                    {"type": "integer", "minimum": 0, "maximum": MAX_EVENTS},
                )
            ]
        },
    )
    async def get_profile(request: Request, identifier: str) -> Response:
        """Who is this? `type:value` (email, phone, user_id, anonymous_id, line, x,
        instagram) or a `cus_` id, URL-encoded. Scope `profiles:read`."""

        def work() -> tuple[Any, str]:
            events = int_param(request, "events", 10, 0, MAX_EVENTS)
            return reader.profile(identifier, events)

        call = functools.partial(answer, request, "profile", PROFILES_READ, identifier, work)
        if reader.in_memory(10):  # ~0.1 ms of Python: a thread hop would cost more
            events = request.query_params.get("events")
            if events is None or (events.isdigit() and int(events) <= RING):
                return call()
        return await in_thread(call)

    @router.get(
        "/v1/segments",
        response_model=None,
        responses={200: {"model": SegmentList, "description": "Every segment."}},
    )
    async def list_segments(request: Request) -> Response:
        """Built-in and saved segments with their last recorded count. Scope `segments:read`."""
        return await in_thread(
            lambda: answer(
                request,
                "segments",
                SEGMENTS_READ,
                "-",
                lambda: ({"segments": reader.segment_list()}, "-"),
            ),
            scans,
        )

    @router.get(
        "/v1/segments/{name}",
        response_model=None,
        responses={200: {"model": SegmentPage, "description": "One page of members."}},
        openapi_extra={
            "parameters": [
                _query_doc(
                    "limit",
                    "Members per page (default 1000).",
                    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                ),
                _query_doc("cursor", "`next_cursor` of the previous page.", {"type": "string"}),
            ]
        },
    )
    async def get_segment(request: Request, name: str) -> Response:
        """A segment evaluated now: count and members in customer-id order, paged by
        cursor (the union of the pages is the member list). Scope `segments:read`."""
        return await in_thread(
            lambda: answer(
                request,
                "segment",
                SEGMENTS_READ,
                f"segment:{name}",
                lambda: (
                    reader.segment_page(
                        name,
                        int_param(request, "limit", 1000, 1, MAX_PAGE),
                        request.query_params.get("cursor"),
                    ),
                    f"segment:{name}",
                ),
            ),
            scans,
        )

    if not audit.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s audit %(message)s"))
        audit.addHandler(handler)
        audit.setLevel(logging.INFO)
    return router
