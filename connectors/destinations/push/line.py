"""LINE Messaging API audiences for uploading user ids (by JSON).

- Create: ``POST /v2/bot/audienceGroup/upload`` ``{"description",
  "isIfaAudience": false, "uploadDescription", "audiences": [...]}`` →
  ``{"audienceGroupId", ...}``.
- Add: ``PUT /v2/bot/audienceGroup/upload`` ``{"audienceGroupId",
  "uploadDescription", "audiences": [{"id": "U..."}]}``, at most 10,000 ids
  per request. Adding an id the group holds already changes nothing, so a
  resent chunk cannot apply twice.
- Delete: ``DELETE /v2/bot/audienceGroup/{audienceGroupId}``.
- Find: ``GET /v2/bot/audienceGroup/list?description=...``.

LINE has no way to remove one user from an audience. Decision: a plan with
removes (or the first sync, when there is no group yet) **rebuilds**: it
creates a new group, uploads the whole current membership to it, records the
new group id, and then deletes the old group. A plan with only adds uploads
them to the current group. The group id lives with the synced member set and
changes only when a rebuild completes, so messages sent in between still go
to a complete (if slightly stale) audience. Campaigns that target the group
by id must pick up the new id (``cdp destinations status`` shows it).

Creating a group is not idempotent. Its description carries the plan id, and
before creating one a (resumed) plan looks for a group with that description,
so a crash after LINE created the group but before the journal recorded it
does not leave a second group behind.
"""

from __future__ import annotations

from typing import Any

import httpx

from cdp.errors import DestinationRejectedError, DestinationUnavailableError
from connectors.destinations import line as formats
from connectors.destinations.members import Member
from connectors.destinations.push.base import Changes, Layout, Platform, Run, cut
from connectors.destinations.push.config import Line
from connectors.destinations.push.http import Transport

UPLOAD = "/v2/bot/audienceGroup/upload"


class LinePlatform(Platform):
    """Push protocol of a LINE upload audience."""

    name = "line"
    max_chunk = formats.MAX_IDS_PER_REQUEST

    def __init__(self, destination: Line) -> None:
        self.destination = destination

    def row(self, member: Member) -> Any | None:
        ids = formats.messaging_audience([member])
        return ids[0]["id"] if ids else None

    def exclusion(self, member: Member) -> str:
        return formats.exclusion(member) or super().exclusion(member)

    def match_keys(self, row: Any) -> set[str]:
        return {str(row)}

    def items(self, rows: list[Any]) -> list[str]:
        return ["LINE user id"] if rows else []

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.destination.secret('channel_access_token')}"}

    def error_message(self, response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return super().error_message(response)
        details = "; ".join(
            f"{d.get('property', '')}: {d.get('message', '')}" for d in body.get("details") or []
        )
        message = str(body.get("message", "")) or super().error_message(response)
        return f"{message} ({details})" if details else message

    def layout(self, changes: Changes) -> tuple[Layout, dict[str, Any]]:
        extra = changes.synced_extra
        group = extra.get("audience_group_id") or self.destination.audience_group_id
        size = changes.chunk_size
        if changes.removes or group is None:
            rebuild = {"mode": "rebuild", "old_group": group}
            return cut("add", sorted(changes.current), size), rebuild
        return cut("add", changes.adds, size), {"mode": "add", "group": group}

    def _description(self, run: Run) -> str:
        prefix = self.destination.description or f"cdp {run.segment}"
        return f"{prefix[:100]} {run.plan.id}"

    def _find(self, transport: Transport, description: str) -> int | None:
        response = transport.request(
            "GET",
            "/v2/bot/audienceGroup/list",
            what="audience lookup",
            params={"description": description, "page": "1", "size": "40"},
        )
        for group in response.json().get("audienceGroups") or []:
            if group.get("description") == description:
                return int(group["audienceGroupId"])
        return None

    def _create(self, run: Run) -> int:
        # Not idempotent: before each attempt, look for the group a lost answer created.
        description = self._description(run)
        limit = run.transport.policy.max_attempts
        for attempt in range(limit):
            found = self._find(run.transport, description)
            if found is not None:
                return found
            try:
                response = run.transport.request(
                    "POST",
                    UPLOAD,
                    what="audience creation",
                    json={
                        "description": description,
                        "isIfaAudience": False,
                        "uploadDescription": f"plan {run.plan.id}",
                        "audiences": [],
                    },
                    attempts=1,
                )
                break
            except DestinationUnavailableError:
                if attempt + 1 == limit:
                    raise
                run.transport.pause(attempt)
        group = response.json().get("audienceGroupId")
        if not isinstance(group, int):
            raise DestinationRejectedError(
                f"destination {self.destination.name!r} (line): audience creation answered "
                f"without an audienceGroupId: {response.text[:200]}"
            )
        return group

    def push(self, run: Run) -> None:
        state = run.plan.state
        if state.get("mode") == "rebuild" and state.get("group") is None:
            state["group"] = self._create(run)
            run.save()
        group = state["group"]
        chunks = run.of("add")
        for seq, chunk in enumerate(chunks, start=1):
            if chunk.done:
                continue
            run.transport.request(
                "PUT",
                UPLOAD,
                what=f"add chunk {seq} of {len(chunks)}",
                json={
                    "audienceGroupId": group,
                    "uploadDescription": f"plan {run.plan.id} chunk {chunk.index}",
                    "audiences": [{"id": user_id} for user_id in run.rows(chunk)],
                },
            )
            run.done(chunk)
        old = state.get("old_group")
        if state.get("mode") == "rebuild" and old is not None and not state.get("old_deleted"):
            try:
                run.transport.request(
                    "DELETE", f"/v2/bot/audienceGroup/{old}", what="old audience deletion"
                )
            except DestinationRejectedError as error:
                if "HTTP 404" not in str(error):  # deleted already (by a resend, or by hand)
                    raise
            state["old_deleted"] = True
            run.save()
        state["synced_extra"] = {"audience_group_id": group}

    def check(self, transport: Transport) -> str:
        group = self.destination.audience_group_id
        if group is None:
            response = transport.request(
                "GET", "/v2/bot/audienceGroup/list", what="audience list", params={"page": "1"}
            )
            total = response.json().get("totalCount", 0)
            return f"channel reachable; {total} audience group(s)"
        response = transport.request("GET", f"/v2/bot/audienceGroup/{group}", what="audience")
        body = response.json().get("audienceGroup", {})
        return f"audience group {group} {body.get('description', '')!r} {body.get('status', '')}"
