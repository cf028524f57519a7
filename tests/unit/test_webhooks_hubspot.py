"""HubSpot webhooks: the v1/v2/v3 signatures against HubSpot's documented algorithm
and published vectors, and the deal/engagement mapping to the sales contract."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from cdp.errors import AuthError
from connectors.sources.webhooks import hubspot
from connectors.sources.webhooks.deals import Stages
from schemas import AnyEvent, decode, stamp
from schemas.sales import (
    DealCreated,
    DealLost,
    DealStageChanged,
    DealUpdated,
    DealWon,
    SalesActivityLogged,
)

RECEIVED = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
# The example secret of HubSpot's "Validating requests" pages.
DOC_SECRET = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
DOC_V1_BODY = (
    b'[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    b'"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
    b'"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
)
SECRET = "c5d1d6c0-6a8e-4d3b-9c1f-0f7e3e2a9b11"
URL = "https://cdp.example.jp/v1/webhooks/hubspot"


def test_v1_and_v2_match_the_hashes_hubspot_publishes() -> None:
    # Written out from HubSpot's docs, so the test does not only run our code twice.
    assert (
        hubspot.signature_v1(DOC_SECRET, DOC_V1_BODY)
        == "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
    )
    assert (
        hubspot.signature_v2(DOC_SECRET, "GET", "https://www.example.com/webhook_uri", b"")
        == "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
    )
    assert (
        hubspot.signature_v2(
            DOC_SECRET,
            "POST",
            "https://www.example.com/webhook_uri",
            b'{"example_field":"example_value"}',
        )
        == "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900"
    )


def test_v3_is_hmac_sha256_of_method_uri_body_timestamp_in_base64() -> None:
    body = b'[{"eventId":7}]'
    stamp_ms = "1768446000000"
    # HubSpot's documented algorithm, spelled out with the standard library.
    source = b"POST" + URL.encode() + body + stamp_ms.encode()
    expected = base64.b64encode(hmac.new(SECRET.encode(), source, hashlib.sha256).digest())
    assert hubspot.signature_v3(SECRET, "POST", URL, body, stamp_ms) == expected.decode()
    # A fixed vector, computed with `openssl dgst -sha256 -hmac secret -binary | base64`.
    assert (
        hubspot.signature_v3("secret", "POST", "https://a.example/h?x=1", b"{}", "1700000000000")
        == "KcMquu0EpEAqXCkBzPPIE9X+3nHwpD6pFPFlQw/qz5w="  # openssl dgst -hmac
    )


def test_v3_decodes_the_escapes_hubspot_lists_before_signing() -> None:
    encoded = "https://cdp.example.jp/v1/webhooks/hubspot?state=a%3Ab%2Cc%40d"
    assert hubspot.decode_uri(encoded) == "https://cdp.example.jp/v1/webhooks/hubspot?state=a:b,c@d"
    sig = hubspot.signature_v3(SECRET, "POST", encoded, b"[]", "1")
    assert sig == hubspot.signature_v3(SECRET, "POST", hubspot.decode_uri(encoded), b"[]", "1")


def v3_headers(body: bytes, at: datetime, secret: str = SECRET, uri: str = URL) -> dict[str, str]:
    ms = str(int(at.timestamp() * 1000))
    return {
        hubspot.V3_HEADER: hubspot.signature_v3(secret, "POST", uri, body, ms),
        hubspot.TIMESTAMP_HEADER: ms,
    }


def test_verify_accepts_v3_and_refuses_forgeries_and_replays() -> None:
    body = b'[{"eventId":1}]'
    now = RECEIVED
    hubspot.verify("POST", URL, body, v3_headers(body, now - timedelta(minutes=4)), SECRET, now)
    with pytest.raises(AuthError, match="more than 5 minutes"):
        hubspot.verify("POST", URL, body, v3_headers(body, now - timedelta(minutes=6)), SECRET, now)
    with pytest.raises(AuthError, match="does not match"):
        hubspot.verify("POST", URL, body + b" ", v3_headers(body, now), SECRET, now)
    with pytest.raises(AuthError, match="does not match"):
        hubspot.verify("POST", URL, body, v3_headers(body, now, "other"), SECRET, now)
    with pytest.raises(AuthError, match="does not match"):  # signed for another URL
        other = v3_headers(body, now, uri="https://evil.example/x")
        hubspot.verify("POST", URL, body, other, SECRET, now)
    with pytest.raises(AuthError, match="missing"):
        hubspot.verify("POST", URL, body, {}, SECRET, now)


def test_verify_accepts_v1_and_v2_by_version_header() -> None:
    now = RECEIVED
    v1 = {
        "X-HubSpot-Signature-Version": "v1",
        "X-HubSpot-Signature": hubspot.signature_v1(DOC_SECRET, DOC_V1_BODY),
    }
    hubspot.verify("POST", URL, DOC_V1_BODY, v1, DOC_SECRET, now)
    v2 = {
        "X-HubSpot-Signature-Version": "v2",
        "X-HubSpot-Signature": hubspot.signature_v2(SECRET, "POST", URL, b"[]"),
    }
    hubspot.verify("POST", URL, b"[]", v2, SECRET, now)
    with pytest.raises(AuthError):
        hubspot.verify("POST", URL, b"[ ]", v2, SECRET, now)
    with pytest.raises(AuthError, match="not v1 or v2"):
        hubspot.verify("POST", URL, b"[]", {**v2, "X-HubSpot-Signature-Version": "v9"}, SECRET, now)


def deal_event(event_id: int, kind: str, **fields: Any) -> dict[str, Any]:
    """A Webhooks API event as HubSpot documents it, plus the contact a workflow adds."""
    return {
        "eventId": event_id,
        "subscriptionId": 25,
        "portalId": 33,
        "appId": 1160452,
        "occurredAt": 1768446000000,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": 9001,
        "changeSource": "CRM",
        **fields,
    }


def decoded(raw: dict[str, Any]) -> AnyEvent:
    return decode(stamp(raw, RECEIVED))


def test_deal_events_map_to_the_contract() -> None:
    person = {"email": "hanako@example.jp"}
    body = [
        deal_event(
            1,
            "deal.creation",
            properties={"dealstage": "appointmentscheduled", "amount": "120000"},
            **person,
        ),
        deal_event(
            2,
            "deal.propertyChange",
            propertyName="dealstage",
            propertyValue="presentationscheduled",
            **person,
        ),
        deal_event(
            3,
            "deal.propertyChange",
            propertyName="dealstage",
            propertyValue="closedwon",
            properties={"amount": {"value": "98000"}, "closedate": "1769817600000"},
            **person,
        ),
        deal_event(
            4, "deal.propertyChange", propertyName="dealstage", propertyValue="closedlost", **person
        ),
    ]
    mapped = hubspot.to_events(orjson.loads(orjson.dumps(body)))
    assert mapped.skipped == []
    events = [decoded(raw) for raw in mapped.events]
    assert [type(e) for e in events] == [DealCreated, DealStageChanged, DealWon, DealLost]
    created, changed, won, _ = events
    assert created.properties.stage == "appointmentscheduled"
    assert str(created.properties.amount) == "120000"
    assert changed.properties.stage == "presentationscheduled"
    assert str(won.properties.amount) == "98000"
    assert str(won.properties.close_date) == "2026-01-31"
    assert {e.message_id for e in events} == {f"hubspot:{i}" for i in (1, 2, 3, 4)}
    assert all(e.properties.crm == "hubspot" and e.user_id is None for e in events)
    assert created.context.traits is not None and created.context.traits.email == person["email"]
    assert created.timestamp == datetime(2026, 1, 15, 3, 0, tzinfo=UTC)


def test_events_without_a_person_or_a_deal_fact_are_skipped_with_the_reason() -> None:
    body = [
        deal_event(5, "deal.propertyChange", propertyName="dealstage", propertyValue="closedwon"),
        deal_event(
            6,
            "deal.propertyChange",
            propertyName="hs_next_step",
            propertyValue="call",
            email="a@x.jp",
        ),
        deal_event(7, "contact.creation"),
    ]
    mapped = hubspot.to_events(body)
    assert mapped.events == []
    reasons = [str(s) for s in mapped.skipped]
    assert "no person" in reasons[0] and "9001" in reasons[0]
    assert "'hs_next_step' is not a deal fact we map" in reasons[1]
    assert "contact.creation" in reasons[2]


@pytest.mark.parametrize(
    ("name", "value", "field", "expected"),
    [
        ("amount", "150000", "amount", "150000"),
        ("dealname", "卸 春の追加", "name", "卸 春の追加"),
        ("closedate", "1769817600000", "close_date", "2026-01-31"),
        ("hubspot_owner_id", "77", "owner", "77"),
        ("closed_lost_reason", "価格", "lost_reason", "価格"),
    ],
)
def test_a_property_change_without_the_stage_is_deal_updated(
    name: str, value: str, field: str, expected: str
) -> None:
    """The Webhooks API sends one property per event: an edit is Deal Updated, no status."""
    body = [
        deal_event(6, "deal.propertyChange", propertyName=name, propertyValue=value, email="a@x.jp")
    ]
    mapped = hubspot.to_events(body)
    assert mapped.skipped == []
    (event,) = (decoded(raw) for raw in mapped.events)
    assert isinstance(event, DealUpdated) and event.properties.deal_id == "9001"
    assert str(getattr(event.properties, field)) == expected
    assert event.properties.stage is None and event.message_id == "hubspot:6"


def test_custom_won_stages_and_engagements() -> None:
    mapping = hubspot.HubSpotMapping(stages=Stages.of(["1234567"], []))
    won = deal_event(
        8, "deal.propertyChange", propertyName="dealstage", propertyValue="1234567", user_id="c-881"
    )
    call = {
        "eventId": 9,
        "subscriptionType": "object.creation",
        "objectTypeId": "0-48",
        "objectId": 555,
        "occurredAt": 1768446000000,
        "properties": {"hs_call_disposition": "connected", "hubspot_owner_id": "77"},
        "email": "taro@example.jp",
    }
    events = [decoded(e) for e in hubspot.to_events([won, call], mapping).events]
    assert isinstance(events[0], DealWon) and events[0].user_id == "c-881"
    activity = events[1]
    assert isinstance(activity, SalesActivityLogged)
    assert activity.properties.activity_type == "call"
    assert activity.properties.outcome == "connected"
    assert activity.properties.owner == "77"


def test_a_workflow_body_without_event_id_gets_a_stable_message_id() -> None:
    body = {
        "subscriptionType": "deal.creation",
        "objectId": 1,
        "email": "a@example.jp",
        "properties": {"hs_lastmodifieddate": "2026-01-15T03:00:00Z"},
    }
    first = hubspot.to_events(body).events[0]
    retried = hubspot.to_events({**body, "attemptNumber": 2}).events[0]
    assert first["messageId"] == retried["messageId"]
    assert first["messageId"].startswith("hubspot:wf:")
    assert first["timestamp"] == "2026-01-15T03:00:00.000Z"
