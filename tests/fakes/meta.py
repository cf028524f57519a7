"""A fake Meta Marketing API: ``/{version}/{audience_id}/users`` (POST adds, DELETE removes).

Checks each request as Meta documents it: the access token (``Authorization:
Bearer`` or the ``access_token`` field), form fields ``payload`` (``schema``
of known multi-key names, ``data`` rows as long as the schema, at most 10,000,
every hashed column 64 lower-case hex or empty, EXTERN_ID in clear) and
``session`` (``session_id``, ``batch_seq`` ≥ 1, ``last_batch_flag``,
``estimated_num_total``). Answers like Meta (``audience_id``, ``session_id``,
``num_received``...; errors as ``{"error": {"message", "type", "code"}}``).

Membership is a set of people: a row matches a person by any of EMAIL,
PHONE, EXTERN_ID. A batch (session_id, batch_seq) is applied once; a resend
is counted in ``duplicates`` (and must carry the same payload).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.fakes.base import FakeServer, error

HEX64 = re.compile(r"^[0-9a-f]{64}$")
KEYS = {"EMAIL", "PHONE", "FN", "LN", "GEN", "DOBY", "DOBM", "DOBD", "CT", "ST", "ZIP"}
KEYS |= {"COUNTRY", "EXTERN_ID", "MADID", "FI"}
STRONG = ("EMAIL", "PHONE", "EXTERN_ID")
MAX_ROWS = 10_000


def meta_error(message: str, code: int = 100, status: int = 400) -> JSONResponse:
    return error(
        status,
        {"error": {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "F"}},
    )


@dataclass
class FakeMeta(FakeServer):
    token: str = "meta-token"
    audience_id: str = "23850000000000001"
    version: str = "v25.0"
    people: dict[int, dict[str, str]] = field(default_factory=dict)
    index: dict[str, int] = field(default_factory=dict)
    _next: int = 0
    batches: dict[tuple[int, int, str], str] = field(default_factory=dict)

    def extern_ids(self) -> set[str]:
        """EXTERN_IDs of the people in the audience."""
        with self.lock:
            return {p["EXTERN_ID"] for p in self.people.values() if p.get("EXTERN_ID")}

    def emails(self) -> set[str]:
        with self.lock:
            return {p["EMAIL"] for p in self.people.values() if p.get("EMAIL")}

    def _keys(self, row: dict[str, str]) -> list[str]:
        return [f"{k}:{row[k]}" for k in STRONG if row.get(k)]

    def _match(self, row: dict[str, str]) -> set[int]:
        return {self.index[k] for k in self._keys(row) if k in self.index}

    def _forget(self, person: int) -> None:
        for key in self._keys(self.people.pop(person)):
            if self.index.get(key) == person:
                del self.index[key]

    def _apply(self, method: str, rows: list[dict[str, str]]) -> None:
        for row in rows:
            found = self._match(row)
            if method == "DELETE":
                for person in found:
                    self._forget(person)
                continue
            values = {k: v for k, v in row.items() if v}
            if found:
                person = min(found)
                values = {**self.people[person], **values}
                self._forget(person)
            else:
                person = self._next = self._next + 1
            self.people[person] = values
            self.index.update(dict.fromkeys(self._keys(values), person))

    def build(self) -> FastAPI:
        app = FastAPI()

        @app.get("/{version}/{audience_id}")
        async def audience(version: str, audience_id: str, request: Request) -> JSONResponse:
            if request.headers.get("authorization") != f"Bearer {self.token}":
                return meta_error("Invalid OAuth access token.", code=190, status=401)
            if version != self.version or audience_id != self.audience_id:
                return meta_error(
                    f"Unsupported get request. Object with ID '{audience_id}' does not exist"
                )
            return JSONResponse(
                {
                    "id": self.audience_id,
                    "name": "fake audience",
                    "approximate_count_lower_bound": len(self.people),
                }
            )

        @app.api_route("/{version}/{audience_id}/users", methods=["POST", "DELETE"])
        async def users(version: str, audience_id: str, request: Request) -> JSONResponse:
            body = await request.body()
            if (
                request.headers.get("content-type", "").split(";")[0]
                != "application/x-www-form-urlencoded"
            ):
                return meta_error("payload must be form-encoded")
            form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            token = form.get("access_token") or request.headers.get(
                "authorization", ""
            ).removeprefix("Bearer ")
            if token != self.token:
                return meta_error("Invalid OAuth access token.", code=190, status=401)
            if version != self.version or audience_id != self.audience_id:
                return meta_error(f"(#100) Unknown custom audience {audience_id}")
            try:
                payload = orjson.loads(form["payload"])
                session = orjson.loads(form["session"])
            except (KeyError, orjson.JSONDecodeError) as problem:
                return meta_error(f"(#100) payload and session must be JSON: {problem}")
            problem = self._check(payload, session)
            if problem:
                return meta_error(f"(#100) {problem}")
            schema = payload["schema"]
            rows = [dict(zip(schema, r, strict=True)) for r in payload["data"]]
            key = (int(session["session_id"]), int(session["batch_seq"]), request.method)
            digest = hashlib.sha256(form["payload"].encode()).hexdigest()
            with self.lock:
                seen = self.batches.get(key)
                if seen is not None and seen != digest:
                    return meta_error("(#100) batch_seq resent with a different payload")
                label = f"{key[0]}:{key[1]}:{key[2]}"
                if seen is None:
                    self.batches[key] = digest
                    self._apply(request.method, rows)
                    self.applied[label] += 1
                else:
                    self.duplicates[label] += 1
            return JSONResponse(
                {
                    "audience_id": audience_id,
                    "session_id": str(session["session_id"]),
                    "num_received": len(rows),
                    "num_invalid_entries": 0,
                    "invalid_entry_samples": {},
                }
            )

        return app

    @staticmethod
    def _check(payload: Any, session: Any) -> str | None:
        if not isinstance(payload, dict) or set(payload) - {"schema", "data", "is_raw"}:
            return "payload must be {schema, data}"
        schema, data = payload.get("schema"), payload.get("data")
        if not isinstance(schema, list) or not schema or set(schema) - KEYS:
            return f"unknown schema {schema!r}"
        if len(set(schema)) != len(schema):
            return "schema repeats a key"
        if not isinstance(data, list) or not data:
            return "data must be a non-empty list"
        if len(data) > MAX_ROWS:
            return f"at most {MAX_ROWS} records per call, got {len(data)}"
        for row in data:
            if not isinstance(row, list) or len(row) != len(schema):
                return "each data row must have one value per schema key"
            for key, value in zip(schema, row, strict=True):
                if not isinstance(value, str):
                    return f"{key} must be a string"
                if key != "EXTERN_ID" and value and not HEX64.match(value):
                    return f"{key} must be SHA-256 hex (64 lower-case hex), got {value!r}"
        expected = {"session_id", "batch_seq", "last_batch_flag", "estimated_num_total"}
        if not isinstance(session, dict) or set(session) != expected:
            return f"session must have exactly {sorted(expected)}"
        if not isinstance(session["session_id"], int) or session["session_id"] <= 0:
            return "session_id must be a positive integer"
        if not isinstance(session["batch_seq"], int) or session["batch_seq"] < 1:
            return "batch_seq starts at 1"
        if not isinstance(session["last_batch_flag"], bool):
            return "last_batch_flag must be a boolean"
        if not isinstance(session["estimated_num_total"], int):
            return "estimated_num_total must be an integer"
        return None
