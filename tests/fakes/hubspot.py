"""A fake HubSpot CRM v3: contact properties and contacts batch upsert by e-mail.

Checks each request as HubSpot documents it: ``Authorization: Bearer
<private app token>`` (else ``401`` ``INVALID_AUTHENTICATION``);
``POST /crm/v3/objects/contacts/batch/upsert`` with JSON ``{"inputs": [...]}``,
1..100 inputs, each ``{"idProperty": "email", "id": <email>, "properties":
{name: string}}``; a property that does not exist, or an e-mail in
``bad_emails``, fails that input: the answer is then ``207`` with ``errors``
(``status``, ``category``, ``message``, ``context.ids``) beside the
``results`` of the others; otherwise ``200`` ``COMPLETE``. Rate limits are
injected as ``429`` bodies with ``policyName`` (see ``rate_limited``).
``GET /crm/v3/properties/contacts`` lists the properties.
``POST /crm/v3/objects/contacts/batch/archive`` with ``{"inputs": [{"id"}]}``
(1..100 ids as strings) archives contacts: ``204``, unknown ids included.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.fakes.base import error
from tests.fakes.crm import FakeCrm

PROPERTIES = {
    "email",
    "phone",
    "firstname",
    "lastname",
    "lifecyclestage",
    "cdp_customer_id",
    "cdp_user_id",
    "cdp_lead_score",
    "cdp_score_reasons",
    "cdp_lifecycle_stage",
    "cdp_funnel_stage",
    "cdp_consents",
    "state",
}
MAX_INPUTS = 100
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def rate_limited(policy: str) -> dict[str, Any]:
    """HubSpot's 429 body for a limit policy (SECONDLY, TEN_SECONDLY_ROLLING, DAILY)."""
    return {
        "status": "error",
        "message": f"You have reached your {policy.lower()} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c0ffee00-0000-4000-8000-000000000000",
        "policyName": policy,
        "groupName": "publicapi:private-app:12345",
    }


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class FakeHubSpot(FakeCrm):
    token: str = "pat-na1-11111111-2222-3333-4444-555555555555"
    contacts: dict[str, dict[str, str]] = field(default_factory=dict)
    archived: dict[str, dict[str, str]] = field(default_factory=dict)
    """Archived contacts by hs_object_id (HubSpot keeps them restorable for 90 days)."""

    def forget(self) -> None:
        self.contacts.clear()

    def refusal(self, request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return error(
                401,
                {
                    "status": "error",
                    "message": "Authentication credentials not found.",
                    "category": "INVALID_AUTHENTICATION",
                },
            )
        return None

    def routes(self, app: FastAPI) -> None:
        @app.get("/crm/v3/properties/contacts")
        async def properties() -> JSONResponse:
            return JSONResponse(
                {"results": [{"name": p, "type": "string"} for p in sorted(PROPERTIES)]}
            )

        @app.post("/crm/v3/objects/contacts/batch/upsert")
        async def upsert(request: Request) -> JSONResponse:
            if request.headers.get("content-type", "").split(";")[0] != "application/json":
                return self._invalid("Content-Type must be application/json")
            body = orjson.loads(await request.body())
            if (
                not isinstance(body, dict)
                or set(body) != {"inputs"}
                or not isinstance(body["inputs"], list)
            ):
                return self._invalid("body must be {inputs: [...]}")
            inputs = body["inputs"]
            if not 1 <= len(inputs) <= MAX_INPUTS:
                return self._invalid(f"inputs must hold 1 to {MAX_INPUTS} items, got {len(inputs)}")
            started = _now()
            results, errors = [], []
            for item in inputs:
                problem = self._check(item)
                if problem is not None:
                    return self._invalid(problem)
                failure = self._failure(item)
                if failure is not None:
                    errors.append(failure)
                    continue
                results.append(self._apply(item))
            answer: dict[str, Any] = {
                "status": "COMPLETE",
                "results": results,
                "startedAt": started,
                "completedAt": _now(),
            }
            if errors:
                answer |= {"numErrors": len(errors), "errors": errors}
                return JSONResponse(answer, status_code=207)
            return JSONResponse(answer)

        self._archive_route(app)

    @staticmethod
    def _invalid(message: str) -> JSONResponse:
        return error(400, {"status": "error", "message": message, "category": "VALIDATION_ERROR"})

    @staticmethod
    def _check(item: Any) -> str | None:
        if not isinstance(item, dict) or set(item) - {
            "idProperty",
            "id",
            "properties",
            "objectWriteTraceId",
        }:
            return "each input is {idProperty, id, properties}"
        if item.get("idProperty") != "email" or not isinstance(item.get("id"), str):
            return "idProperty must be email and id the e-mail"
        properties = item.get("properties")
        if not isinstance(properties, dict) or not all(
            isinstance(v, str) for v in properties.values()
        ):
            return "properties must map names to strings"
        return None

    def _failure(self, item: dict[str, Any]) -> dict[str, Any] | None:
        email = item["id"]
        unknown = sorted(set(item["properties"]) - PROPERTIES)
        if unknown:
            message = f'Property "{unknown[0]}" does not exist'
        elif email in self.bad_emails or not EMAIL.match(email):
            message = f"Property values were not valid: email {email!r} is INVALID_EMAIL"
        else:
            return None
        return {
            "status": "error",
            "category": "VALIDATION_ERROR",
            "message": message,
            "context": {"ids": [email]},
        }

    def _apply(self, item: dict[str, Any]) -> dict[str, Any]:
        email = item["id"].lower()
        with self.lock:
            new = email not in self.contacts
            contact = self.contacts.setdefault(
                email, {"hs_object_id": str(1000 + len(self.contacts) + len(self.archived))}
            )
            contact.update(item["properties"], email=email)
            self.upserts[email] += 1
            self.applied[email] += 1
            return {
                "id": contact["hs_object_id"],
                "properties": dict(contact),
                "new": new,
                "archived": False,
            }

    def _archive_route(self, app: FastAPI) -> None:
        """``POST /crm/v3/objects/contacts/batch/archive`` with ``{"inputs": [{"id"}]}``,
        1..100 ids (strings): ``204``, also for ids archived already or unknown."""

        @app.post("/crm/v3/objects/contacts/batch/archive")
        async def archive(request: Request) -> Response:
            if request.headers.get("content-type", "").split(";")[0] != "application/json":
                return self._invalid("Content-Type must be application/json")
            body = orjson.loads(await request.body())
            inputs = (
                body.get("inputs") if isinstance(body, dict) and set(body) == {"inputs"} else None
            )
            if not isinstance(inputs, list) or not 1 <= len(inputs) <= MAX_INPUTS:
                return self._invalid(f"body must be {{inputs: [...]}} with 1 to {MAX_INPUTS} items")
            if not all(
                isinstance(i, dict) and set(i) == {"id"} and isinstance(i["id"], str)
                for i in inputs
            ):
                return self._invalid("each input is {id: <object id as a string>}")
            gone = {i["id"] for i in inputs}
            with self.lock:
                for email in [e for e, c in self.contacts.items() if c["hs_object_id"] in gone]:
                    contact = self.contacts.pop(email)
                    self.archived[contact["hs_object_id"]] = contact
            return Response(status_code=204)
