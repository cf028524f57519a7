"""Privacy requests over HTTP, behind a read token with the ``privacy:write`` scope.

- ``POST /v1/privacy/requests`` ``{"type": "delete" | "suppress" |
  "suppress-with-delete" | "unsuppress", "identifier": "email:a@b.jp"}``:
  files the request (``202``) and applies suppression at once: every
  identifier the person has (found through the lookups) is refused at every
  door from the next request on. An erasure needs the data directory to
  itself, so it stays ``received`` until ``cdp privacy process`` runs with the
  server stopped, or the server starts again (it processes open requests
  first): docs/privacy.md.
- ``GET /v1/privacy/requests`` and ``GET /v1/privacy/requests/{id}``: status.

Answers never carry the identifier, only its kind and peppered token.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from cdp.errors import AuthError, CdpError, ConfigError, ForbiddenError, NotFoundError
from cdp.http.errors import error_response
from cdp.http.read import bearer, json_response
from cdp.ports.lookups import ProfileLookups
from cdp.services.privacy import requests as privacy_requests
from cdp.services.privacy.filing import file_request
from cdp.services.privacy.requests import PrivacyRequest, Requests
from cdp.services.tokens import PRIVACY_WRITE, TokenRegistry


def router(
    data_dir: Path,
    reader: ProfileLookups,
    tokens: TokenRegistry,
    runtime: str = "embedded",
    on_filed: Callable[[PrivacyRequest], None] | None = None,
) -> APIRouter:
    """The privacy routes for the data directory ``data_dir``; ``runtime``: ``kafka``
    when the person's data is in Kafka topics (requests are filed as such).
    ``on_filed`` is given each erasure request once filed (Kafka mode runs it then)."""
    routes = APIRouter(tags=["privacy"])
    registry = Requests(data_dir)

    def authorised(request: Request) -> str:
        token = tokens.authenticate(bearer(request), PRIVACY_WRITE)
        return f"token:{token.name}"

    def file(request: Request, body: bytes) -> Response:
        actor = authorised(request)
        try:
            asked = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            raise ConfigError(f"body is not JSON: {error}") from None
        if not isinstance(asked, dict):
            raise ConfigError("body must be a JSON object with `type` and `identifier`")
        kind, text = asked.get("type"), asked.get("identifier")
        if kind not in privacy_requests.TYPES:
            raise ConfigError(f"`type` must be one of {', '.join(privacy_requests.TYPES)}")
        if not isinstance(text, str) or not text:
            raise ConfigError("`identifier` must be an identifier key such as email:a@b.jp")
        saved = file_request(data_dir, reader, kind, text, actor, runtime, on_filed)
        return json_response(saved.public(), 202 if saved.erases else 200)

    def guarded(fn: Any) -> Response:
        try:
            result: Response = fn()
            return result
        except AuthError as error:
            return error_response(401, str(error))
        except ForbiddenError as error:
            return error_response(403, str(error))
        except NotFoundError as error:
            return error_response(404, str(error))
        except CdpError as error:
            return error_response(400, str(error))

    @routes.post("/v1/privacy/requests", status_code=202)
    async def create(request: Request) -> Response:
        """File a privacy request about one person (see the module docstring)."""
        body = await request.body()
        return await anyio.to_thread.run_sync(lambda: guarded(lambda: file(request, body)))

    @routes.get("/v1/privacy/requests")
    async def listed(request: Request) -> Response:
        """Every privacy request and its status, oldest first."""

        def work() -> Response:
            authorised(request)
            return json_response([r.public() for r in registry.all()])

        return await anyio.to_thread.run_sync(lambda: guarded(work))

    @routes.get("/v1/privacy/requests/{request_id}")
    async def one(request: Request, request_id: str) -> Response:
        """One privacy request: status, steps done, counts, failed destinations."""

        def work() -> Response:
            authorised(request)
            return json_response(registry.get(request_id).public())

        return await anyio.to_thread.run_sync(lambda: guarded(work))

    return routes
