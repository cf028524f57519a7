"""CORS for the collector routes that browsers call (analytics.js, Snowplow trackers).

A shop's pages live on another origin than the collector, so a browser only
sends with a write key header (``Authorization`` makes every analytics.js
request "non-simple") after a preflight ``OPTIONS``, and only lets the page
read an answer that carries ``Access-Control-Allow-Origin``. Which origins may
send is configured per source (``cdp sources add NAME --origin URL``,
``cdp sources origins NAME --add/--remove``; ``cdp.services.origins``).

Two checks, because a preflight carries no credentials:

1. :class:`CorsMiddleware` (ASGI, path based, so every browser route is
   covered, including routes added later under :data:`BROWSER_PREFIXES`):
   a request with an ``Origin`` header that no active source allows is refused
   ``403`` before any route runs (nothing can be stored); a preflight from an
   origin some active source allows is answered ``204``; every answer to an
   allowed origin carries the CORS headers, whatever its status, so the page
   can read errors and ``Retry-After``.
2. :func:`check_source_origin`, called by each browser route right after it
   has found the request's source: the origin must be one *that* source
   allows, else ``OriginNotAllowedError`` (``403``, nothing stored). Without
   this a page allowed for one source could send with another source's key.

Requests without ``Origin`` (server-side SDKs, curl) and same-origin requests
(a page served by the collector itself, e.g. ``/docs``) are not affected.

An origin listed by name is echoed with ``Access-Control-Allow-Credentials:
true``; one allowed only by a source's ``*`` gets ``Access-Control-Allow-Origin:
*`` and no credentials, so a wildcard never lets arbitrary sites send the
visitor's cookies. Read routes (``/v1/profiles``, ``/v1/segments``), bulk
import, webhooks and forms are not browser routes and get no CORS headers:
read tokens and platform secrets must never be in a page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from cdp.errors import ForbiddenError
from cdp.services import origins as web_origins
from cdp.services.collector import BATCH_ENDPOINTS, SHORT_PATHS, SINGLE_TYPES
from cdp.services.sources import SourceRegistry

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Exact paths of the Segment tracking API, long and analytics.js short forms.
BROWSER_PATHS = frozenset(
    f"/v1/{endpoint}" for endpoint in (*SINGLE_TYPES, *BATCH_ENDPOINTS, *SHORT_PATHS)
)
#: Path prefixes of the Snowplow tracker protocol (``/com.snowplowanalytics.snowplow/tp2``)
#: and its pixel (``/i``, matched exactly).
BROWSER_PREFIXES = ("/com.snowplowanalytics.snowplow/",)
BROWSER_EXACT_EXTRA = frozenset({"/i"})

ALLOWED_METHODS = ("GET", "POST")
#: Request headers a page may send: analytics.js sends Content-Type (text/plain
#: by default), Authorization (Basic write key) and X-Retry-Count on retries;
#: Snowplow trackers may send SP-Anonymous; gzip senders Content-Encoding.
ALLOWED_HEADERS = (
    "Content-Type",
    "Authorization",
    "Content-Encoding",
    "X-Retry-Count",
    "SP-Anonymous",
)
#: Response headers a page may read besides the safelisted ones: analytics.js
#: honours Retry-After on a 429, other trackers on a 503 too.
EXPOSED_HEADERS = ("Retry-After",)
#: How long a browser may cache a preflight. An origin removed from a source
#: is still refused at once: the real request is checked on every call.
PREFLIGHT_MAX_AGE = 3600

_ALLOWED_HEADER_NAMES = frozenset(h.lower() for h in ALLOWED_HEADERS)
_STATE_KEY = "cors_origin"


class OriginNotAllowedError(ForbiddenError):
    """A browser request's ``Origin`` is not allowed for the source it sent as (403)."""


def is_browser_path(path: str) -> bool:
    """Whether ``path`` is a route that pages on other origins call."""
    return (
        path in BROWSER_PATHS
        or path in BROWSER_EXACT_EXTRA
        or any(path.startswith(prefix) for prefix in BROWSER_PREFIXES)
    )


def registry_grant(sources: SourceRegistry, origin: str) -> web_origins.Grant | None:
    """The strongest grant any *active* source gives ``origin`` (by name beats ``*``)."""
    best: web_origins.Grant | None = None
    for source in sources.list():
        if not source.active:
            continue
        found = web_origins.grant(source.origins, origin)
        if found is web_origins.Grant.EXPLICIT:
            return found
        best = best or found
    return best


def check_source_origin(scope: Scope, sources: SourceRegistry, source: str) -> None:
    """Refuse a cross-origin browser request whose origin ``source`` does not allow.

    Call it in every browser route after the request's source is known and
    before anything is stored. Requests the middleware did not mark as
    cross-origin (no ``Origin``, same origin) pass.
    """
    origin = scope.get("state", {}).get(_STATE_KEY)
    if origin is None:
        return
    for candidate in sources.list():
        if candidate.name == source:
            if web_origins.grant(candidate.origins, origin) is not None:
                return
            break
    raise OriginNotAllowedError(
        f"origin {origin!r} is not allowed for source {source!r}; allow it with "
        f"`cdp sources origins {source} --add {origin}`"
    )


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _same_origin(scope: Scope, origin: str) -> bool:
    # The Origin names the collector itself (Host as the client addressed it).
    # A page elsewhere cannot forge either header, so this is safe to skip.
    host = _header(scope, b"host")
    scheme, _, netloc = origin.partition("://")
    return host is not None and scheme in ("http", "https") and netloc == host.lower()


def _cors_headers(origin: str, grant: web_origins.Grant) -> list[tuple[bytes, bytes]]:
    if grant is web_origins.Grant.EXPLICIT:
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
        ]
    return [(b"access-control-allow-origin", b"*")]


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], error: str | None = None
) -> None:
    body = b""
    if error is not None:
        body = orjson.dumps({"success": False, "error": error, "status": status})
        headers = [*headers, (b"content-type", b"application/json")]
    if status != 204:  # a 204 has no body and must not say Content-Length
        headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class CorsMiddleware:
    """ASGI middleware answering preflights and adding CORS headers on browser paths.

    ``sources`` is read on every cross-origin request (the registry re-reads
    ``sources.json`` only when it changed), so origins added or removed while
    ``cdp serve`` runs apply to the next request.
    """

    def __init__(self, app: ASGIApp, sources: SourceRegistry) -> None:
        self.app = app
        self.sources = sources

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_browser_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        origin = _header(scope, b"origin")
        if origin is None or _same_origin(scope, origin):
            await self.app(scope, receive, send)
            return
        vary = [(b"vary", b"Origin")]
        grant = registry_grant(self.sources, origin)
        preflight = (
            scope["method"] == "OPTIONS"
            and _header(scope, b"access-control-request-method") is not None
        )
        if grant is None:
            # Nothing reaches a route, so nothing can be stored. Without CORS
            # headers the page sees a network error; the body is for devtools.
            await _respond(
                send,
                403,
                vary,
                f"origin {origin!r} is not allowed by any source; allow it with "
                f"`cdp sources origins NAME --add {origin}`",
            )
            return
        allow = _cors_headers(origin, grant)
        if preflight:
            await self._preflight(scope, send, origin, [*allow, *vary])
            return
        scope.setdefault("state", {})[_STATE_KEY] = origin
        extra = [
            *allow,
            (b"access-control-expose-headers", ", ".join(EXPOSED_HEADERS).encode()),
            *vary,
        ]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self, scope: Scope, send: Send, origin: str, headers: list[tuple[bytes, bytes]]
    ) -> None:
        method = (_header(scope, b"access-control-request-method") or "").strip().upper()
        asked = _header(scope, b"access-control-request-headers") or ""
        refused = sorted(
            {h.strip().lower() for h in asked.split(",") if h.strip()} - _ALLOWED_HEADER_NAMES
        )
        vary = [(b"vary", b"Access-Control-Request-Method, Access-Control-Request-Headers")]
        if method not in ALLOWED_METHODS:
            await _respond(
                send,
                403,
                [*headers, *vary],
                f"method {method!r} is not allowed on {scope['path']} "
                f"(allowed: {', '.join(ALLOWED_METHODS)})",
            )
            return
        if refused:
            await _respond(
                send,
                403,
                [*headers, *vary],
                f"request header(s) {', '.join(refused)} are not allowed "
                f"(allowed: {', '.join(ALLOWED_HEADERS)})",
            )
            return
        await _respond(
            send,
            204,
            [
                *headers,
                (b"access-control-allow-methods", ", ".join(ALLOWED_METHODS).encode()),
                (b"access-control-allow-headers", ", ".join(ALLOWED_HEADERS).encode()),
                (b"access-control-max-age", str(PREFLIGHT_MAX_AGE).encode()),
                *vary,
            ],
        )
