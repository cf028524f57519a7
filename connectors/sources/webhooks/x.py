"""X Account Activity API: the CRC challenge, signatures, direct messages and mentions.

Both checks follow X's "Securing webhooks" guide (developer.x.com, Account
Activity API) and the V2 Webhooks quickstart (https://docs.x.com/x-api/webhooks/quickstart):

- **CRC** (GET with ``crc_token``, at registration and about hourly):
  answer ``{"response_token": "sha256=" + base64(HMAC-SHA256(key=consumer
  secret, message=crc_token))}`` within three seconds; ``crc_response``.
- **Signature** on every POST: ``x-twitter-webhooks-signature: sha256=<base64
  HMAC-SHA256 of the raw body with the consumer secret>``; ``verify``.

Payload mapping (Account Activity data objects). ``for_user_id`` is the
subscribed account (the shop):

- ``direct_message_events`` of type ``message_create``: sent by someone else
  → **Message Received** (``channel_user_id`` ``sender_id``); sent by the shop
  → **Message Sent** (``channel_user_id`` ``target.recipient_id``). ``text``
  is ``message_data.text``, ``message_id`` the event ``id``, the time its
  ``created_timestamp`` (epoch ms); ``messageId`` ``x-dm-{id}``.
- ``tweet_create_events`` by another user (mentions, replies, quotes of the
  shop) → **Message Received** with ``kind`` ``mention`` (the contract has no
  mention event; extra properties are allowed), ``channel_user_id``
  ``user.id_str``, ``message_id`` the tweet's ``id_str``, text from
  ``extended_tweet.full_text`` when the tweet is truncated; ``messageId``
  ``x-tweet-{id_str}``. The shop's own tweets and plain retweets are not
  messages and are skipped.

``anonymousId`` is ``x-{customer id}`` (the demo generator's convention);
``screen_name`` is added from the payload's ``users`` map (DMs) or the
tweet's ``user`` when known. Everything else (favorites, follows, blocks,
typing and read indicators, deletions, ``user_event``) comes back as
``Skipped`` with a reason.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any, Final

from cdp.errors import AuthError, UnmappableError
from connectors.sources.webhooks import (
    Mapped,
    RawEvent,
    Skipped,
    check_digest,
    digest_from_base64,
    drop_none,
    header_value,
    hmac_sha256,
    iso,
    iso_from_millis,
    lookup,
    need,
    need_id,
    optional_text,
    require_secret,
    strip_prefix,
    track,
)

HEADER: Final = "x-twitter-webhooks-signature"
PREFIX: Final = "sha256="
TWEET_TIME_FORMAT: Final = "%a %b %d %H:%M:%S %z %Y"
_CONTEXT_KEYS: Final = frozenset({"for_user_id", "users", "apps", "user_has_blocked", "source"})


def crc_response(crc_token: str, consumer_secret: str) -> dict[str, str]:
    """The JSON body answering a CRC request for ``crc_token``.

    ``AuthError`` if the token is empty (the GET is then not a CRC at all);
    ``ConfigError`` if the consumer secret is.
    """
    key = require_secret(consumer_secret, "X consumer secret")
    if not crc_token:
        raise AuthError("crc_token is missing")
    digest = hmac_sha256(key, crc_token.encode("utf-8"))
    return {"response_token": PREFIX + base64.b64encode(digest).decode("ascii")}


def verify(body: bytes, signature_header: str | None, consumer_secret: str) -> None:
    """Check ``x-twitter-webhooks-signature`` against the raw ``body``; ``AuthError`` if wrong."""
    key = require_secret(consumer_secret, "X consumer secret")
    value = header_value(signature_header, HEADER)
    encoded = strip_prefix(value, PREFIX, HEADER, "sha256=<base64 digest>")
    check_digest(hmac_sha256(key, body), digest_from_base64(encoded, HEADER), HEADER)


def signature(body: bytes, consumer_secret: str) -> str:
    """The ``x-twitter-webhooks-signature`` value X would send for ``body`` (tests, replays)."""
    digest = hmac_sha256(require_secret(consumer_secret, "X consumer secret"), body)
    return PREFIX + base64.b64encode(digest).decode("ascii")


def to_events(payload: dict[str, Any]) -> Mapped:
    """Raw events for a verified activity body, and the items skipped with their reasons.

    ``UnmappableError`` when the body has no ``for_user_id``.
    """
    if not isinstance(payload, dict):
        raise UnmappableError("X activity body must be a JSON object")
    try:
        account = need_id(payload, "for_user_id")
    except UnmappableError as error:
        raise UnmappableError(f"X activity body: {error}") from None
    users = payload.get("users")
    if not isinstance(users, dict):
        users = {}
    events: list[RawEvent] = []
    skipped: list[Skipped] = []
    for key, value in payload.items():
        if key in _CONTEXT_KEYS:
            continue
        items = value if isinstance(value, list) else [value]
        for j, item in enumerate(items):
            location = f"{key}[{j}]" if isinstance(value, list) else key
            try:
                if key == "direct_message_events":
                    events.append(_direct_message(item, account, users))
                elif key == "tweet_create_events":
                    events.append(_tweet(item, account))
                else:
                    raise UnmappableError(f"X {key} have no mapping (only DMs and mentions)")
            except UnmappableError as error:
                skipped.append(Skipped(location, str(error), item))
    return Mapped(events, skipped)


def _direct_message(item: Any, account: str, users: dict[str, Any]) -> RawEvent:
    if not isinstance(item, dict):
        raise UnmappableError("a direct message event must be a JSON object")
    kind = item.get("type")
    if kind != "message_create":
        raise UnmappableError(f"direct message event type {kind!r} has no mapping")
    dm_id = need_id(item, "id")
    sender = need_id(item, "message_create.sender_id")
    sent = sender == account
    customer = need_id(item, "message_create.target.recipient_id") if sent else sender
    props = {
        "channel": "x",
        "channel_user_id": customer,
        "text": optional_text(item, "message_create.message_data.text"),
        "message_id": dm_id,
        "screen_name": optional_text(users.get(customer), "screen_name"),
    }
    return track(
        "Message Sent" if sent else "Message Received",
        f"x-dm-{dm_id}",
        drop_none(props),
        timestamp=iso_from_millis(need(item, "created_timestamp"), "created_timestamp"),
        anonymous_id=f"x-{customer}",
    )


def _tweet(item: Any, account: str) -> RawEvent:
    if not isinstance(item, dict):
        raise UnmappableError("a tweet must be a JSON object")
    tweet_id = need_id(item, "id_str")
    author = need_id(item, "user.id_str")
    if author == account:
        raise UnmappableError("user.id_str is the account itself: its own tweets are not messages")
    if isinstance(item.get("retweeted_status"), dict):
        raise UnmappableError("retweeted_status: a retweet is not a message to the account")
    text = optional_text(item, "extended_tweet.full_text") if item.get("truncated") else None
    props = {
        "channel": "x",
        "channel_user_id": author,
        "kind": "mention",
        "text": text or optional_text(item, "text"),
        "message_id": tweet_id,
        "screen_name": optional_text(item, "user.screen_name"),
        "in_reply_to_status_id": optional_text(item, "in_reply_to_status_id_str"),
    }
    return track(
        "Message Received",
        f"x-tweet-{tweet_id}",
        drop_none(props),
        timestamp=_tweet_time(item),
        anonymous_id=f"x-{author}",
    )


def _tweet_time(item: dict[str, Any]) -> str:
    millis = lookup(item, "timestamp_ms")
    if millis is not None:
        return iso_from_millis(millis, "timestamp_ms")
    created = need(item, "created_at")
    try:
        return iso(datetime.strptime(str(created), TWEET_TIME_FORMAT))
    except ValueError:
        raise UnmappableError(
            f"created_at is not a tweet time like 'Wed Oct 10 20:19:24 +0000 2018': {created!r}"
        ) from None
