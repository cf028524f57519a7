"""The response bodies of the read API (``cdp.http.read``), as its OpenAPI schema
documents them: the profile, the segment catalog, a page of a segment's members,
and the error body every 4xx/5xx shares (``ERRORS``, the routes' documented
error responses).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ErrorBody(BaseModel):
    """Every 4xx/5xx of every route (``cdp.http.errors``); some routes add keys."""

    success: bool = False
    error: str = Field(description="What is wrong, in words.")
    status: int = Field(description="The HTTP status code, repeated.")


class Lead(BaseModel):
    score_at_last_activity: float | None = Field(
        description="The score at the customer's last own event (the shop's contacts "
        "are not activity: docs/segments.md)."
    )
    score_now: float | None = Field(description="Decayed to the log clock.")
    as_of: datetime | None = Field(description="The log clock: the latest event time.")
    lifecycle_stage: str | None
    funnel_stage: str | None
    hot_now: bool | None
    explanation: list[dict[str, Any]] = Field(
        description="The contributions that weigh most: rule, day, events, points, "
        "decayed_points, message_ids."
    )


class Merge(BaseModel):
    from_customer: str
    into_customer: str
    via: str | None
    reason: str | None
    message_id: str | None
    offset: int | None
    at: datetime | None


class RecentEvent(BaseModel):
    offset: int
    timestamp: datetime
    type: str
    event: str | None
    message_id: str
    source: str | None


class ProfileBody(BaseModel):
    """``GET /v1/profiles/...``: decimals are strings, times ISO 8601."""

    customer_id: str = Field(description="The live customer (a merged-away id resolves here).")
    matched: str = Field(description="The normalised identifier that was looked up.")
    identifiers: list[str]
    profile: dict[str, Any] = Field(
        description="The `profiles` view's columns: `last_seen` is the customer's own "
        "activity, `last_contacted_at` and `contacts_7d`/`_30d`/`_90d` the shop's contacts."
    )
    lead: Lead
    segments: list[str] = Field(description="Segments at their last recorded run.")
    merges: list[Merge]
    recent_events: list[RecentEvent]
    freshness: dict[str, Any] = Field(
        description="checkpoint_offset: events folded into the profile (null when "
        "unknown: Kafka mode); log_offset: the last event in the log."
    )


class SegmentSummary(BaseModel):
    name: str
    description: str
    kind: str
    last_count: int | None = Field(description="Members at the last recorded run.")
    last_run_at: datetime | None


class SegmentList(BaseModel):
    segments: list[SegmentSummary]


class SegmentPage(BaseModel):
    """One page of a segment's members, in customer-id order."""

    name: str
    count: int = Field(description="Members now (all pages).")
    members: list[str]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
    params: dict[str, Any]


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Malformed identifier or parameter."),
        (401, "No read token, an unknown or a revoked one."),
        (403, "The token lacks the scope."),
        (404, "Nobody has this identifier / no such segment."),
        (503, "Lookups are not available in this mode."),
    )
}
