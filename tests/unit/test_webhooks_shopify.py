"""Shopify webhooks: X-Shopify-Hmac-Sha256 verification and order/refund mapping."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from cdp.errors import AuthError, ConfigError, UnmappableError
from connectors.sources.webhooks import shopify
from projections import profile
from projections.identity import IdentityGraph, apply
from schemas import AnyEvent, OrderCompleted, OrderRefunded, decode, stamp

RECEIVED = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
SECRET = "shpss_0123456789abcdef0123456789abcdef"

# Modelled on the orders/create sample payload on shopify.dev (Webhooks → List
# of topics → orders/create), trimmed to the fields the mapping reads plus some
# it ignores, with a Japanese shop's values.
ORDER: dict[str, Any] = {
    "id": 820982911946154508,
    "admin_graphql_api_id": "gid://shopify/Order/820982911946154508",
    "name": "#1001",
    "order_number": 1001,
    "email": "hanako@example.jp",
    "contact_email": "hanako@example.jp",
    "phone": None,
    "created_at": "2026-01-15T10:30:00+09:00",
    "processed_at": "2026-01-15T10:30:00+09:00",
    "currency": "JPY",
    "presentment_currency": "JPY",
    "financial_status": "paid",
    "subtotal_price": "3600",
    "total_discounts": "360",
    "total_tax": "318",
    "total_price": "3740",
    "total_shipping_price_set": {
        "shop_money": {"amount": "500", "currency_code": "JPY"},
        "presentment_money": {"amount": "500", "currency_code": "JPY"},
    },
    "discount_codes": [{"code": "WELCOME10", "amount": "360", "type": "percentage"}],
    "test": False,
    "customer": {
        "id": 115310627314723954,
        "email": "hanako@example.jp",
        "first_name": "花子",
        "last_name": "山田",
        "phone": "090-1234-5678",
        "state": "enabled",
        "currency": "JPY",
    },
    "billing_address": {"first_name": "花子", "last_name": "山田", "province": "東京都"},
    "line_items": [
        {
            "id": 866550311766439020,
            "product_id": 788032119674292922,
            "variant_id": 39072856,
            "sku": "MATCHA-100G",
            "title": "抹茶 100g",
            "variant_title": "100g",
            "vendor": "茶の間",
            "price": "2400",
            "quantity": 1,
        },
        {
            "id": 141249953214522974,
            "product_id": 632910392,
            "sku": "SENCHA-50G",
            "title": "煎茶 50g",
            "variant_title": None,
            "vendor": "茶の間",
            "price": "600",
            "quantity": 2,
        },
    ],
}

# Modelled on the refunds/create sample payload on shopify.dev: a refund of one
# line item, with a failed first attempt and the successful refund transaction.
REFUND: dict[str, Any] = {
    "id": 929361464,
    "order_id": 820982911946154508,
    "created_at": "2026-01-20T09:00:00+09:00",
    "processed_at": "2026-01-20T09:00:00+09:00",
    "note": "破損のため返金",
    "restock": False,
    "user_id": 548380009,  # the staff member, not the customer
    "refund_line_items": [
        {
            "id": 104689539,
            "quantity": 1,
            "line_item_id": 141249953214522974,
            "restock_type": "no_restock",
            "subtotal": 600,
            "line_item": ORDER["line_items"][1],
        }
    ],
    "transactions": [
        {
            "id": 179259969,
            "kind": "refund",
            "status": "failure",
            "amount": "600",
            "currency": "JPY",
        },
        {
            "id": 179259970,
            "kind": "refund",
            "status": "success",
            "amount": "600",
            "currency": "JPY",
        },
        {"id": 179259971, "kind": "capture", "status": "success", "amount": "9999"},
    ],
}


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")


def expected_header(body: bytes, secret: str) -> str:
    # Computed here from Shopify's documented recipe (base64 of HMAC-SHA256 of
    # the raw body, keyed with the app's client secret), independently of the
    # module: shopify.dev publishes the recipe but no secret/body/signature triple.
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def decoded(raw: dict[str, Any]) -> AnyEvent:
    return decode(stamp(raw, RECEIVED))


# --- signature ----------------------------------------------------------------


def test_a_correctly_signed_body_verifies() -> None:
    body = body_of(ORDER)
    shopify.verify(body, expected_header(body, SECRET), SECRET)
    assert shopify.signature(body, SECRET) == expected_header(body, SECRET)


def test_surrounding_whitespace_in_the_header_is_tolerated() -> None:
    body = body_of(ORDER)
    shopify.verify(body, f" {expected_header(body, SECRET)} ", SECRET)


@pytest.mark.parametrize(
    ("body", "header", "secret", "message"),
    [
        (b'{"id": 1}', None, SECRET, "X-Shopify-Hmac-Sha256 header is missing"),
        (b'{"id": 1}', "   ", SECRET, "X-Shopify-Hmac-Sha256 header is missing"),
        (b'{"id": 1}', "not base64!", SECRET, "X-Shopify-Hmac-Sha256 is not valid base64"),
        (b'{"id": 1}', "c2hvcnQ=", SECRET, "decodes to 5 bytes, expected 32"),
        (b'{"id": 2}', expected_header(b'{"id": 1}', SECRET), SECRET, "does not match the body"),
        (b'{"id": 1}', expected_header(b'{"id": 1}', SECRET), "other", "does not match the body"),
    ],
    ids=["missing", "blank", "bad-base64", "short-digest", "tampered-body", "wrong-secret"],
)
def test_bad_signatures_are_refused_with_the_reason(
    body: bytes, header: str | None, secret: str, message: str
) -> None:
    with pytest.raises(AuthError, match=message):
        shopify.verify(body, header, secret)


def test_a_hex_digest_where_base64_belongs_is_called_out() -> None:
    body = b'{"id": 1}'
    hex_header = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    with pytest.raises(AuthError, match="not an HMAC-SHA256 digest"):
        shopify.verify(body, hex_header, SECRET)


def test_an_empty_secret_is_a_configuration_error_not_a_pass() -> None:
    body = b"{}"
    with pytest.raises(ConfigError, match="Shopify client secret is empty"):
        shopify.verify(body, expected_header(body, ""), "")


# --- orders -------------------------------------------------------------------


def test_an_order_becomes_order_completed_with_the_customer_as_identifiers() -> None:
    [raw] = shopify.to_events("orders/create", ORDER)
    event = decoded(raw)
    assert isinstance(event, OrderCompleted)
    assert event.message_id == "shopify-order-820982911946154508"
    assert event.user_id == "shopify-115310627314723954"
    assert event.anonymous_id == "shopify-order-820982911946154508"
    assert event.timestamp == datetime(2026, 1, 15, 1, 30, tzinfo=UTC)
    props = event.properties
    assert props.order_id == "820982911946154508"
    assert props.revenue == props.total == Decimal("3740")
    assert (props.tax, props.discount, props.shipping) == (
        Decimal("318"),
        Decimal("360"),
        Decimal("500"),
    )
    assert props.currency == "JPY"
    assert props.coupon == "WELCOME10"
    assert props.model_extra == {"order_name": "#1001"}
    assert [(p.product_id, p.sku, p.name, p.price, p.quantity) for p in props.products] == [
        ("788032119674292922", "MATCHA-100G", "抹茶 100g", Decimal("2400"), 1),
        ("632910392", "SENCHA-50G", "煎茶 50g", Decimal("600"), 2),
    ]
    traits = event.context.traits
    assert traits is not None
    assert (traits.email, traits.phone, traits.first_name, traits.last_name) == (
        "hanako@example.jp",
        "090-1234-5678",
        "花子",
        "山田",
    )
    assert raw["timestamp"] == "2026-01-15T01:30:00.000Z"


def test_create_paid_and_retries_share_one_message_id() -> None:
    created = shopify.to_events("orders/create", ORDER)
    paid = shopify.to_events("orders/paid", copy.deepcopy(ORDER))
    again = shopify.to_events("orders/create", ORDER)
    assert created == paid == again
    assert {raw["messageId"] for raw in created + paid} == {"shopify-order-820982911946154508"}


def test_mapping_does_not_touch_the_payload() -> None:
    before = copy.deepcopy(ORDER)
    shopify.to_events("orders/create", ORDER)
    assert before == ORDER


def test_an_order_without_a_customer_is_kept_under_its_order_id_and_email() -> None:
    order = {**ORDER, "customer": None, "phone": "+81 80-9876-5432"}
    event = decoded(shopify.to_events("orders/paid", order)[0])
    assert event.user_id is None
    assert event.anonymous_id == "shopify-order-820982911946154508"
    assert event.context.traits is not None
    assert event.context.traits.email == "hanako@example.jp"
    assert event.context.traits.phone == "+81 80-9876-5432"
    assert event.context.traits.first_name == "花子"  # from the billing address


def test_an_unusable_phone_or_email_does_not_cost_the_order() -> None:
    customer = {**ORDER["customer"], "phone": "12", "email": "not an email"}
    order = {**ORDER, "customer": customer, "email": None, "contact_email": None}
    event = decoded(shopify.to_events("orders/create", order)[0])
    assert isinstance(event, OrderCompleted)
    assert event.context.traits is not None
    assert (event.context.traits.email, event.context.traits.phone) == (None, None)


def test_custom_line_items_without_a_product_id_get_a_stand_in() -> None:
    wrapping = {"id": 555, "product_id": None, "sku": "", "title": "ギフト包装", "price": "300"}
    by_sku = {"id": 556, "product_id": None, "sku": "NOSHI", "title": "のし", "price": "0"}
    order = {**ORDER, "line_items": [wrapping, by_sku]}
    event = decoded(shopify.to_events("orders/create", order)[0])
    assert isinstance(event, OrderCompleted)
    assert [p.product_id for p in event.properties.products] == ["shopify-line-item-555", "NOSHI"]


def test_created_at_is_the_time_when_processed_at_is_absent() -> None:
    order = {**ORDER, "processed_at": None, "created_at": "2025-12-31T19:00:00-05:00"}
    [raw] = shopify.to_events("orders/create", order)
    assert raw["timestamp"] == "2026-01-01T00:00:00.000Z"


# --- refunds ------------------------------------------------------------------


def test_a_refund_becomes_order_refunded_with_the_successful_refund_total() -> None:
    [raw] = shopify.to_events("refunds/create", REFUND)
    event = decoded(raw)
    assert isinstance(event, OrderRefunded)
    assert event.message_id == "shopify-refund-929361464"
    assert event.user_id is None  # user_id in the payload is staff, not the customer
    assert event.anonymous_id == "shopify-order-820982911946154508"
    assert event.timestamp == datetime(2026, 1, 20, 0, 0, tzinfo=UTC)
    props = event.properties
    assert (props.order_id, props.total, props.currency) == (
        "820982911946154508",
        Decimal("600"),
        "JPY",
    )
    assert [(p.product_id, p.quantity, p.price) for p in props.products] == [
        ("632910392", 1, Decimal("600"))
    ]


def test_a_refund_without_money_has_total_zero_not_a_whole_order_refund() -> None:
    refund = {**REFUND, "transactions": []}
    event = decoded(shopify.to_events("refunds/create", refund)[0])
    assert isinstance(event, OrderRefunded)
    assert event.properties.total == 0  # absent would mean "whole order refunded"


def test_the_refund_lands_on_the_customer_of_its_order_in_either_order() -> None:
    order = decoded(shopify.to_events("orders/create", ORDER)[0])
    refund = decoded(shopify.to_events("refunds/create", REFUND)[0])
    for first, second in ((order, refund), (refund, order)):
        graph = IdentityGraph()
        apply(graph, first, 0)
        customer = apply(graph, second, 1).customer_id
        assert customer is not None
        assert graph.customer_of("user_id:shopify-115310627314723954") == customer
        assert graph.customer_of("anonymous_id:shopify-order-820982911946154508") == customer
    state = profile.project([order, refund])
    [(order_id, _, net)] = profile.kept_orders(state)
    assert (order_id, net) == ("820982911946154508", Decimal("3140"))


# --- unmappable ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "payload", "message"),
    [
        ("orders/updated", ORDER, "Shopify topic 'orders/updated' has no mapping"),
        ("orders/create", {**ORDER, "id": None}, r"order \(no id\): id is missing"),
        (
            "orders/create",
            {**ORDER, "total_price": None},
            "orders/create order 820982911946154508: total_price is missing",
        ),
        (
            "orders/create",
            {
                **ORDER,
                "line_items": [ORDER["line_items"][0], {**ORDER["line_items"][1], "price": "abc"}],
            },
            r"line_items\[1\]\.price must be a decimal amount",
        ),
        (
            "orders/create",
            {**ORDER, "line_items": [{**ORDER["line_items"][0], "quantity": 0}]},
            r"line_items\[0\]\.quantity must be a whole number",
        ),
        (
            "orders/create",
            {**ORDER, "processed_at": "2026-01-15T10:30:00"},
            "processed_at '2026-01-15T10:30:00' has no UTC offset",
        ),
        (
            "refunds/create",
            {**REFUND, "order_id": None},
            "refunds/create refund 929361464: order_id is missing",
        ),
        (
            "refunds/create",
            {**REFUND, "transactions": [{"kind": "refund", "status": "success"}]},
            r"transactions\[0\]\.amount is missing",
        ),
        (
            "refunds/create",
            {**REFUND, "refund_line_items": [{"quantity": 1}]},
            r"refund_line_items\[0\]\.line_item is missing",
        ),
    ],
    ids=[
        "unknown-topic",
        "no-order-id",
        "no-total",
        "bad-price",
        "zero-quantity",
        "naive-time",
        "refund-no-order",
        "refund-tx-no-amount",
        "refund-line-no-item",
    ],
)
def test_unmappable_payloads_name_the_field(
    topic: str, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnmappableError, match=message):
        shopify.to_events(topic, payload)


def test_a_payload_that_is_not_an_object_is_unmappable() -> None:
    with pytest.raises(UnmappableError, match="must be a JSON object"):
        shopify.to_events("orders/create", [ORDER])  # type: ignore[arg-type]  # wrong on purpose
