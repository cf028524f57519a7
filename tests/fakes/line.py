"""A fake LINE Messaging API: audiences for uploading user ids (by JSON).

- ``POST /v2/bot/audienceGroup/upload``: ``description`` (1–120 chars),
  ``isIfaAudience`` (false here), optional ``uploadDescription`` and
  ``audiences`` (≤ 10,000 ``{"id": "U" + 32 hex}``) → ``audienceGroupId``...
- ``PUT /v2/bot/audienceGroup/upload``: ``audienceGroupId`` of an existing
  group, ``audiences`` (1–10,000), optional ``uploadDescription`` → ``{}``.
- ``GET /v2/bot/audienceGroup/list`` (``description`` filter),
  ``GET`` / ``DELETE /v2/bot/audienceGroup/{id}``.

``Authorization: Bearer <channel access token>`` on every call; errors as
``{"message", "details": [{"message", "property"}]}``. ``created`` counts
group creations (a duplicate creation would show up there); an upload of the
same ids to the same group again is counted in ``duplicates``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.fakes.base import FakeServer, error

USER_ID = re.compile(r"^U[0-9a-f]{32}$")
MAX_IDS = 10_000


def line_error(message: str, status: int = 400, prop: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"message": message}
    if prop:
        body["details"] = [{"message": message, "property": prop}]
    return error(status, body)


@dataclass
class FakeLine(FakeServer):
    token: str = "line-token"
    groups: dict[int, dict[str, Any]] = field(default_factory=dict)
    deleted: list[int] = field(default_factory=list)
    created: int = 0

    def members(self, group: int) -> set[str]:
        with self.lock:
            return set(self.groups[group]["ids"])

    def _audiences(self, body: dict[str, Any], required: bool) -> list[str] | JSONResponse:
        audiences = body.get("audiences", [])
        if (
            not isinstance(audiences, list)
            or len(audiences) > MAX_IDS
            or (required and not audiences)
        ):
            return line_error("audiences must hold 1 to 10000 items", prop="audiences")
        ids = []
        for i, item in enumerate(audiences):
            if (
                not isinstance(item, dict)
                or set(item) != {"id"}
                or not USER_ID.match(str(item["id"]))
            ):
                return line_error("Invalid user ID", prop=f"audiences[{i}].id")
            ids.append(item["id"])
        return ids

    def build(self) -> FastAPI:
        app = FastAPI()

        @app.middleware("http")
        async def auth(request: Request, call_next: Any) -> Any:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return line_error(
                    "Authentication failed due to the following reason: invalid token.", 401
                )
            return await call_next(request)

        @app.post("/v2/bot/audienceGroup/upload")
        async def create(request: Request) -> JSONResponse:
            body = await request.json()
            description = body.get("description")
            if not isinstance(description, str) or not 1 <= len(description) <= 120:
                return line_error("description must be 1 to 120 characters", prop="description")
            if body.get("isIfaAudience") not in (False, None):
                return line_error("only user id audiences here", prop="isIfaAudience")
            ids = self._audiences(body, required=False)
            if isinstance(ids, JSONResponse):
                return ids
            with self.lock:
                self.created += 1
                group = 4_000_000 + self.created
                self.groups[group] = {"description": description, "ids": set(ids), "uploads": 1}
            return JSONResponse(
                {
                    "audienceGroupId": group,
                    "createRoute": "MESSAGING_API",
                    "type": "UPLOAD",
                    "description": description,
                    "created": 1_700_000_000,
                    "permission": "READ_WRITE",
                    "expireTimestamp": 1_715_000_000,
                    "isIfaAudience": False,
                }
            )

        @app.put("/v2/bot/audienceGroup/upload")
        async def add(request: Request) -> JSONResponse:
            body = await request.json()
            group = body.get("audienceGroupId")
            ids = self._audiences(body, required=True)
            if isinstance(ids, JSONResponse):
                return ids
            with self.lock:
                if group not in self.groups:
                    return line_error("audience group not found", 404)
                self.groups[group]["ids"] |= set(ids)
                self.groups[group]["uploads"] += 1
                upload = f"{group}:{hash(frozenset(ids))}"
                if upload in self.applied:
                    self.duplicates[upload] += 1  # harmless on LINE, but counted
                else:
                    self.applied[upload] += 1
            return JSONResponse({})

        @app.get("/v2/bot/audienceGroup/list")
        async def listing(request: Request) -> JSONResponse:
            wanted = request.query_params.get("description")
            with self.lock:
                found = [
                    {
                        "audienceGroupId": g,
                        "type": "UPLOAD",
                        "description": d["description"],
                        "status": "READY",
                        "audienceCount": len(d["ids"]),
                    }
                    for g, d in sorted(self.groups.items())
                    if wanted is None or wanted in d["description"]
                ]
            return JSONResponse(
                {
                    "audienceGroups": found,
                    "hasNextPage": False,
                    "totalCount": len(found),
                    "page": 1,
                    "size": 40,
                }
            )

        @app.get("/v2/bot/audienceGroup/{group}")
        async def get(group: int) -> JSONResponse:
            with self.lock:
                if group not in self.groups:
                    return line_error("audience group not found", 404)
                data = self.groups[group]
                return JSONResponse(
                    {
                        "audienceGroup": {
                            "audienceGroupId": group,
                            "description": data["description"],
                            "status": "READY",
                            "audienceCount": len(data["ids"]),
                        }
                    }
                )

        @app.delete("/v2/bot/audienceGroup/{group}")
        async def delete(group: int) -> JSONResponse:
            with self.lock:
                if group not in self.groups:
                    return line_error("audience group not found", 404)
                del self.groups[group]
                self.deleted.append(group)
            return JSONResponse({})

        return app
