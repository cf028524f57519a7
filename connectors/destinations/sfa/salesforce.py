"""Salesforce: leads or contacts upserted by an external id through the REST API.

- **Auth**: OAuth 2.0 at ``<base_url>/services/oauth2/token`` (form-encoded),
  either the client credentials flow (``grant_type=client_credentials`` with
  the connected app's consumer key and secret; ``base_url`` is the org's My
  Domain) or the JWT bearer flow
  (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``, an RS256
  assertion with ``iss`` = consumer key, ``sub`` = username, ``aud`` =
  login/test.salesforce.com, ``exp`` three minutes ahead). The answer's
  ``instance_url`` is where the API calls go. Neither flow has a refresh
  token: on ``401 INVALID_SESSION_ID`` a new token is fetched and the request
  sent again, once (``SalesforceAuth``, an httpx auth flow).
- **Upsert**: ``PATCH /services/data/vXX.X/composite/sobjects/{Lead|Contact}/
  {external id field}`` with ``{"allOrNone": false, "records": [...]}``, at
  most 200 records, each with ``attributes.type``. The answer is 200 with one
  UpsertResult per record, in order: ``success`` false carries ``errors``
  (``statusCode``, ``message``, ``fields``), kept as that record's error.
- **Delete** (an erasure): ``DELETE /services/data/vXX.X/composite/sobjects?ids=
  <id>,<id>&allOrNone=false``, at most 200 record ids (the ``id`` each
  UpsertResult answered); one DeleteResult per id, in order.
  ``ENTITY_IS_DELETED`` and ``INVALID_CROSS_REFERENCE_KEY`` mean the record
  is gone already. Deleted records sit in the org's Recycle Bin (15 days)
  until it is emptied.
- **Limits**: ``403 REQUEST_LIMIT_EXCEEDED`` is retried with backoff when it is
  a concurrency limit; the daily ``TotalRequests`` limit stops the push at
  once (the plan stays pending; run it again tomorrow).
- **check**: ``GET .../sobjects/{object}/describe``: the object, the external
  id field (``externalId``) and every mapped field exist.
"""

from __future__ import annotations

import math
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import httpx
import orjson

from cdp.errors import ConfigError, DestinationRejectedError, DestinationUnavailableError
from connectors.destinations.push.base import Run
from connectors.destinations.push.http import Transport
from connectors.destinations.push.journal import Chunk
from connectors.destinations.sfa.base import Deleted, Sent, SfaPlatform, describe
from connectors.destinations.sfa.config import Salesforce

TOKEN_PATH = "/services/oauth2/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_RECORDS = 200
#: DeleteResult codes of a record that is not there any more: deleted already.
GONE = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"})
JWT_LIFETIME = 180


def _body(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text


def error_code(response: httpx.Response) -> str:
    """The ``errorCode`` of a REST API error answer (a list of errors), or ""."""
    body = _body(response)
    if isinstance(body, list) and body and isinstance(body[0], dict):
        return str(body[0].get("errorCode", ""))
    return ""


def _errors(result: dict[str, Any]) -> str:
    """A failed SaveResult/DeleteResult's errors as one line."""
    errors = result.get("errors") or [{}]
    return "; ".join(describe(e, ("statusCode", "message")) for e in errors)


class SalesforceAuth(httpx.Auth):
    """Fetches a token before the first call and again on ``INVALID_SESSION_ID``;
    sends every API call to the token's ``instance_url``."""

    requires_response_body = True

    def __init__(self, destination: Salesforce) -> None:
        self.destination = destination
        self.token: str | None = None
        self.instance_url: httpx.URL | None = None
        self.fetched = 0

    def _assertion(self) -> str:
        import jwt  # noqa: PLC0415  (PyJWT, only for this flow)

        d = self.destination
        if d.private_key_file:
            try:
                key = Path(d.private_key_file).expanduser().read_text(encoding="utf-8")
            except OSError as error:
                raise ConfigError(
                    f"destination {d.name!r}: private_key_file {d.private_key_file}: {error}"
                ) from None
        else:
            key = d.secret("private_key")
        claims = {
            "iss": d.secret("client_id"),
            "sub": d.username,
            "aud": d.audience,
            "exp": int(time.time()) + JWT_LIFETIME,
        }
        try:
            return jwt.encode(claims, key, algorithm="RS256")
        except (ValueError, TypeError) as error:
            raise ConfigError(
                f"destination {d.name!r}: private_key is not a PEM RSA key: {error}"
            ) from None

    def token_request(self) -> httpx.Request:
        """The token request of the configured flow."""
        d = self.destination
        if d.auth == "jwt":
            form = {"grant_type": JWT_GRANT, "assertion": self._assertion()}
        else:
            form = {
                "grant_type": "client_credentials",
                "client_id": d.secret("client_id"),
                "client_secret": d.secret("client_secret"),
            }
        return httpx.Request("POST", d.base_url + TOKEN_PATH, data=form)

    def accept(self, response: httpx.Response) -> None:
        """Keep the token of a token answer; a clear error otherwise."""
        self.fetched += 1
        body = _body(response)
        d = self.destination
        if response.status_code >= 500 or response.status_code == 429:
            raise DestinationUnavailableError(
                f"destination {d.name!r} (salesforce): token endpoint answered "
                f"HTTP {response.status_code}; run the push again to resume"
            )
        if not response.is_success or not isinstance(body, dict) or "access_token" not in body:
            raise DestinationRejectedError(
                f"destination {d.name!r} (salesforce) could not get an access token "
                f"({d.auth} flow, POST {d.base_url}{TOKEN_PATH}): HTTP {response.status_code}: "
                f"{describe(body, ('error', 'error_description'))}"
            )
        self.token = str(body["access_token"])
        self.instance_url = httpx.URL(str(body.get("instance_url") or d.base_url))

    def _prepare(self, request: httpx.Request) -> None:
        assert self.token is not None and self.instance_url is not None
        base = self.instance_url
        request.url = request.url.copy_with(scheme=base.scheme, host=base.host, port=base.port)
        request.headers["Host"] = request.url.netloc.decode("ascii")
        request.headers["Authorization"] = f"Bearer {self.token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.token is None:
            self.accept((yield self.token_request()))
        self._prepare(request)
        response = yield request
        if response.status_code == 401 and error_code(response) == "INVALID_SESSION_ID":
            self.accept((yield self.token_request()))
            self._prepare(request)
            yield request


class SalesforcePlatform(SfaPlatform):
    """Push protocol of Salesforce (sObject Collections upsert)."""

    name = "salesforce"
    max_chunk = MAX_RECORDS
    max_delete = MAX_RECORDS

    def __init__(self, destination: Salesforce) -> None:
        super().__init__(destination)
        self.sf = destination
        self._auth = SalesforceAuth(destination)

    def auth(self) -> httpx.Auth:
        return self._auth

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json"}

    def error_message(self, response: httpx.Response) -> str:
        return describe(_body(response))

    def transient(self, response: httpx.Response) -> bool:
        return error_code(response) in ("REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE")

    def retry_hint(self, response: httpx.Response) -> float | None:
        if error_code(response) == "REQUEST_LIMIT_EXCEEDED" and "TotalRequests" in response.text:
            return math.inf  # the rolling 24-hour limit: retrying now cannot help
        return None

    def _path(self, tail: str) -> str:
        return f"/services/data/{self.sf.api_version}/{tail}"

    def _results(self, response: httpx.Response, sent: int, what: str) -> list[dict[str, Any]]:
        """A collection's answer: one result per record sent, in order, or an error."""
        results = _body(response)
        if not isinstance(results, list) or len(results) != sent:
            raise DestinationRejectedError(
                f"destination {self.sf.name!r} (salesforce): {what} answered "
                f"{len(results) if isinstance(results, list) else 'no'} results "
                f"for {sent} records"
            )
        return results

    def send(self, run: Run, chunk: Chunk, total: int) -> Sent:
        rows = run.rows(chunk)
        body = {
            "allOrNone": False,
            "records": [{"attributes": {"type": self.sf.object}, **row} for row in rows],
        }
        response = run.transport.request(
            "PATCH",
            self._path(f"composite/sobjects/{self.sf.object}/{self.sf.external_id_field}"),
            what=f"upsert chunk {chunk.index + 1} of {total}",
            json=body,
        )
        results = self._results(response, len(rows), f"upsert chunk {chunk.index + 1}")
        failed: dict[str, str] = {}
        ids: dict[str, str] = {}
        for key, result in zip(chunk.keys, results, strict=True):
            if not result.get("success"):
                failed[key] = _errors(result)
            elif result.get("id"):
                ids[key] = str(result["id"])
        return Sent(failed, ids)

    def delete(self, transport: Transport, record_ids: list[str]) -> Deleted:
        response = transport.request(
            "DELETE",
            self._path("composite/sobjects"),
            what=f"delete {len(record_ids)} records",
            params={"ids": ",".join(record_ids), "allOrNone": "false"},
        )
        results = self._results(response, len(record_ids), "delete")
        done: list[str] = []
        refused: dict[str, str] = {}
        for record_id, result in zip(record_ids, results, strict=True):
            codes = {e.get("statusCode") for e in result.get("errors") or []}
            if result.get("success") or codes & GONE:
                done.append(record_id)
            else:
                refused[record_id] = _errors(result)
        return Deleted(done, refused)

    def check(self, transport: Transport) -> str:
        response = transport.request(
            "GET", self._path(f"sobjects/{self.sf.object}/describe"), what="describe"
        )
        fields = {f["name"]: f for f in _body(response).get("fields", [])}
        key = fields.get(self.sf.external_id_field)
        if key is None or not key.get("externalId"):
            raise ConfigError(
                f"destination {self.sf.name!r}: {self.sf.object}.{self.sf.external_id_field} "
                "is not an External ID field in Salesforce"
            )
        missing = sorted(f for f in [*self.sf.mapping(), *self.sf.constants] if f not in fields)
        if missing:
            raise ConfigError(
                f"destination {self.sf.name!r}: {self.sf.object} has no field "
                f'{", ".join(missing)} (create it, or map it to "" in [{self.sf.name}.fields])'
            )
        return (
            f"{self.sf.object} upsert by {self.sf.external_id_field} at "
            f"{self._auth.instance_url}; {len(self.sf.mapping()) + len(self.sf.constants)} "
            "fields mapped"
        )
