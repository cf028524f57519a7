"""Meta custom audiences: ``POST`` / ``DELETE /{version}/{audience_id}/users``.

Each request is form-encoded with ``payload`` (``{"schema": [...], "data":
[[...]]}``, at most 10,000 rows, built by ``connectors.destinations.meta``)
and ``session`` (``{"session_id", "batch_seq", "last_batch_flag",
"estimated_num_total"}``), the Marketing API's mechanism for tracking which
batches of an upload have arrived. A plan uses one session for its removes
and another for its adds; the session ids are derived from the plan id and
kept in the journal, and a chunk's ``batch_seq`` is its position in its
session, so a resumed plan resends a lost batch under the same
(session_id, batch_seq) and Meta can recognise it. The access token goes in
an ``Authorization: Bearer`` header (the Graph API accepts it there as well
as in the ``access_token`` field), which keeps it out of logged bodies.

Errors: Meta answers ``{"error": {"message", "type", "code",
"error_subcode", "error_user_msg", "is_transient", "fbtrace_id"}}``. Besides
429/5xx, ``is_transient: true`` and the throttling codes (4, 17, 32, 613,
80003) are retried.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson

from connectors.destinations import meta as formats
from connectors.destinations.members import Member
from connectors.destinations.push.base import Changes, Layout, Platform, Run
from connectors.destinations.push.config import Meta
from connectors.destinations.push.http import Transport

#: Graph API error codes that mean "slow down" even when sent with HTTP 400.
THROTTLING_CODES = frozenset({1, 2, 4, 17, 32, 341, 613, 80003})
#: Columns Meta can find a person by on their own (hash or external id).
_STRONG = ("EMAIL", "PHONE", "EXTERN_ID")


def session_id(plan_id: str, action: str) -> int:
    """A positive 63-bit session id, stable for (plan, action)."""
    base = int(plan_id[:15], 16)
    return base * 2 + (1 if action == "add" else 0)


class MetaPlatform(Platform):
    """Push protocol of a Meta customer-file custom audience."""

    name = "meta"
    max_chunk = formats.MAX_BATCH

    def __init__(self, destination: Meta) -> None:
        self.destination = destination

    def row(self, member: Member) -> Any | None:
        return formats.row(member) if formats.matchable(member) else None

    def exclusion(self, member: Member) -> str:
        return formats.exclusion(member) or super().exclusion(member)

    def match_keys(self, row: Any) -> set[str]:
        return {
            f"{column}:{value}"
            for column, value in zip(formats.SCHEMA, row, strict=True)
            if column in _STRONG and value
        }

    def items(self, rows: list[Any]) -> list[str]:
        return [
            column
            for i, column in enumerate(formats.SCHEMA)
            if any(i < len(row) and row[i] for row in rows)
        ]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.destination.secret('access_token')}"}

    def _error(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            return {}
        error = body.get("error") if isinstance(body, dict) else None
        return error if isinstance(error, dict) else {}

    def error_message(self, response: httpx.Response) -> str:
        error = self._error(response)
        if not error:
            return super().error_message(response)
        parts = [str(error.get("message", ""))]
        if error.get("error_user_msg"):
            parts.append(str(error["error_user_msg"]))
        code = f"code {error.get('code')}" + (
            f"/{error['error_subcode']}" if error.get("error_subcode") else ""
        )
        return f"{' — '.join(p for p in parts if p)} ({code})"

    def transient(self, response: httpx.Response) -> bool:
        error = self._error(response)
        return bool(error.get("is_transient")) or error.get("code") in THROTTLING_CODES

    def _path(self) -> str:
        return f"/{self.destination.api_version}/{self.destination.audience_id}/users"

    def layout(self, changes: Changes) -> tuple[Layout, dict[str, Any]]:
        chunks, _ = super().layout(changes)
        return chunks, {"schema": list(formats.SCHEMA)}

    def push(self, run: Run) -> None:
        schema = run.plan.state.get("schema", list(formats.SCHEMA))
        for action, method in (("remove", formats.REMOVE_METHOD), ("add", formats.ADD_METHOD)):
            chunks = run.of(action)
            total = sum(len(c.keys) for c in chunks)
            for seq, chunk in enumerate(chunks, start=1):
                if chunk.done:
                    continue
                session = {
                    "session_id": session_id(run.plan.id, action),
                    "batch_seq": seq,
                    "last_batch_flag": seq == len(chunks),
                    "estimated_num_total": total,
                }
                payload = {"schema": schema, "data": run.rows(chunk)}
                run.transport.request(
                    method,
                    self._path(),
                    what=f"{action} batch {seq} of {len(chunks)}",
                    data={
                        "payload": orjson.dumps(payload).decode(),
                        "session": orjson.dumps(session).decode(),
                    },
                )
                run.done(chunk)

    def check(self, transport: Transport) -> str:
        response = transport.request(
            "GET",
            f"/{self.destination.api_version}/{self.destination.audience_id}",
            what="audience lookup",
            params={"fields": "id,name,approximate_count_lower_bound"},
        )
        body = response.json()
        return f"custom audience {body.get('id')} {body.get('name', '')!r}".strip()
