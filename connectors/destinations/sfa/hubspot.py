"""HubSpot: contacts upserted by e-mail through the CRM v3 batch API.

- **Auth**: a private app token, ``Authorization: Bearer <token>`` (scopes
  ``crm.objects.contacts.write``, and ``crm.schemas.contacts.read`` for check).
- **Upsert**: ``POST /crm/v3/objects/contacts/batch/upsert`` with
  ``{"inputs": [{"idProperty": "email", "id": <email>, "properties": {...}}]}``,
  at most 100 inputs. ``200`` is complete; ``207`` (multi-status) lists the
  inputs it refused in ``errors`` (``category``, ``message``, ``context``
  naming the ids): those records keep the error, the others are synced. An
  error that names no id fails every input the ``results`` do not hold.
- **Delete** (an erasure): ``POST /crm/v3/objects/contacts/batch/archive`` with
  ``{"inputs": [{"id": <hs_object_id>}]}``, at most 100 ids (the ``id`` of each
  upsert result); ``204``. Archived contacts can be restored for 90 days.
- **Limits**: ``429`` with ``policyName``: ``SECONDLY`` waits a second,
  ``TEN_SECONDLY_ROLLING`` ten; ``DAILY`` stops the push at once (the plan
  stays pending). A ``Retry-After`` header wins when there is one.
- **check**: ``GET /crm/v3/properties/contacts``: every mapped property exists.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import orjson

from cdp.errors import ConfigError
from connectors.destinations.push.base import Run
from connectors.destinations.push.http import Transport
from connectors.destinations.push.journal import Chunk
from connectors.destinations.sfa.base import Deleted, Sent, SfaPlatform, describe
from connectors.destinations.sfa.config import HubSpot

UPSERT_PATH = "/crm/v3/objects/contacts/batch/upsert"
ARCHIVE_PATH = "/crm/v3/objects/contacts/batch/archive"
PROPERTIES_PATH = "/crm/v3/properties/contacts"
MAX_INPUTS = 100
POLICY_WAIT = {"SECONDLY": 1.0, "TEN_SECONDLY_ROLLING": 10.0, "DAILY": math.inf}


def _body(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}


def _text(value: Any) -> str:
    # HubSpot property values are strings; booleans are "true"/"false".
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _named(context: Any) -> set[str]:
    """Every string in an error's ``context`` (``{"ids": [...]}`` and the like)."""
    names: set[str] = set()
    if isinstance(context, dict):
        for value in context.values():
            names |= {str(v).lower() for v in (value if isinstance(value, list) else [value])}
    return names


class HubSpotPlatform(SfaPlatform):
    """Push protocol of HubSpot contacts (batch upsert by e-mail)."""

    name = "hubspot"
    max_chunk = MAX_INPUTS
    max_delete = MAX_INPUTS

    def __init__(self, destination: HubSpot) -> None:
        super().__init__(destination)
        self.hs = destination

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.hs.secret('access_token')}"}

    def error_message(self, response: httpx.Response) -> str:
        return describe(_body(response), ("category", "policyName", "message"))

    def retry_hint(self, response: httpx.Response) -> float | None:
        if response.status_code == 429:
            return POLICY_WAIT.get(str(_body(response).get("policyName", "")))
        return None

    def send(self, run: Run, chunk: Chunk, total: int) -> Sent:
        rows = run.rows(chunk)
        inputs = [
            {
                "idProperty": "email",
                "id": row["email"],
                "properties": {k: _text(v) for k, v in row.items()},
            }
            for row in rows
        ]
        response = run.transport.request(
            "POST",
            UPSERT_PATH,
            what=f"upsert chunk {chunk.index + 1} of {total}",
            json={"inputs": inputs},
        )
        body = _body(response)
        by_email = {
            str(row["email"]).lower(): key for key, row in zip(chunk.keys, rows, strict=True)
        }
        ids: dict[str, str] = {}
        for result in body.get("results") or []:
            email = str((result.get("properties") or {}).get("email", "")).lower()
            if email in by_email and result.get("id"):
                ids[by_email[email]] = str(result["id"])
        failed: dict[str, str] = {}
        done = {email for email, key in by_email.items() if key in ids}
        errors = (body.get("errors") or []) if response.status_code == 207 else []
        for error in errors:
            message = describe(error, ("category", "message"))
            named = _named(error.get("context")) & by_email.keys()
            for email in named or (by_email.keys() - done):
                failed[by_email[email]] = message
        return Sent(failed, ids)

    def delete(self, transport: Transport, record_ids: list[str]) -> Deleted:
        # 204 No Content; an id that is archived or unknown already is no error.
        transport.request(
            "POST",
            ARCHIVE_PATH,
            what=f"archive {len(record_ids)} contacts",
            json={"inputs": [{"id": record_id} for record_id in record_ids]},
        )
        return Deleted(list(record_ids))

    def check(self, transport: Transport) -> str:
        response = transport.request("GET", PROPERTIES_PATH, what="list contact properties")
        known = {p.get("name") for p in _body(response).get("results", [])}
        missing = sorted(p for p in [*self.hs.mapping(), *self.hs.constants] if p not in known)
        if missing:
            raise ConfigError(
                f"destination {self.hs.name!r}: HubSpot has no contact property "
                f'{", ".join(missing)} (create it, or map it to "" in [{self.hs.name}.fields])'
            )
        return f"contacts upsert by email; {len(known)} properties, every mapped one exists"
