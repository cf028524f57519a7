"""Server-side stamping of a raw event, the Segment way.

``receivedAt`` is when the platform accepted the event. When the producer sent
both ``sentAt`` and ``originalTimestamp``, its clock skew is removed:
``timestamp = receivedAt − (sentAt − originalTimestamp)``. An explicit
``timestamp`` (a historical import) is kept as given; with neither, the
``originalTimestamp`` or else ``receivedAt`` is the event time.

A missing ``messageId`` is the door's to choose and pass in (``message_id``):
HTTP doors give every message its own id, as Segment does, so identical
events sent twice are two events; file imports give
``content_message_id(raw, occurrence)``, a hash of the event and how many
identical events came before it in the same file, so re-importing a file
stores nothing new while two identical lines stay two events. Without one,
the content alone is hashed (the id of a first occurrence).

Pure: the caller passes the receive time and any id; nothing here reads a
clock or draws a random number.
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


def lacks_message_id(raw: dict[str, Any]) -> bool:
    """True when the producer sent no ``messageId`` (absent, ``null`` or ``""``).

    Anything else, a number say, is the producer's and validation judges it.
    """
    message_id = raw.get("messageId")
    return message_id is None or message_id == ""


def content_message_id(raw: dict[str, Any], occurrence: int = 1) -> str:
    """A deterministic messageId from the event's content (for producers that send none).

    ``occurrence`` is 1 for the first event of a file with this content, 2 for
    the next identical one, and so on: two identical lines of one file are two
    events, while the same file imported again (under any name, in any order)
    gives the same ids. A first occurrence's id is the content's hash alone,
    the id every import gave before occurrences were counted.
    """
    try:
        data = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as error:  # e.g. nested deeper than orjson writes (254)
        raise EventValidationError(
            [FieldProblem("", f"cannot be stored as JSON: {error}")]
        ) from None
    if occurrence != 1:
        data += b"\n#%d" % occurrence  # after the JSON: no content can end like this
    digest = hashlib.sha256(data).hexdigest()
    return f"auto-{digest[:32]}"


def stamp(
    raw: dict[str, Any], received_at: datetime, message_id: str | None = None
) -> dict[str, Any]:
    """``raw`` with ``messageId``, ``receivedAt`` and corrected ``timestamp`` filled in.

    ``message_id`` is used when the producer sent none (else the content hash).
    Returns ``raw`` itself (the same object) when it already has all three, so
    callers can keep the producer's exact bytes; otherwise a new dict. Values
    that are present but unparseable are left alone so that validation
    reports them with their field name.
    """
    missing_id = lacks_message_id(raw)
    if not missing_id and "receivedAt" in raw and "timestamp" in raw:
        return raw
    out = dict(raw)
    if missing_id:
        out["messageId"] = message_id or content_message_id(raw)
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
