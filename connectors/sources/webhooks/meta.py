"""Meta webhooks (Instagram messaging): the verification challenge, signatures, messages.

Both checks follow Meta for Developers, Graph API "Webhooks → Getting
Started" (https://developers.facebook.com/docs/graph-api/webhooks/getting-started):

- **Verification request** (GET, when the webhook is configured): query
  parameters ``hub.mode`` (always ``subscribe``), ``hub.verify_token`` (the
  string set in the App Dashboard) and ``hub.challenge``, which must be echoed
  back. ``verify_challenge`` does the checks and returns the challenge.
- **Event notifications** (POST) carry ``X-Hub-Signature-256:
  sha256=<hex HMAC-SHA256 of the payload with the app secret>``. Meta signs
  the body exactly as sent (non-ASCII escaped as ``\\uXXXX``), so ``verify``
  hashes the raw bytes and never a re-serialisation. The scheme is GitHub's
  ``X-Hub-Signature-256`` too, whose documented test vector the tests use.

Payload mapping (Instagram Messaging webhooks, ``object`` ``instagram``): each
``entry[].messaging[]`` item (and ``entry[].standby[]``, the same items while
another app controls the conversation) with a ``message``:

- from the customer → **Message Received**, ``channel`` ``instagram``,
  ``channel_user_id`` ``sender.id``, ``text``, ``message_id`` ``message.mid``;
  a message without text gets ``message_type`` from its first attachment;
- ``message.is_echo`` (sent by the business account) → **Message Sent** with
  ``channel_user_id`` ``recipient.id``.

``anonymousId`` is ``instagram-{customer id}`` (the demo generator's
convention), ``messageId`` ``ig-{mid}``, ``timestamp`` the item's epoch
milliseconds. Reactions, reads, postbacks, referrals, deleted messages and
``changes`` (comments, mentions) come back as ``Skipped`` with a reason.

Messenger (``object`` ``page``) raises ``UnmappableError``: its senders are
page-scoped ids of Facebook users, and the event contract's SNS channels are
only ``line``, ``x`` and ``instagram``. Filing them under ``instagram`` would
link the wrong identifiers; adding a ``messenger`` channel (and identifier
kind) to the contracts is the fix, after which dead-lettered bodies can be
retried.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any, Final

from cdp.errors import AuthError, UnmappableError
from connectors.sources.webhooks import (
    Mapped,
    RawEvent,
    Skipped,
    check_digest,
    digest_from_hex,
    drop_none,
    header_value,
    hmac_sha256,
    iso_from_millis,
    lookup,
    need,
    need_id,
    need_list,
    optional_text,
    require_secret,
    strip_prefix,
    track,
)

HEADER: Final = "X-Hub-Signature-256"
PREFIX: Final = "sha256="
OBJECT: Final = "instagram"
_QUEUES: Final = ("messaging", "standby")


def verify_challenge(params: Mapping[str, str], verify_token: str) -> str:
    """The ``hub.challenge`` to answer a verification request with; ``AuthError`` if it fails.

    ``verify_token`` is the Verify Token configured in the App Dashboard
    (``ConfigError`` if empty); it is compared in constant time.
    """
    token = require_secret(verify_token, "Meta verify token")
    mode = params.get("hub.mode")
    if mode != "subscribe":
        raise AuthError(f"hub.mode must be 'subscribe', not {mode!r}")
    given = params.get("hub.verify_token")
    if not given:
        raise AuthError("hub.verify_token is missing")
    if not hmac.compare_digest(given.encode("utf-8"), token):
        raise AuthError("hub.verify_token does not match the configured verify token")
    challenge = params.get("hub.challenge")
    if not challenge:
        raise AuthError("hub.challenge is missing")
    return challenge


def verify(body: bytes, signature_header: str | None, app_secret: str) -> None:
    """Check ``X-Hub-Signature-256`` against the raw ``body``; ``AuthError`` saying what is wrong."""
    key = require_secret(app_secret, "Meta app secret")
    value = header_value(signature_header, HEADER)
    hex_digest = strip_prefix(value, PREFIX, HEADER, "sha256=<64 hex digits>")
    check_digest(hmac_sha256(key, body), digest_from_hex(hex_digest, HEADER), HEADER)


def signature(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta would send for ``body`` (tests, replays)."""
    return PREFIX + hmac_sha256(require_secret(app_secret, "Meta app secret"), body).hex()


def to_events(payload: dict[str, Any]) -> Mapped:
    """Raw events for a verified notification body, and the items skipped with their reasons.

    ``UnmappableError`` when the body is not an Instagram messaging notification
    (Messenger ``page`` bodies included, see the module docstring).
    """
    if not isinstance(payload, dict):
        raise UnmappableError("Meta webhook body must be a JSON object")
    kind = payload.get("object")
    if kind == "page":
        raise UnmappableError(
            "Meta object 'page' (Messenger) has no SNS channel in the event contract "
            "(channels: line, x, instagram); add 'messenger' to the contract, then retry"
        )
    if kind != OBJECT:
        raise UnmappableError(f"Meta object {kind!r} has no mapping; mapped: {OBJECT!r}")
    try:
        entries = need_list(payload, "entry")
    except UnmappableError as error:
        raise UnmappableError(f"Meta {OBJECT} body: {error}") from None
    events: list[RawEvent] = []
    skipped: list[Skipped] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            skipped.append(Skipped(f"entry[{i}]", "an entry must be a JSON object", entry))
            continue
        if not any(isinstance(entry.get(key), list) for key in (*_QUEUES, "changes")):
            reason = "no messaging, standby or changes list: nothing to map"
            skipped.append(Skipped(f"entry[{i}]", reason, entry))
        for queue in _QUEUES:
            items = entry.get(queue)
            for j, item in enumerate(items if isinstance(items, list) else []):
                try:
                    events.append(_messaging(item))
                except UnmappableError as error:
                    skipped.append(Skipped(f"entry[{i}].{queue}[{j}]", str(error), item))
        changes = entry.get("changes")
        for j, change in enumerate(changes if isinstance(changes, list) else []):
            field = lookup(change, "field")
            reason = f"Instagram {field!r} changes have no mapping (only messages are mapped)"
            skipped.append(Skipped(f"entry[{i}].changes[{j}]", reason, change))
    return Mapped(events, skipped)


def _messaging(item: Any) -> RawEvent:
    if not isinstance(item, dict):
        raise UnmappableError("a messaging item must be a JSON object")
    if not isinstance(item.get("message"), dict):
        others = sorted(k for k in item if k not in ("sender", "recipient", "timestamp"))
        raise UnmappableError(
            f"no message: {', '.join(others) or 'nothing'} events have no mapping"
        )
    if lookup(item, "message.is_deleted") is True:
        raise UnmappableError("message.is_deleted: an unsent message has no mapping")
    mid = need_id(item, "message.mid")
    echo = lookup(item, "message.is_echo") is True
    customer = need_id(item, "recipient.id" if echo else "sender.id")
    text = optional_text(item, "message.text")
    props = {
        "channel": "instagram",
        "channel_user_id": customer,
        "text": text,
        "message_id": mid,
        "message_type": None if text is not None else _attachment_type(item),
    }
    return track(
        "Message Sent" if echo else "Message Received",
        f"ig-{mid}",
        drop_none(props),
        timestamp=iso_from_millis(need(item, "timestamp"), "timestamp"),
        anonymous_id=f"instagram-{customer}",
    )


def _attachment_type(item: dict[str, Any]) -> str | None:
    attachments = lookup(item, "message.attachments")
    if isinstance(attachments, list) and attachments:
        kind = lookup(attachments[0], "type")
        if isinstance(kind, str):
            return kind
    return "unsupported" if lookup(item, "message.is_unsupported") is True else None
