"""LINE Messaging API webhooks: X-Line-Signature and webhook event mapping."""

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
from connectors.sources.webhooks import line
from projections.identity import IdentityGraph, apply, identifiers_of
from schemas import AnyEvent, ConsentUpdated, MessageReceived, Track, decode, stamp

RECEIVED = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
SECRET = "8c570fa6dd201bb328f1c1eac23a96d8"
USER = "U4af4980629d7d4ba4b5c6f0b7e9a1c2d"


def event(kind: str, event_id: str, **fields: Any) -> dict[str, Any]:
    """A webhook event object shaped like the examples in LINE's Messaging API reference."""
    return {
        "type": kind,
        "mode": "active",
        "timestamp": 1462629479859,
        "source": {"type": "user", "userId": USER},
        "webhookEventId": event_id,
        "deliveryContext": {"isRedelivery": False},
        **fields,
    }


FOLLOW = event(
    "follow",
    "01HMQGW40RZJPJM3RAJP7BHC2Q",
    replyToken="85cbe770fa8b4f45bbe077b1d4be4a36",
    follow={"isUnblocked": False},
)
UNFOLLOW = event("unfollow", "01HMQGW40RZJPJM3RAJP7BHC2R")
TEXT = event(
    "message",
    "01FZ74A0TDDPYRVKNK77XKC3ZR",
    replyToken="nHuyWiB7yP5Zw52FIkcQobQuGDXCTA",
    message={
        "id": "444573844083572737",
        "type": "text",
        "quoteToken": "q3Plxr4AgKd...",
        "text": "抹茶の賞味期限を教えてください",
    },
)
STICKER = event(
    "message",
    "01FZ74A0TDDPYRVKNK77XKC3ZS",
    message={"id": "444573844083572738", "type": "sticker", "packageId": "1", "stickerId": "1"},
)
POSTBACK = event(
    "postback",
    "01FZ74A0TDDPYRVKNK77XKC3ZT",
    postback={"data": "action=coupon&id=spring", "params": {"datetime": "2026-03-01T10:00"}},
)
GROUP_ONLY = {
    **event(
        "message", "01FZ74A0TDDPYRVKNK77XKC3ZU", message={"id": "9", "type": "text", "text": "hi"}
    ),
    "source": {"type": "group", "groupId": "Ca56f94637cc4347f90a25382909b24b9"},
}
JOIN = {
    **event("join", "01FZ74A0TDDPYRVKNK77XKC3ZV"),
    "source": {"type": "group", "groupId": "Ca56f94637cc4347f90a25382909b24b9", "userId": USER},
}


def body(*events: dict[str, Any]) -> dict[str, Any]:
    return {"destination": "U0123456789abcdef0123456789abcdef", "events": list(events)}


def expected_header(raw_body: bytes, secret: str) -> str:
    # LINE's documented recipe (base64 of HMAC-SHA256 over the body, keyed with
    # the channel secret), computed here independently of the module.
    return base64.b64encode(hmac.new(secret.encode(), raw_body, hashlib.sha256).digest()).decode()


def decoded(raw: dict[str, Any]) -> AnyEvent:
    return decode(stamp(raw, RECEIVED))


# --- signature ----------------------------------------------------------------


def test_lines_own_sdk_test_vector_verifies() -> None:
    # LINE's docs publish the recipe but no worked example; LINE's official
    # Python SDK pins this one (line/line-bot-sdk-python, tests/test_signature.py).
    line.verify(
        b"bodybodybodybody", "/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k=", "channel_secret"
    )


def test_a_real_webhook_body_signed_with_the_channel_secret_verifies() -> None:
    raw_body = json.dumps(body(FOLLOW, TEXT), ensure_ascii=False).encode()
    header = expected_header(raw_body, SECRET)
    line.verify(raw_body, header, SECRET)
    assert line.signature(raw_body, SECRET) == header


@pytest.mark.parametrize(
    ("raw_body", "header", "secret", "message"),
    [
        (b"{}", None, SECRET, "X-Line-Signature header is missing"),
        (b"{}", "", SECRET, "X-Line-Signature header is missing"),
        (b"{}", "%%%", SECRET, "X-Line-Signature is not valid base64"),
        (b"{}", "YWJj", SECRET, "decodes to 3 bytes, expected 32"),
        (b'{"events":[1]}', expected_header(b'{"events":[]}', SECRET), SECRET, "does not match"),
        (b'{"events":[]}', expected_header(b'{"events":[]}', SECRET), "x" * 32, "does not match"),
    ],
    ids=["missing", "empty", "bad-base64", "short-digest", "tampered-body", "wrong-secret"],
)
def test_bad_signatures_are_refused_with_the_reason(
    raw_body: bytes, header: str | None, secret: str, message: str
) -> None:
    with pytest.raises(AuthError, match=message):
        line.verify(raw_body, header, secret)


def test_an_empty_channel_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="LINE channel secret is empty"):
        line.verify(b"{}", expected_header(b"{}", ""), "")


# --- mapping ------------------------------------------------------------------


def test_the_console_verification_request_maps_to_nothing() -> None:
    assert line.to_events({"destination": "U0123", "events": []}) == ([], [])


def test_follow_and_unfollow_are_line_consent() -> None:
    events, skipped = line.to_events(body(FOLLOW, UNFOLLOW))
    assert skipped == []
    follow, unfollow = (decoded(raw) for raw in events)
    assert isinstance(follow, ConsentUpdated)
    assert isinstance(unfollow, ConsentUpdated)
    assert follow.properties.consents == {"line": True}
    assert unfollow.properties.consents == {"line": False}
    assert follow.anonymous_id == f"line-{USER}"
    assert follow.user_id is None
    for consent in (follow, unfollow):  # the LINE id itself, beside the anonymous id
        assert identifiers_of(consent) == (f"line:{USER}", f"anonymous_id:line-{USER}")
    assert follow.message_id == "line-01HMQGW40RZJPJM3RAJP7BHC2Q"
    assert follow.timestamp == datetime(2016, 5, 7, 13, 57, 59, 859000, tzinfo=UTC)
    assert events[0]["timestamp"] == "2016-05-07T13:57:59.859Z"


def test_a_text_message_is_message_received() -> None:
    [raw], _ = line.to_events(body(TEXT))
    message = decoded(raw)
    assert isinstance(message, MessageReceived)
    props = message.properties
    assert (props.channel, props.channel_user_id, props.text, props.message_id) == (
        "line",
        USER,
        "抹茶の賞味期限を教えてください",
        "444573844083572737",
    )
    assert props.model_extra == {"message_type": "text"}
    assert message.message_id == "line-01FZ74A0TDDPYRVKNK77XKC3ZR"


def test_other_message_types_have_no_text_but_say_what_they_were() -> None:
    [raw], _ = line.to_events(body(STICKER))
    message = decoded(raw)
    assert isinstance(message, MessageReceived)
    assert message.properties.text is None
    assert message.properties.model_extra == {"message_type": "sticker"}


def test_a_postback_is_a_line_postback_track() -> None:
    [raw], _ = line.to_events(body(POSTBACK))
    postback = decoded(raw)
    assert type(postback) is Track
    assert postback.event == "LINE Postback"
    assert postback.properties == {
        "channel": "line",
        "channel_user_id": USER,
        "data": "action=coupon&id=spring",
        "params": {"datetime": "2026-03-01T10:00"},
    }
    assert identifiers_of(postback) == (f"line:{USER}", f"anonymous_id:line-{USER}")


def test_events_that_map_to_nothing_are_returned_with_their_reason() -> None:
    events, skipped = line.to_events(body(TEXT, GROUP_ONLY, JOIN, "junk"))  # type: ignore[arg-type]
    assert len(events) == 1
    assert [(s.location, s.item) for s in skipped] == [
        ("events[1]", GROUP_ONLY),
        ("events[2]", JOIN),
        ("events[3]", "junk"),
    ]
    assert "source.userId is missing (source type 'group')" in str(skipped[0])
    assert str(skipped[1]).startswith("events[2]: LINE event type 'join' has no mapping")
    assert "must be a JSON object" in skipped[2].reason


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timestamp": "yesterday"}, "timestamp must be epoch milliseconds"),
        ({"timestamp": None}, "timestamp is missing"),
        ({"message": {"type": "text", "text": "hi"}}, "message.id is missing"),
        ({"message": None}, "message.type is missing"),
    ],
)
def test_broken_events_are_skipped_naming_the_field(change: dict[str, Any], message: str) -> None:
    events, [skipped] = line.to_events(body({**TEXT, **change}))
    assert events == []
    assert message in skipped.reason


def test_a_body_without_events_is_unmappable() -> None:
    with pytest.raises(UnmappableError, match="LINE webhook body: events is missing"):
        line.to_events({"destination": "U0123"})
    with pytest.raises(UnmappableError, match="events is not a list"):
        line.to_events({"events": {"type": "follow"}})


def test_redelivery_and_repeats_give_the_same_message_ids() -> None:
    first = line.to_events(body(FOLLOW, TEXT, POSTBACK))
    redelivered = copy.deepcopy(body(FOLLOW, TEXT, POSTBACK))
    for item in redelivered["events"]:
        item["deliveryContext"] = {"isRedelivery": True}
    assert line.to_events(redelivered) == first


def test_without_a_webhook_event_id_the_content_hash_still_dedupes() -> None:
    bare = {k: v for k, v in TEXT.items() if k != "webhookEventId"}
    retry = {**bare, "replyToken": "another-token", "deliveryContext": {"isRedelivery": True}}
    [a], _ = line.to_events(body(bare))
    [b], _ = line.to_events(body(retry))
    assert a["messageId"] == b["messageId"]
    assert a["messageId"].startswith("line-h-")
    [c], _ = line.to_events(body({**bare, "message": {**TEXT["message"], "id": "1"}}))
    assert c["messageId"] != a["messageId"]


def test_the_follow_and_the_message_are_one_customer_keyed_by_the_line_id() -> None:
    events, _ = line.to_events(body(FOLLOW, TEXT))
    graph = IdentityGraph()
    customers = {
        apply(graph, decoded(raw), offset).customer_id for offset, raw in enumerate(events)
    }
    assert len(customers) == 1
    assert graph.customer_of(f"line:{USER}") in customers


def test_a_friend_who_only_followed_is_the_customer_their_id_link_names() -> None:
    # No message ever: the follow alone must tie line-<id> to the LINE id, so the
    # customer an ID連携 (identify with line_user_id) names owns the follow too
    # and erasing them by email reaches it (docs/privacy.md).
    [follow], _ = line.to_events(body(FOLLOW))
    linked = {
        "type": "identify",
        "messageId": "link-1",
        "userId": "u-1",
        "traits": {"email": "hanako@shop.jp", "line_user_id": USER},
        "timestamp": "2026-01-10T00:00:00Z",
    }
    graph = IdentityGraph()
    for offset, raw in enumerate((follow, linked)):
        apply(graph, decoded(raw), offset)
    customer = graph.customer_of("email:hanako@shop.jp")
    assert customer is not None
    assert graph.customer_of(f"anonymous_id:line-{USER}") == customer
    assert graph.customer_of(f"line:{USER}") == customer
