"""Server-side stamping of a raw event, the Segment way.

``receivedAt`` is when the platform accepted the event. When the producer sent
both ``sentAt`` and ``originalTimestamp``, its clock skew is removed:
``timestamp = receivedAt − (sentAt − originalTimestamp)``. An explicit
``timestamp`` (a historical import) is kept as given; with neither, the
``originalTimestamp`` or else ``receivedAt`` is the event time.
A missing ``messageId`` becomes a content hash, so importing the same file
twice stores its events once.

Pure: the caller passes the receive time; nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.errors import EventValidationError, FieldProblem


def parse_time(value: object) -> datetime | None:
    """An ISO-8601 string (or datetime) as an aware datetime; naive means UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def content_message_id(raw: dict[str, Any]) -> str:
    """A deterministic messageId from the event's content (for producers that send none)."""
    try:
        data = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as error:  # e.g. nested deeper than orjson writes (254)
        raise EventValidationError(
            [FieldProblem("", f"cannot be stored as JSON: {error}")]
        ) from None
    digest = hashlib.sha256(data).hexdigest()
    return f"auto-{digest[:32]}"


def stamp(raw: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    """``raw`` with ``messageId``, ``receivedAt`` and corrected ``timestamp`` filled in.

    Returns ``raw`` itself (the same object) when it already has all three, so
    callers can keep the producer's exact bytes; otherwise a new dict. Values
    that are present but unparseable are left alone so that validation
    reports them with their field name.
    """
    if raw.get("messageId") and "receivedAt" in raw and "timestamp" in raw:
        return raw
    out = dict(raw)
    if not out.get("messageId"):
        out["messageId"] = content_message_id(raw)
    received = parse_time(out.get("receivedAt")) or received_at
    if "receivedAt" not in out:
        out["receivedAt"] = _iso(received)
    if "timestamp" in out:
        return out
    sent = parse_time(out.get("sentAt"))
    original = parse_time(out.get("originalTimestamp"))
    if sent is not None and original is not None:
        try:
            out["timestamp"] = _iso(received - (sent - original))
        except OverflowError:
            raise EventValidationError(
                [
                    FieldProblem(
                        "sentAt", "sentAt - originalTimestamp puts the event time out of range"
                    )
                ]
            ) from None
    else:
        out["timestamp"] = _iso(original or received)
    return out
