"""X Account Activity: CRC, x-twitter-webhooks-signature, DMs and mentions."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.errors import AuthError, ConfigError, UnmappableError
from connectors.sources.webhooks import x
from schemas import AnyEvent, MessageReceived, MessageSent, decode, stamp

RECEIVED = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
CONSUMER_SECRET = "Wl8mZ3xKcQ2vN7pR4tY6uI9oP1aS5dF0gH3jK8lZ2xC4vB7nM"
SHOP = "4337869213"
CUSTOMER = "3001969357"


def dm(event_id: str, sender: str, recipient: str, text: str) -> dict[str, Any]:
    """A direct_message_events item shaped like X's Message Create Object example."""
    return {
        "type": "message_create",
        "id": event_id,
        "created_timestamp": "1516403560557",
        "message_create": {
            "target": {"recipient_id": recipient},
            "sender_id": sender,
            "source_app_id": "268278",
            "message_data": {
                "text": text,
                "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []},
            },
        },
    }


RECEIVED_DM = dm("954491830116155396", CUSTOMER, SHOP, "注文した抹茶はいつ届きますか？")
SENT_DM = dm("954491830116155397", SHOP, CUSTOMER, "明日お届け予定です")
USERS = {
    CUSTOMER: {"id": CUSTOMER, "name": "山田花子", "screen_name": "hanako_tea"},
    SHOP: {"id": SHOP, "name": "茶の間", "screen_name": "chanoma_shop"},
}


def tweet(tweet_id: str, author: str, text: str, **fields: Any) -> dict[str, Any]:
    """A tweet_create_events item (a v1.1 Tweet object, trimmed)."""
    return {
        "created_at": "Mon Jan 19 08:59:20 +0000 2026",
        "id": int(tweet_id),
        "id_str": tweet_id,
        "text": text,
        "truncated": False,
        "user": {"id": int(author), "id_str": author, "screen_name": "hanako_tea"},
        "timestamp_ms": "1768813160123",
        **fields,
    }


MENTION = tweet(
    "1748289120458752001",
    CUSTOMER,
    "@chanoma_shop 新茶の入荷はいつですか",
    in_reply_to_status_id_str="1748200000000000000",
)


def decoded(raw: dict[str, Any]) -> AnyEvent:
    return decode(stamp(raw, RECEIVED))


def b64_hmac(secret: str, message: bytes) -> str:
    # X's documented recipe (base64 of HMAC-SHA256 keyed with the consumer
    # secret), computed here independently of the module; X's docs give the
    # recipe and sample code but no secret/token/response triple.
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


# --- CRC ----------------------------------------------------------------------


def test_the_crc_response_is_the_base64_hmac_of_the_token() -> None:
    token = "challenge_string"  # the crc_token of X's quickstart example request
    assert x.crc_response(token, CONSUMER_SECRET) == {
        "response_token": "sha256=" + b64_hmac(CONSUMER_SECRET, token.encode())
    }


def test_a_crc_without_a_token_or_secret_is_refused() -> None:
    with pytest.raises(AuthError, match="crc_token is missing"):
        x.crc_response("", CONSUMER_SECRET)
    with pytest.raises(ConfigError, match="X consumer secret is empty"):
        x.crc_response("abc", "")


# --- signature ----------------------------------------------------------------


def test_a_signed_activity_body_verifies() -> None:
    body = json.dumps({"for_user_id": SHOP, "direct_message_events": [RECEIVED_DM]}).encode()
    header = "sha256=" + b64_hmac(CONSUMER_SECRET, body)
    x.verify(body, header, CONSUMER_SECRET)
    assert x.signature(body, CONSUMER_SECRET) == header


SIGNED = b'{"for_user_id":"4337869213"}'
GOOD = "sha256=" + b64_hmac(CONSUMER_SECRET, SIGNED)


@pytest.mark.parametrize(
    ("body", "header", "secret", "message"),
    [
        (SIGNED, None, CONSUMER_SECRET, "x-twitter-webhooks-signature header is missing"),
        (
            SIGNED,
            GOOD.removeprefix("sha256="),
            CONSUMER_SECRET,
            "malformed: expected sha256=<base64 digest>",
        ),
        (SIGNED, "sha256=***", CONSUMER_SECRET, "is not valid base64"),
        (
            SIGNED,
            "sha256=" + hmac.new(CONSUMER_SECRET.encode(), SIGNED, hashlib.sha256).hexdigest(),
            CONSUMER_SECRET,
            "not an HMAC-SHA256 digest",  # hex where base64 belongs
        ),
        (SIGNED.replace(b"13", b"14"), GOOD, CONSUMER_SECRET, "does not match the body"),
        (SIGNED, GOOD, CONSUMER_SECRET[:-1], "does not match the body"),
    ],
    ids=["missing", "no-prefix", "bad-base64", "hex-digest", "tampered-body", "wrong-secret"],
)
def test_bad_signatures_are_refused_with_the_reason(
    body: bytes, header: str | None, secret: str, message: str
) -> None:
    with pytest.raises(AuthError, match=message):
        x.verify(body, header, secret)


# --- mapping ------------------------------------------------------------------


def test_a_dm_from_a_customer_is_message_received() -> None:
    payload = {"for_user_id": SHOP, "direct_message_events": [RECEIVED_DM], "users": USERS}
    [raw], skipped = x.to_events(payload)
    assert skipped == []
    event = decoded(raw)
    assert isinstance(event, MessageReceived)
    assert event.message_id == "x-dm-954491830116155396"
    assert event.anonymous_id == f"x-{CUSTOMER}"
    assert event.timestamp == datetime(2018, 1, 19, 23, 12, 40, 557000, tzinfo=UTC)
    props = event.properties
    assert (props.channel, props.channel_user_id, props.text, props.message_id) == (
        "x",
        CUSTOMER,
        "注文した抹茶はいつ届きますか？",
        "954491830116155396",
    )
    assert props.model_extra == {"screen_name": "hanako_tea"}


def test_a_dm_from_the_shop_is_message_sent_to_the_recipient() -> None:
    [raw], _ = x.to_events({"for_user_id": SHOP, "direct_message_events": [SENT_DM]})
    event = decoded(raw)
    assert isinstance(event, MessageSent)
    assert event.properties.channel_user_id == CUSTOMER
    assert event.anonymous_id == f"x-{CUSTOMER}"


def test_a_mention_is_message_received_of_kind_mention() -> None:
    [raw], _ = x.to_events({"for_user_id": SHOP, "tweet_create_events": [MENTION]})
    event = decoded(raw)
    assert isinstance(event, MessageReceived)
    assert event.message_id == "x-tweet-1748289120458752001"
    assert event.anonymous_id == f"x-{CUSTOMER}"
    assert event.timestamp == datetime(2026, 1, 19, 8, 59, 20, 123000, tzinfo=UTC)
    props = event.properties
    assert (props.channel_user_id, props.text, props.message_id) == (
        CUSTOMER,
        "@chanoma_shop 新茶の入荷はいつですか",
        "1748289120458752001",
    )
    assert props.model_extra == {
        "kind": "mention",
        "screen_name": "hanako_tea",
        "in_reply_to_status_id": "1748200000000000000",
    }


def test_a_truncated_tweet_gives_its_full_text_and_created_at_is_a_fallback_time() -> None:
    long = {
        **MENTION,
        "truncated": True,
        "text": "@chanoma_shop 新茶の…",
        "extended_tweet": {"full_text": "@chanoma_shop 新茶の入荷はいつですか。去年も買いました"},
    }
    del long["timestamp_ms"]
    [raw], _ = x.to_events({"for_user_id": SHOP, "tweet_create_events": [long]})
    event = decoded(raw)
    assert isinstance(event, MessageReceived)
    assert event.properties.text == "@chanoma_shop 新茶の入荷はいつですか。去年も買いました"
    assert event.timestamp == datetime(2026, 1, 19, 8, 59, 20, tzinfo=UTC)


def test_everything_else_comes_back_with_the_reason() -> None:
    own = tweet("1748289120458752002", SHOP, "新茶入荷しました")
    retweet = {
        **tweet("1748289120458752003", CUSTOMER, "RT @chanoma_shop: 新茶"),
        "retweeted_status": own,
    }
    payload = {
        "for_user_id": SHOP,
        "tweet_create_events": [MENTION, own, retweet],
        "favorite_events": [{"id": "a1", "favorited_status": own, "user": {"id_str": CUSTOMER}}],
        "direct_message_indicate_typing_events": [
            {"created_timestamp": "1", "sender_id": CUSTOMER}
        ],
        "user_event": {"revoke": {"date_time": "2026-01-19T09:00:00+0000"}},
    }
    events, skipped = x.to_events(payload)
    assert len(events) == 1
    assert [s.location for s in skipped] == [
        "tweet_create_events[1]",
        "tweet_create_events[2]",
        "favorite_events[0]",
        "direct_message_indicate_typing_events[0]",
        "user_event",
    ]
    assert "its own tweets are not messages" in skipped[0].reason
    assert "a retweet is not a message" in skipped[1].reason
    assert skipped[2].reason == "X favorite_events have no mapping (only DMs and mentions)"
    assert skipped[4].item == payload["user_event"]


@pytest.mark.parametrize(
    ("key", "item", "message"),
    [
        (
            "direct_message_events",
            {**RECEIVED_DM, "type": "welcome_message"},
            "type 'welcome_message' has no mapping",
        ),
        ("direct_message_events", {**RECEIVED_DM, "id": None}, "id is missing"),
        (
            "direct_message_events",
            {**RECEIVED_DM, "created_timestamp": "soon"},
            "created_timestamp must be epoch milliseconds",
        ),
        (
            "direct_message_events",
            dm("1", SHOP, "", "x"),
            "message_create.target.recipient_id is missing",
        ),
        ("tweet_create_events", {**MENTION, "user": {}}, "user.id_str is missing"),
        (
            "tweet_create_events",
            {k: v for k, v in MENTION.items() if k != "timestamp_ms"} | {"created_at": "today"},
            "created_at is not a tweet time",
        ),
    ],
)
def test_broken_items_are_skipped_naming_the_field(
    key: str, item: dict[str, Any], message: str
) -> None:
    events, [skipped] = x.to_events({"for_user_id": SHOP, key: [item]})
    assert events == []
    assert message in skipped.reason


def test_a_body_without_for_user_id_is_unmappable() -> None:
    with pytest.raises(UnmappableError, match="X activity body: for_user_id is missing"):
        x.to_events({"direct_message_events": [RECEIVED_DM]})


def test_the_same_body_twice_gives_the_same_message_ids() -> None:
    payload = {
        "for_user_id": SHOP,
        "direct_message_events": [RECEIVED_DM, SENT_DM],
        "tweet_create_events": [MENTION],
        "users": USERS,
    }
    first = x.to_events(payload)
    assert first == x.to_events(copy.deepcopy(payload))
    assert [raw["messageId"] for raw in first.events] == [
        "x-dm-954491830116155396",
        "x-dm-954491830116155397",
        "x-tweet-1748289120458752001",
    ]
