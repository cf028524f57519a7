"""The generic order JSON: mapping, idempotency and errors that name the field."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from cdp.errors import UnmappableError
from connectors.sources.webhooks import orders
from schemas import AnyEvent, OrderCompleted, OrderRefunded, decode, stamp

RECEIVED = datetime(2026, 1, 21, 0, 0, tzinfo=UTC)

# The example in the orders module docstring.
ORDER: dict[str, Any] = {
    "order_id": "A-10023",
    "status": "completed",
    "placed_at": "2026-01-15T10:30:00+09:00",
    "total": 3480,
    "currency": "JPY",
    "customer": {
        "id": "c-881",
        "email": "hanako@example.jp",
        "phone": "090-1234-5678",
        "first_name": "花子",
        "last_name": "山田",
    },
    "items": [
        {
            "product_id": "tea-01",
            "sku": "TEA-01-100G",
            "name": "抹茶",
            "category": "tea",
            "price": 1200,
            "quantity": 2,
        },
        {"product_id": "cup-03", "name": "湯呑み", "price": "1080"},
    ],
}


def decoded(raw: dict[str, Any]) -> AnyEvent:
    return decode(stamp(raw, RECEIVED))


def test_a_completed_order_becomes_order_completed() -> None:
    [raw] = orders.to_events(ORDER)
    event = decoded(raw)
    assert isinstance(event, OrderCompleted)
    assert event.message_id == "order-A-10023"
    assert (event.user_id, event.anonymous_id) == ("c-881", None)
    assert event.timestamp == datetime(2026, 1, 15, 1, 30, tzinfo=UTC)
    props = event.properties
    assert (props.order_id, props.revenue, props.total, props.currency) == (
        "A-10023",
        Decimal("3480"),
        Decimal("3480"),
        "JPY",
    )
    assert [(p.product_id, p.sku, p.category, p.price, p.quantity) for p in props.products] == [
        ("tea-01", "TEA-01-100G", "tea", Decimal("1200"), 2),
        ("cup-03", None, None, Decimal("1080"), 1),
    ]
    traits = event.context.traits
    assert traits is not None
    assert (traits.email, traits.phone, traits.last_name) == (
        "hanako@example.jp",
        "090-1234-5678",
        "山田",
    )


def test_the_same_order_twice_gives_the_same_events() -> None:
    assert orders.to_events(ORDER) == orders.to_events(copy.deepcopy(ORDER))


def test_a_refunded_order_brings_its_order_and_the_refund() -> None:
    refunded = {
        **ORDER,
        "status": "refunded",
        "refund_total": "1200.00",
        "refunded_at": "2026-01-20T09:00:00+09:00",
    }
    completed, refund = (decoded(raw) for raw in orders.to_events(refunded))
    assert isinstance(completed, OrderCompleted)
    assert completed.message_id == "order-A-10023"  # a duplicate if the order came before
    assert isinstance(refund, OrderRefunded)
    assert refund.message_id == "order-refund-A-10023-1200"
    assert refund.user_id == "c-881"
    assert (refund.properties.order_id, refund.properties.total) == ("A-10023", Decimal("1200"))
    assert refund.timestamp == datetime(2026, 1, 20, 0, 0, tzinfo=UTC)


def test_one_refund_amount_written_two_ways_is_one_message_id() -> None:
    ids = {
        orders.to_events({**ORDER, "status": "refunded", "refund_total": total})[1]["messageId"]
        for total in (1200, "1200", "1200.00", 1200.0)
    }
    assert ids == {"order-refund-A-10023-1200"}


def test_a_whole_order_refund_has_no_total_and_happens_when_received() -> None:
    raw = orders.to_events({**ORDER, "status": "refunded"})[1]
    event = decoded(raw)
    assert isinstance(event, OrderRefunded)
    assert event.message_id == "order-refund-A-10023-full"
    assert event.properties.total is None  # the contract's "whole order"
    assert event.timestamp == RECEIVED


def test_identity_falls_back_to_the_browser_then_to_the_order() -> None:
    guest = {**ORDER, "customer": {"email": "taro@example.jp"}, "anonymous_id": "a-77"}
    event = decoded(orders.to_events(guest)[0])
    assert (event.user_id, event.anonymous_id) == (None, "a-77")
    nobody = {**ORDER, "customer": None}
    event = decoded(orders.to_events(nobody)[0])
    assert (event.user_id, event.anonymous_id) == (None, "order-A-10023")
    assert event.context.traits is None


def test_integer_ids_and_no_items_are_fine() -> None:
    order = {**ORDER, "order_id": 10023, "customer": {"id": 881}, "items": None}
    event = decoded(orders.to_events(order)[0])
    assert isinstance(event, OrderCompleted)
    assert (event.message_id, event.user_id) == ("order-10023", "881")
    assert event.properties.products == ()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"order_id": None}, "generic order: order_id is missing"),
        ({"order_id": True}, "generic order: order_id must be a string or an integer id"),
        (
            {"status": "shipped"},
            "A-10023: status must be one of completed, refunded, not 'shipped'",
        ),
        ({"status": None}, "A-10023: status is missing"),
        ({"placed_at": None}, "A-10023: placed_at is missing"),
        ({"placed_at": "2026-01-15 10:30"}, "placed_at '2026-01-15 10:30' has no UTC offset"),
        ({"placed_at": "yesterday"}, "placed_at is not an ISO-8601 timestamp"),
        ({"total": -1}, "total must be a finite amount of at least 0"),
        ({"total": "NaN"}, "total must be a finite amount of at least 0"),
        ({"total": "¥3,480"}, "total must be a decimal amount"),
        ({"items": {"product_id": "x"}}, "items must be a list"),
        ({"items": [{"name": "抹茶"}]}, r"A-10023: items\[0\]\.product_id is missing"),
        ({"items": [{"product_id": "x", "quantity": 0}]}, r"items\[0\]\.quantity must be"),
        ({"items": [{"product_id": "x", "price": "free"}]}, r"items\[0\]\.price must be"),
        ({"items": ["tea-01"]}, r"items\[0\] must be an object"),
        ({"status": "refunded", "refund_total": "all"}, "refund_total must be a decimal amount"),
        ({"customer": {"id": ["c-881"]}}, "customer.id must be a string or an integer id"),
    ],
)
def test_errors_name_the_order_and_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(UnmappableError, match=message):
        orders.to_events({**ORDER, **change})


def test_a_body_that_is_not_an_object_is_unmappable() -> None:
    with pytest.raises(UnmappableError, match="must be a JSON object"):
        orders.to_events([ORDER])  # type: ignore[arg-type]  # wrong on purpose
