"""A receiver of the generic signed audience webhook.

Checks ``X-CDP-Signature`` (HMAC-SHA256 over ``<timestamp>.<body>``, computed
here with hmac, independently of the sender's code), a fresh
``X-CDP-Timestamp``, an ``Idempotency-Key`` and the body
``{segment, action: add|remove, plan_id, chunk, members: [{customer_id,...}]}``.
A key is applied once; a resend with the same key is counted in
``duplicates`` and must carry the same body (else 422, as Stripe does).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.fakes.base import FakeServer, error


@dataclass
class FakeWebhook(FakeServer):
    secret: str = "hook-secret"
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)

    def build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/audience")
        async def receive(request: Request) -> JSONResponse:
            body = await request.body()
            stamp = request.headers.get("x-cdp-timestamp", "")
            expected = (
                "sha256="
                + hmac.new(
                    self.secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256
                ).hexdigest()
            )
            if not hmac.compare_digest(request.headers.get("x-cdp-signature", ""), expected):
                return error(401, {"error": "bad signature"})
            if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
                return error(401, {"error": "stale timestamp"})
            key = request.headers.get("idempotency-key")
            if not key:
                return error(400, {"error": "Idempotency-Key header is required"})
            data = orjson.loads(body)
            if set(data) != {"segment", "action", "plan_id", "chunk", "members"} or data[
                "action"
            ] not in ("add", "remove"):
                return error(
                    400, {"error": "body must be {segment, action, plan_id, chunk, members}"}
                )
            if not all(isinstance(m, dict) and m.get("customer_id") for m in data["members"]):
                return error(400, {"error": "every member needs a customer_id"})
            digest = hashlib.sha256(body).hexdigest()
            with self.lock:
                seen = self.keys.get(key)
                if seen is not None:
                    if seen != digest:
                        return error(422, {"error": "Idempotency-Key reused with a different body"})
                    self.duplicates[key] += 1
                    return JSONResponse({"status": "duplicate"})
                self.keys[key] = digest
                self.applied[key] += 1
                for member in data["members"]:
                    if data["action"] == "add":
                        self.members[member["customer_id"]] = member
                    else:
                        self.members.pop(member["customer_id"], None)
            return JSONResponse({"status": "ok"})

        return app
