"""``decode_stored`` (validated parts shared between events) equals validation.

For random events of every tag, the stored bytes decode to exactly what
``decode`` gives the raw dict: equal, same types, same ``model_fields_set``,
same JSON dump, also when the parts come from the cache the second time.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from schemas import EventValidationError, decode, decode_stored, dumps
from schemas.envelope import Track
from schemas.events import (
    FORMERLY_GENERIC,
    SCHEMA_VERSIONS,
    TYPED_EVENT_NAMES,
    _as_formerly_accepted,
)
from schemas.stored import deeply_immutable

texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
ids = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00"),
    min_size=1,
    max_size=20,
)
times = st.sampled_from(
    ["2026-01-01T09:00:00Z", "2026-01-01T09:00:00.123+09:00", "2025-12-31T23:59:59.5-05:00"]
)
money = st.one_of(
    st.integers(0, 10**12),
    st.decimals(0, 10**9, places=2).map(str),
    st.sampled_from([0.5, 12.25, 1e-5, 1.23456, 1e20]),  # the last three are refused
)


def optional(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A dict with any subset of ``fields``."""
    return st.fixed_dictionaries({}, optional=fields)


contexts = optional(
    ip=texts,
    userAgent=texts,
    locale=st.sampled_from(["ja-JP", "en-US"]),
    page=optional(path=texts, url=texts, title=texts, referrer=texts),
    campaign=optional(name=texts, source=texts, medium=texts),
    library=optional(name=texts, version=texts),
    traits=optional(
        email=st.sampled_from(["a@example.jp", "null", "bad"]), age=st.integers(-1, 200)
    ),
    extraThing=st.one_of(
        texts, st.lists(st.integers(-(2**63), 2**63 - 1), max_size=2)
    ),  # kept as extras
)
product = st.fixed_dictionaries(
    {"product_id": ids},
    optional={"name": texts, "price": money, "quantity": st.integers(0, 3), "note": texts},
)
PROPERTIES: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "Product Viewed": product,
    "Product Added": product,
    "Order Completed": st.fixed_dictionaries(
        {"order_id": ids, "revenue": money},
        optional={
            "products": st.lists(product, max_size=3),
            "currency": st.sampled_from(["JPY", "usd"]),
        },
    ),
    "Order Refunded": st.fixed_dictionaries({"order_id": ids}, optional={"total": money}),
    "Form Submitted": st.fixed_dictionaries(
        {"form_id": ids}, optional={"fields": st.dictionaries(texts, texts, max_size=2)}
    ),
    "Message Received": st.fixed_dictionaries(
        {"channel": st.sampled_from(["line", "x", "fax"]), "channel_user_id": ids}
    ),
    "Message Sent": st.fixed_dictionaries(
        {"channel": st.sampled_from(["line", "instagram"]), "channel_user_id": ids}
    ),
    "Email Delivered": st.fixed_dictionaries({"campaign_id": ids}),
    "Email Opened": st.fixed_dictionaries({"campaign_id": ids}, optional={"variant": texts}),
    "Email Link Clicked": st.fixed_dictionaries({"campaign_id": ids}, optional={"link_url": texts}),
    "Survey Answered": st.fixed_dictionaries(
        {"survey_id": ids}, optional={"nps": st.integers(-1, 11)}
    ),
    "Support Ticket Opened": st.fixed_dictionaries(
        {"ticket_id": ids}, optional={"priority": st.sampled_from(["low", "meh"])}
    ),
    "Support Ticket Closed": st.fixed_dictionaries(
        {"ticket_id": ids}, optional={"satisfaction": st.integers(0, 6)}
    ),
    "Consent Updated": st.fixed_dictionaries(
        {
            "consents": st.dictionaries(
                st.sampled_from(["email", "ads", "fax"]), st.booleans(), max_size=2
            )
        }
    ),
}
deal = {
    "name": st.one_of(texts, st.integers(0, 99)),  # a number is read as its text
    "pipeline": texts,
    "stage": texts,
    "amount": money,
    "currency": st.sampled_from(["JPY", "usd"]),
    "owner": texts,
    "close_date": st.sampled_from(["2026-03-31", "31/03/2026"]),
    "crm": st.sampled_from(["hubspot", "salesforce"]),
}
PROPERTIES |= {
    "Deal Created": st.fixed_dictionaries({"deal_id": ids}, optional=deal),
    "Deal Stage Changed": st.fixed_dictionaries(
        {"deal_id": ids}, optional={**deal, "previous_stage": texts}
    ),
    "Deal Won": st.fixed_dictionaries({"deal_id": ids}, optional=deal),
    "Deal Lost": st.fixed_dictionaries({"deal_id": ids}, optional={**deal, "lost_reason": texts}),
    "Deal Updated": st.fixed_dictionaries(
        {"deal_id": ids}, optional={**deal, "lost_reason": texts}
    ),
    "Sales Activity Logged": st.fixed_dictionaries(
        {"activity_id": ids, "activity_type": st.sampled_from(["visit", "call", "fax"])},
        optional={"outcome": texts, "owner": texts, "deal_id": ids},
    ),
}
assert set(PROPERTIES) == set(TYPED_EVENT_NAMES)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A raw event of any tag, mostly valid, sometimes not (then both must refuse)."""
    tag = draw(st.sampled_from(sorted(SCHEMA_VERSIONS)))
    raw: dict[str, Any] = {
        "messageId": draw(ids),
        "timestamp": draw(times),
        "receivedAt": draw(times),
    }
    raw |= draw(
        optional(
            userId=ids,
            anonymousId=ids,
            sentAt=times,
            context=contexts,
            integrations=st.just({"All": True}),
        )
    )
    if tag in TYPED_EVENT_NAMES:
        raw |= {"type": "track", "event": tag, "properties": draw(PROPERTIES[tag])}
    else:
        raw["type"] = tag
        raw |= {"track": {"event": draw(ids)}, "identify": {"traits": draw(contexts)}}.get(tag, {})
        raw |= {"group": {"groupId": draw(ids)}, "alias": {"previousId": draw(ids)}}.get(tag, {})
        raw |= draw(optional(name=texts, properties=st.dictionaries(texts, texts, max_size=2)))
    return raw


def same(one: Any, other: Any) -> None:
    assert type(one) is type(other)
    assert one == other
    assert one.model_fields_set == other.model_fields_set
    assert one.model_dump(mode="json") == other.model_dump(mode="json")
    assert dumps(one.model_dump(mode="json", by_alias=True)) == dumps(
        other.model_dump(mode="json", by_alias=True)
    )
    for name, value in one.__dict__.items():
        assert type(value) is type(other.__dict__[name]), name


@settings(max_examples=400, deadline=None)
@given(raw=events())
def test_stored_bytes_decode_as_validation_does(raw: dict[str, Any]) -> None:
    try:
        expected = decode(raw)
    except EventValidationError as error:
        # A stored event the door refuses today is read as it was accepted then
        # (``_as_formerly_accepted``: a NUL in a name...; a sales track stored as a
        # generic track before its name was typed), else refused with the error of
        # that reading.
        refused = error
        legacy = _as_formerly_accepted(raw)
        if legacy is not None:
            try:
                expected = decode(legacy)
            except EventValidationError as second:
                refused = second
            else:
                same(decode_stored(orjson.dumps(raw)), expected)
                return
        elif raw.get("type") == "track" and raw.get("event") in FORMERLY_GENERIC:
            try:
                generic = Track.model_validate(raw)
            except ValidationError:
                pass
            else:
                same(decode_stored(orjson.dumps(raw)), generic)
                return
        with pytest.raises(EventValidationError) as caught:
            decode_stored(orjson.dumps(raw))
        assert str(caught.value) == str(refused)
        return
    for _ in range(2):  # the second time the parts come from the cache
        event = decode_stored(orjson.dumps(raw))
        same(event, expected)
        same(event.context, expected.context)
        if isinstance(event.__dict__.get("properties"), BaseModel):
            same(event.__dict__["properties"], expected.__dict__["properties"])


def test_an_old_version_goes_through_the_upcaster() -> None:
    raw = {
        "type": "track",
        "event": "Order Completed",
        "schemaVersion": 1,
        "userId": "u1",
        "messageId": "m1",
        "timestamp": "2026-01-01T09:00:00Z",
        "receivedAt": "2026-01-01T09:00:01Z",
        "properties": {"orderId": "o1", "total": 1200, "products": [{"id": "p1", "price": "600"}]},
        "context": {"locale": "ja-JP"},
    }
    event = decode_stored(orjson.dumps(raw))
    same(event, decode(raw))
    assert event.properties.revenue == Decimal(1200) and event.schema_version == 2  # type: ignore[attr-defined]


def test_a_sales_track_stored_before_its_name_was_typed_reads_as_it_was_stored() -> None:
    """A shop's own "Deal Updated" track, accepted as a generic track by a release
    before the sales events were typed: the typed contract refuses it (no
    ``deal_id``), the log keeps it, replay reads it as the generic track it was."""
    raw = {
        "type": "track",
        "event": "Deal Updated",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": "2026-01-01T09:00:00Z",
        "receivedAt": "2026-01-01T09:00:01Z",
        "properties": {"note": "called back"},
    }
    with pytest.raises(EventValidationError, match=r"properties\.deal_id"):
        decode(raw)  # refused at the door today
    event = decode_stored(orjson.dumps(raw))
    assert type(event) is Track and event.event == "Deal Updated"
    assert event.properties == {"note": "called back"}
    # Other typed names were typed from the first release: still refused.
    with pytest.raises(EventValidationError, match=r"properties\.order_id"):
        decode_stored(orjson.dumps({**raw, "event": "Order Completed"}))


def test_a_wrong_part_is_refused_as_before() -> None:
    raw = {
        "type": "page",
        "anonymousId": "a1",
        "messageId": "m2",
        "timestamp": "2026-01-01T09:00:00Z",
        "receivedAt": "2026-01-01T09:00:01Z",
        "context": {"page": {"url": ["not", "text"]}},
    }
    with pytest.raises(EventValidationError, match=r"context\.page\.url"):
        decode_stored(orjson.dumps(raw))
    for name in ([], {"a": 1}):  # a name no validation accepts: refused, not a TypeError
        with pytest.raises(EventValidationError, match="event"):
            decode_stored(dumps({**raw, "type": "track", "event": name, "context": {}}))
    with pytest.raises(EventValidationError, match=r"properties\.revenue"):
        decode_stored(
            dumps(
                {
                    **raw,
                    "type": "track",
                    "event": "Order Completed",
                    "properties": {"order_id": "o", "revenue": "-5"},
                }
            )
        )


def test_only_unchangeable_parts_are_shared() -> None:
    base = {
        "type": "page",
        "anonymousId": "a1",
        "timestamp": "2026-01-01T09:00:00Z",
        "receivedAt": "2026-01-01T09:00:01Z",
    }
    plain = {"locale": "ja-JP", "page": {"path": "/"}}
    first, second = (decode_stored({**base, "messageId": m, "context": plain}) for m in ("1", "2"))
    assert first.context is second.context and deeply_immutable(first.context)
    listy = {"locale": "ja-JP", "tags": ["a"]}  # an extra holding a list: each event its own
    first, second = (decode_stored({**base, "messageId": m, "context": listy}) for m in ("3", "4"))
    assert first.context == second.context and first.context is not second.context
