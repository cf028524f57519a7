"""LINE Messaging API webhooks: verify ``X-Line-Signature``, map webhook events.

Signature (LINE Developers, Messaging API reference, "Signature validation",
https://developers.line.biz/en/reference/messaging-api/#signature-validation):
the digest of the request body under HMAC-SHA256 with the channel secret as
the key, base64-encoded, in the ``x-line-signature`` header.

The body is ``{"destination": <bot user id>, "events": [...]}``. When a
webhook URL is registered or tested in the LINE Developers console, LINE sends
an empty ``events`` list: that maps to no events and no error.

Event mapping (each event → at most one raw event):

- ``follow`` → **Consent Updated** ``{"consents": {"line": true}}`` (the
  friend added or unblocked the account: LINE messages are now allowed);
- ``unfollow`` → **Consent Updated** ``{"consents": {"line": false}}``;
- ``message`` → **Message Received**: ``channel`` ``line``,
  ``channel_user_id`` ``source.userId``, ``message_id`` ``message.id``,
  ``message_type`` ``message.type``; ``text`` only for text messages;
- ``postback`` → track **LINE Postback** with ``data`` (and ``params`` from a
  date-time picker) and ``channel_user_id``.

Identity: every event has ``anonymousId`` ``line-{source.userId}``, the
convention of the demo generator, and names the LINE user id itself as an
identifier: Message Received as its ``channel_user_id``, the others (follow,
unfollow, postback) as ``context.traits.line_user_id``. So the identity
projection links ``line-{id}`` to ``line:{id}`` from the first event, even for
a friend who follows and never writes, and a linked account (ID連携, an
identify with ``line_user_id``) ties both to the customer: erasing that
customer by email reaches the follow too (docs/privacy.md).

``messageId`` is ``line-{webhookEventId}`` (LINE's own dedup id, the same on
redelivery), else ``line-h-`` plus a hash of the event. ``timestamp`` is the event's epoch milliseconds.

Events that give no raw event come back as ``Skipped`` with the reason: an
event without ``source.userId`` (a group or room member who has not
consented to share it), other event types (join, leave, beacon, unsend,
memberJoined, ...), and events missing a field the mapping needs.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, Final

from cdp.errors import UnmappableError
from connectors.sources.webhooks import (
    Mapped,
    RawEvent,
    Skipped,
    check_digest,
    digest_from_base64,
    drop_none,
    header_value,
    hmac_sha256,
    iso_from_millis,
    lookup,
    need,
    need_id,
    need_list,
    optional_id,
    optional_text,
    require_secret,
    track,
)

HEADER: Final = "X-Line-Signature"
POSTBACK_EVENT: Final = "LINE Postback"
EVENT_TYPES: Final = ("follow", "unfollow", "message", "postback")
_PER_DELIVERY: Final = frozenset({"replyToken", "deliveryContext"})


def verify(body: bytes, signature_header: str | None, channel_secret: str) -> None:
    """Check ``X-Line-Signature`` against the raw ``body``; ``AuthError`` saying what is wrong."""
    key = require_secret(channel_secret, "LINE channel secret")
    given = digest_from_base64(header_value(signature_header, HEADER), HEADER)
    check_digest(hmac_sha256(key, body), given, HEADER)


def signature(body: bytes, channel_secret: str) -> str:
    """The ``X-Line-Signature`` value LINE would send for ``body`` (tests, replays)."""
    key = require_secret(channel_secret, "LINE channel secret")
    return base64.b64encode(hmac_sha256(key, body)).decode("ascii")


def to_events(payload: dict[str, Any]) -> Mapped:
    """Raw events for a verified webhook body, and the events skipped with their reasons.

    ``UnmappableError`` only when the body itself is not a LINE webhook body.
    """
    if not isinstance(payload, dict):
        raise UnmappableError("LINE webhook body must be a JSON object")
    try:
        events = need_list(payload, "events")
    except UnmappableError as error:
        raise UnmappableError(f"LINE webhook body: {error}") from None
    out: list[RawEvent] = []
    skipped: list[Skipped] = []
    for i, event in enumerate(events):
        location = f"events[{i}]"
        try:
            out.append(_event(event))
        except UnmappableError as error:
            skipped.append(Skipped(location, str(error), event))
    return Mapped(out, skipped)


def _event(event: Any) -> RawEvent:
    if not isinstance(event, dict):
        raise UnmappableError("an event must be a JSON object")
    kind = need(event, "type")
    if kind not in EVENT_TYPES:
        raise UnmappableError(
            f"LINE event type {kind!r} has no mapping; mapped: {', '.join(EVENT_TYPES)}"
        )
    user = optional_id(event, "source.userId")
    if user is None:
        source = lookup(event, "source.type")
        raise UnmappableError(
            f"source.userId is missing (source type {source!r}): "
            "the sender has not shared a LINE user id, so the event belongs to no one"
        )
    message_id = _message_id(event)
    timestamp = iso_from_millis(need(event, "timestamp"), "timestamp")
    anonymous_id = f"line-{user}"
    line_id = {"line_user_id": user}  # links anonymous_id line-{user} to line:{user}
    match kind:
        case "follow" | "unfollow":
            consents = {"consents": {"line": kind == "follow"}}
            return track(
                "Consent Updated",
                message_id,
                consents,
                timestamp=timestamp,
                anonymous_id=anonymous_id,
                traits=line_id,
            )
        case "message":
            message_type = need(event, "message.type")
            props = {
                "channel": "line",
                "channel_user_id": user,
                "message_id": need_id(event, "message.id"),
                "message_type": message_type,
                "text": optional_text(event, "message.text") if message_type == "text" else None,
            }
            return track(
                "Message Received",
                message_id,
                drop_none(props),
                timestamp=timestamp,
                anonymous_id=anonymous_id,
            )
        case _:  # postback
            props = {
                "channel": "line",
                "channel_user_id": user,
                "data": need(event, "postback.data"),
                "params": lookup(event, "postback.params"),
            }
            return track(
                POSTBACK_EVENT,
                message_id,
                drop_none(props),
                timestamp=timestamp,
                anonymous_id=anonymous_id,
                traits=line_id,
            )


def _message_id(event: dict[str, Any]) -> str:
    webhook_event_id = lookup(event, "webhookEventId")
    if isinstance(webhook_event_id, str) and webhook_event_id:
        return f"line-{webhook_event_id}"
    # Without LINE's id the event's content is the dedup key, less the parts a
    # redelivery changes (a fresh reply token, the redelivery flag).
    content = {k: v for k, v in event.items() if k not in _PER_DELIVERY}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"line-h-{hashlib.sha256(text.encode()).hexdigest()[:32]}"
