"""A fake Salesforce org: OAuth token endpoint, sObject describe, sObject Collections upsert.

Checks each request as Salesforce documents it:

- ``POST /services/oauth2/token``, form-encoded: ``client_credentials`` with the
  connected app's ``client_id``/``client_secret``, or the JWT bearer grant
  whose ``assertion`` is verified (RS256 with the app's certificate key,
  ``iss`` = consumer key, ``sub`` = username, ``aud`` = login.salesforce.com,
  ``exp`` in the future, at most 3 minutes away); answers ``access_token``
  and ``instance_url`` (this server), or ``400 {"error", "error_description"}``;
- every API call: ``Authorization: Bearer <a live token>``, else
  ``401 [{"errorCode": "INVALID_SESSION_ID"}]`` (``expire_tokens`` forces one);
- ``PATCH /services/data/vNN.N/composite/sobjects/{Lead|Contact}/{External ID
  field}``: JSON ``{"allOrNone": bool, "records": [...]}``, 1..200 records,
  each with ``attributes.type`` equal to the object, no ``Id``, the external
  id set, only known fields (else ``400 INVALID_FIELD`` for the request).
  Per record: an e-mail in ``bad_emails`` fails with INVALID_EMAIL_ADDRESS;
  an insert without the required fields (LastName; Company for a Lead)
  fails with REQUIRED_FIELD_MISSING; answers one UpsertResult per record;
- ``DELETE /services/data/vNN.N/composite/sobjects?ids=...&allOrNone=...``: no
  body, 1..200 record ids; one DeleteResult per id (``ENTITY_IS_DELETED`` for
  one deleted already, ``INVALID_CROSS_REFERENCE_KEY`` for an unknown one,
  ``ENTITY_IS_LOCKED`` for an id in ``locked``).
"""

from __future__ import annotations

import re
import secrets
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qs

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.fakes.base import error
from tests.fakes.crm import FakeCrm

FIELDS = {
    "Lead": {"Id", "Email", "Phone", "FirstName", "LastName", "Company", "LeadSource", "Status"},
    "Contact": {"Id", "Email", "Phone", "FirstName", "LastName", "AccountId", "LeadSource"},
}
CUSTOM = {
    "CDP_Customer_Id__c",
    "CDP_User_Id__c",
    "CDP_Lead_Score__c",
    "CDP_Score_Reasons__c",
    "CDP_Lifecycle_Stage__c",
    "CDP_Funnel_Stage__c",
    "HasOptedOutOfEmail",
    "Prefecture__c",
}
REQUIRED = {"Lead": ("LastName", "Company"), "Contact": ("LastName",)}
EXTERNAL_IDS = {"CDP_Customer_Id__c"}
MAX_RECORDS = 200
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
VERSION = re.compile(r"^v\d{2,3}\.\d$")


def sf_errors(status: int, code: str, message: str) -> JSONResponse:
    return error(status, [{"message": message, "errorCode": code}])  # type: ignore[arg-type]


def new_key() -> tuple[str, str]:
    """A fresh RSA key pair as PEM (private, public)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class FakeSalesforce(FakeCrm):
    client_id: str = "3MVG9-consumer-key"
    client_secret: str = "sf-secret"
    username: str = "integration@shop.example.jp"
    public_key: str = ""
    url: str = ""
    tokens: set[str] = field(default_factory=set)
    grants: Counter[str] = field(default_factory=Counter)
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    """Ids of deleted records (the Recycle Bin): deleting one again is ENTITY_IS_DELETED."""
    locked: set[str] = field(default_factory=set)
    """Ids whose deletion fails (ENTITY_IS_LOCKED, as a record in approval is)."""

    public_paths: ClassVar[frozenset[str]] = frozenset({"/services/oauth2/token"})

    def forget(self) -> None:
        self.records.clear()
        self.grants.clear()

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def _grant(self, form: dict[str, str]) -> JSONResponse:
        grant = form.get("grant_type")
        if grant == "client_credentials":
            if (
                form.get("client_id") != self.client_id
                or form.get("client_secret") != self.client_secret
            ):
                return error(
                    400,
                    {"error": "invalid_client", "error_description": "invalid client credentials"},
                )
        elif grant == JWT_GRANT:
            try:
                claims = jwt.decode(
                    form.get("assertion", ""),
                    self.public_key,
                    algorithms=["RS256"],
                    audience="https://login.salesforce.com",
                    options={"require": ["exp", "iss", "sub", "aud"]},
                )
            except jwt.PyJWTError as problem:
                return error(400, {"error": "invalid_grant", "error_description": str(problem)})
            if claims["iss"] != self.client_id or claims["sub"] != self.username:
                return error(
                    400,
                    {
                        "error": "invalid_grant",
                        "error_description": "user hasn't approved this consumer",
                    },
                )
            if claims["exp"] > time.time() + 300:
                return error(
                    400, {"error": "invalid_grant", "error_description": "expiration too far"}
                )
        else:
            return error(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
            )
        token = "00D" + secrets.token_hex(12)
        with self.lock:
            self.tokens.add(token)
            self.grants[str(grant)] += 1
        return JSONResponse(
            {
                "access_token": token,
                "instance_url": self.url,
                "id": f"{self.url}/id/00Dxx/005xx",
                "token_type": "Bearer",
                "issued_at": str(int(time.time() * 1000)),
                "signature": "c2lnbmF0dXJl",
            }
        )

    def refusal(self, request: Request) -> JSONResponse | None:
        header = request.headers.get("authorization", "")
        if header.startswith("Bearer ") and header.removeprefix("Bearer ") in self.tokens:
            return None
        return sf_errors(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def routes(self, app: FastAPI) -> None:
        @app.post("/services/oauth2/token")
        async def token(request: Request) -> JSONResponse:
            if (
                request.headers.get("content-type", "").split(";")[0]
                != "application/x-www-form-urlencoded"
            ):
                return error(
                    400, {"error": "invalid_request", "error_description": "form body expected"}
                )
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            return self._grant(form)

        @app.get("/services/data/{version}/sobjects/{sobject}/describe")
        async def describe(version: str, sobject: str) -> JSONResponse:
            if sobject not in FIELDS:
                return sf_errors(
                    404, "NOT_FOUND", f"The requested resource does not exist: {sobject}"
                )
            names = sorted(FIELDS[sobject] | CUSTOM)
            return JSONResponse(
                {
                    "name": sobject,
                    "fields": [{"name": n, "externalId": n in EXTERNAL_IDS} for n in names],
                }
            )

        @app.patch("/services/data/{version}/composite/sobjects/{sobject}/{external}")
        async def upsert(
            version: str, sobject: str, external: str, request: Request
        ) -> JSONResponse:
            if not VERSION.match(version):
                return sf_errors(404, "NOT_FOUND", "The requested resource does not exist")
            if sobject not in FIELDS:
                return sf_errors(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
            if external not in EXTERNAL_IDS:
                return sf_errors(
                    400, "INVALID_FIELD", f"Field name provided, {external} is not an External ID"
                )
            if request.headers.get("content-type", "").split(";")[0] != "application/json":
                return sf_errors(415, "UNSUPPORTED_MEDIA_TYPE", "Content type must be JSON")
            body = orjson.loads(await request.body())
            problem = self._check(body, sobject, external)
            if problem is not None:
                return problem
            return JSONResponse([self._upsert(sobject, external, r) for r in body["records"]])

        self._delete_route(app)

    def _check(self, body: Any, sobject: str, external: str) -> JSONResponse | None:
        if (
            not isinstance(body, dict)
            or set(body) - {"allOrNone", "records"}
            or "records" not in body
        ):
            return sf_errors(400, "JSON_PARSER_ERROR", "body must be {allOrNone, records}")
        if not isinstance(body.get("allOrNone", False), bool):
            return sf_errors(400, "JSON_PARSER_ERROR", "allOrNone must be a boolean")
        records = body["records"]
        if not isinstance(records, list) or not records:
            return sf_errors(400, "INVALID_FIELD", "records must be a non-empty list")
        if len(records) > MAX_RECORDS:
            return sf_errors(
                400,
                "EXCEEDED_ID_LIMIT",
                f"record limit reached. cannot submit more than {MAX_RECORDS} records into this call",
            )
        known = FIELDS[sobject] | CUSTOM
        for record in records:
            if (record.get("attributes") or {}).get("type") != sobject:
                return sf_errors(
                    400, "INVALID_TYPE", "every record needs attributes.type = " + sobject
                )
            if "Id" in record:
                return sf_errors(400, "INVALID_FIELD", "Only external ids are supported, not Id")
            if not record.get(external):
                return sf_errors(400, "MISSING_ARGUMENT", f"{external} not specified")
            for name in set(record) - {"attributes"} - known:
                return sf_errors(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}"
                )
        return None

    def _upsert(self, sobject: str, external: str, record: dict[str, Any]) -> dict[str, Any]:
        values = {k: v for k, v in record.items() if k != "attributes"}
        key = str(values[external])
        if values.get("Email") in self.bad_emails:
            return {
                "success": False,
                "errors": [
                    {
                        "statusCode": "INVALID_EMAIL_ADDRESS",
                        "message": f"Email: invalid email address: {values['Email']}",
                        "fields": ["Email"],
                    }
                ],
            }
        with self.lock:
            table = self.records.setdefault(sobject, {})
            existing = table.get(key)
            if existing is None:
                missing = [f for f in REQUIRED[sobject] if not values.get(f)]
                if missing:
                    return {
                        "success": False,
                        "errors": [
                            {
                                "statusCode": "REQUIRED_FIELD_MISSING",
                                "message": f"Required fields are missing: {missing}",
                                "fields": missing,
                            }
                        ],
                    }
                record_id = "00Q" + secrets.token_hex(6)
                table[key] = {"Id": record_id, **values}
            else:
                record_id = existing["Id"]
                existing.update(values)
            self.upserts[key] += 1
            self.applied[key] += 1
        return {"id": record_id, "success": True, "errors": [], "created": existing is None}

    def _delete_route(self, app: FastAPI) -> None:
        """``DELETE /services/data/vNN.N/composite/sobjects?ids=<id>,<id>[&allOrNone=]``:
        no body, 1..200 ids (15 or 18 characters); one DeleteResult per id, in order."""

        @app.delete("/services/data/{version}/composite/sobjects")
        async def delete(version: str, request: Request) -> JSONResponse:
            if not VERSION.match(version):
                return sf_errors(404, "NOT_FOUND", "The requested resource does not exist")
            if set(request.query_params) - {"ids", "allOrNone"} or await request.body():
                return sf_errors(400, "INVALID_FIELD", "DELETE takes ids and allOrNone only")
            ids = [i for i in request.query_params.get("ids", "").split(",") if i]
            all_or_none = request.query_params.get("allOrNone", "false")
            if not ids or len(ids) > MAX_RECORDS or all_or_none not in ("true", "false"):
                return sf_errors(400, "INVALID_FIELD", f"ids: 1 to {MAX_RECORDS} record ids")
            with self.lock:
                results = [self._delete_result(i) for i in ids]
                if all_or_none == "true" and not all(r["success"] for r in results):
                    return JSONResponse([_rolled_back(r) for r in results])
                for result in results:
                    if result["success"]:
                        self._remove(result["id"])
            return JSONResponse(results)

    def _delete_result(self, record_id: str) -> dict[str, Any]:
        def failed(code: str, message: str) -> dict[str, Any]:
            error = {"statusCode": code, "message": message, "fields": []}
            return {"id": record_id, "success": False, "errors": [error]}

        if not re.fullmatch(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?", record_id):
            return failed("MALFORMED_ID", f"malformed id {record_id}")
        if record_id in self.deleted:
            return failed("ENTITY_IS_DELETED", "entity is deleted")
        if record_id in self.locked:
            return failed("ENTITY_IS_LOCKED", "the record is locked for approval")
        if not any(r["Id"] == record_id for t in self.records.values() for r in t.values()):
            return failed("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id")
        return {"id": record_id, "success": True, "errors": []}

    def _remove(self, record_id: str) -> None:
        for table in self.records.values():
            for key in [k for k, r in table.items() if r["Id"] == record_id]:
                del table[key]
        self.deleted.add(record_id)


def _rolled_back(result: dict[str, Any]) -> dict[str, Any]:
    if not result["success"]:
        return result
    error = {"statusCode": "ALL_OR_NONE_OPERATION_ROLLED_BACK", "message": "rolled back"}
    return {"id": result["id"], "success": False, "errors": [{**error, "fields": []}]}
