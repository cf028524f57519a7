"""Meta webhooks: the hub.* challenge, X-Hub-Signature-256 and Instagram messaging."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.errors import AuthError, ConfigError, UnmappableError
from connectors.sources.webhooks import meta
from schemas import AnyEvent, MessageReceived, MessageSent, decode, stamp

RECEIVED = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
APP_SECRET = "3f1c9a7e5b2d4c6e8a0b1c2d3e4f5a6b"
SHOP = "17841405822304914"  # the shop's Instagram professional account
CUSTOMER = "1234567890123456"  # an Instagram-scoped id (IGSID)


def messaging(
    message: dict[str, Any], *, echo: bool = False, at: int = 1569262485349
) -> dict[str, Any]:
    """A messaging item shaped like the Instagram messaging webhook examples."""
    sender, recipient = (SHOP, CUSTOMER) if echo else (CUSTOMER, SHOP)
    return {
        "sender": {"id": sender},
        "recipient": {"id": recipient},
        "timestamp": at,
        "message": {**message, **({"is_echo": True} if echo else {})},
    }


TEXT = messaging(
    {"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx", "text": "在庫はありますか？"}
)
ECHO = messaging(
    {"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQy", "text": "はい、ございます"}, echo=True
)
IMAGE = messaging(
    {
        "mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQz",
        "attachments": [{"type": "image", "payload": {"url": "https://lookaside.fbsbx.com/x"}}],
    }
)
REACTION = {
    "sender": {"id": CUSTOMER},
    "recipient": {"id": SHOP},
    "timestamp": 1569262485349,
    "reaction": {
        "mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx",
        "action": "react",
        "emoji": "❤",
    },
}


def body(*items: dict[str, Any], standby: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": SHOP, "time": 1569262486134, "messaging": list(items)}
    if standby is not None:
        entry["standby"] = standby
    return {"object": "instagram", "entry": [entry]}


def decoded(raw: dict[str, Any]) -> AnyEvent:
    return decode(stamp(raw, RECEIVED))


# --- the verification request -------------------------------------------------


def test_metas_documented_sample_verification_request_is_answered() -> None:
    # The "Sample Verification Request" of Meta's Graph API Webhooks guide
    # (developers.facebook.com/docs/graph-api/webhooks/getting-started), verbatim.
    params = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": "meatyhamhock",
    }
    assert meta.verify_challenge(params, "meatyhamhock") == "1158201444"


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"hub.mode": "unsubscribe", "hub.challenge": "1", "hub.verify_token": "t"},
            "hub.mode must be 'subscribe', not 'unsubscribe'",
        ),
        ({"hub.challenge": "1", "hub.verify_token": "t"}, "hub.mode must be 'subscribe', not None"),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, "hub.verify_token is missing"),
        (
            {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": "guess"},
            "hub.verify_token does not match",
        ),
        ({"hub.mode": "subscribe", "hub.verify_token": "t"}, "hub.challenge is missing"),
    ],
    ids=["wrong-mode", "no-mode", "no-token", "wrong-token", "no-challenge"],
)
def test_failed_verification_requests_say_why(params: dict[str, str], message: str) -> None:
    with pytest.raises(AuthError, match=message):
        meta.verify_challenge(params, "t")


def test_an_empty_verify_token_is_a_configuration_error() -> None:
    params = {"hub.mode": "subscribe", "hub.challenge": "1", "hub.verify_token": ""}
    with pytest.raises(ConfigError, match="Meta verify token is empty"):
        meta.verify_challenge(params, "")


# --- X-Hub-Signature-256 ------------------------------------------------------


def test_the_documented_x_hub_signature_256_example_verifies() -> None:
    # GitHub's "Validating webhook deliveries" (docs.github.com/en/webhooks/
    # using-webhooks/validating-webhook-deliveries), "Testing the webhook payload
    # validation": the same sha256=<hex HMAC-SHA256> scheme Meta uses, verbatim.
    secret, payload = "It's a Secret to Everybody", b"Hello, World!"
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    meta.verify(payload, header, secret)
    assert meta.signature(payload, secret) == header


def test_meta_signs_the_escaped_body_so_only_the_raw_bytes_verify() -> None:
    # Meta's guide: the signature is over the payload with non-ASCII escaped
    # (\u00e4...). Verifying a re-serialisation would fail; the raw bytes pass.
    payload = body(TEXT)
    sent = json.dumps(payload).encode()  # ensure_ascii: escaped, as Meta sends
    header = "sha256=" + hmac.new(APP_SECRET.encode(), sent, hashlib.sha256).hexdigest()
    meta.verify(sent, header, APP_SECRET)
    reserialised = json.dumps(payload, ensure_ascii=False).encode()
    with pytest.raises(AuthError, match="does not match"):
        meta.verify(reserialised, header, APP_SECRET)


GOOD = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


@pytest.mark.parametrize(
    ("payload", "header", "secret", "message"),
    [
        (
            b"Hello, World!",
            None,
            "It's a Secret to Everybody",
            "X-Hub-Signature-256 header is missing",
        ),
        (
            b"Hello, World!",
            GOOD.removeprefix("sha256="),
            "It's a Secret to Everybody",
            "malformed: expected sha256=<64 hex digits>",
        ),
        (
            b"Hello, World!",
            "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6",
            "It's a Secret to Everybody",
            "malformed",
        ),
        (
            b"Hello, World!",
            "sha256=zz" + GOOD[9:],
            "It's a Secret to Everybody",
            "is not hexadecimal",
        ),
        (b"Hello, World!", GOOD[:-1], "It's a Secret to Everybody", "is not hexadecimal"),
        (
            b"Hello, World!",
            GOOD[:-4],
            "It's a Secret to Everybody",
            "decodes to 30 bytes, expected 32",
        ),
        (b"Hello, World?", GOOD, "It's a Secret to Everybody", "does not match the body"),
        (b"Hello, World!", GOOD, "It's a secret to everybody", "does not match the body"),
    ],
    ids=[
        "missing",
        "no-prefix",
        "sha1",
        "non-hex",
        "odd-length",
        "short",
        "tampered-body",
        "wrong-secret",
    ],
)
def test_bad_signatures_are_refused_with_the_reason(
    payload: bytes, header: str | None, secret: str, message: str
) -> None:
    with pytest.raises(AuthError, match=message):
        meta.verify(payload, header, secret)


def test_an_empty_app_secret_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="Meta app secret is empty"):
        meta.verify(b"{}", "sha256=" + "0" * 64, "")


# --- mapping ------------------------------------------------------------------


def test_a_customer_message_is_message_received() -> None:
    [raw], skipped = meta.to_events(body(TEXT))
    assert skipped == []
    event = decoded(raw)
    assert isinstance(event, MessageReceived)
    assert event.message_id == "ig-aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx"
    assert event.anonymous_id == f"instagram-{CUSTOMER}"
    assert event.timestamp == datetime(2019, 9, 23, 18, 14, 45, 349000, tzinfo=UTC)
    props = event.properties
    assert (props.channel, props.channel_user_id, props.text, props.message_id) == (
        "instagram",
        CUSTOMER,
        "在庫はありますか？",
        "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx",
    )


def test_an_echo_is_message_sent_to_the_recipient() -> None:
    [raw], _ = meta.to_events(body(ECHO))
    event = decoded(raw)
    assert isinstance(event, MessageSent)
    assert event.properties.channel_user_id == CUSTOMER
    assert event.anonymous_id == f"instagram-{CUSTOMER}"
    assert event.properties.text == "はい、ございます"


def test_an_attachment_has_no_text_but_its_type() -> None:
    [raw], _ = meta.to_events(body(IMAGE))
    event = decoded(raw)
    assert isinstance(event, MessageReceived)
    assert event.properties.text is None
    assert event.properties.model_extra == {"message_type": "image"}


def test_standby_messages_are_messages_too() -> None:
    [raw], _ = meta.to_events(body(standby=[TEXT]))
    assert isinstance(decoded(raw), MessageReceived)


def test_items_without_a_mapping_come_back_with_the_reason() -> None:
    deleted = messaging({"mid": "m-9", "is_deleted": True})
    payload = body(TEXT, REACTION, deleted)
    payload["entry"][0]["changes"] = [{"field": "comments", "value": {"id": "1", "text": "素敵"}}]
    payload["entry"].append("junk")
    payload["entry"].append({"id": SHOP, "time": 1569262486134})
    events, skipped = meta.to_events(payload)
    assert len(events) == 1
    assert [s.location for s in skipped] == [
        "entry[0].messaging[1]",
        "entry[0].messaging[2]",
        "entry[0].changes[0]",
        "entry[1]",
        "entry[2]",
    ]
    assert skipped[0].reason == "no message: reaction events have no mapping"
    assert skipped[0].item == REACTION
    assert "is_deleted" in skipped[1].reason
    assert "'comments' changes have no mapping" in skipped[2].reason
    assert "nothing to map" in skipped[4].reason


@pytest.mark.parametrize(
    ("item", "message"),
    [
        (messaging({"text": "hi"}), "message.mid is missing"),
        ({**TEXT, "sender": {}}, "sender.id is missing"),
        ({**ECHO, "recipient": None}, "recipient.id is missing"),
        ({**TEXT, "timestamp": -5}, "timestamp must be epoch milliseconds"),
    ],
)
def test_broken_items_are_skipped_naming_the_field(item: dict[str, Any], message: str) -> None:
    events, [skipped] = meta.to_events(body(item))
    assert events == []
    assert message in skipped.reason


def test_messenger_page_bodies_are_unmappable_until_the_contract_has_the_channel() -> None:
    page = {**body(TEXT), "object": "page"}
    with pytest.raises(UnmappableError, match="'page' \\(Messenger\\) has no SNS channel"):
        meta.to_events(page)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"object": "whatsapp_business_account", "entry": []},
            "object 'whatsapp_business_account' has no mapping",
        ),
        ({"object": "instagram"}, "Meta instagram body: entry is missing"),
        ({"object": "instagram", "entry": {}}, "entry is not a list"),
    ],
)
def test_bodies_that_are_not_instagram_messaging_are_unmappable(
    payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnmappableError, match=message):
        meta.to_events(payload)


def test_the_same_body_twice_gives_the_same_message_ids() -> None:
    payload = body(TEXT, ECHO, IMAGE)
    assert meta.to_events(payload) == meta.to_events(copy.deepcopy(payload))
