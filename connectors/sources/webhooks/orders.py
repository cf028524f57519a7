"""The generic order webhook: this platform's own documented order JSON.

For order systems that are not Shopify (a home-grown cart, an EC-CUBE or
futureshop export job, a POS): post one order per request. There is no
signature scheme of its own; the route authenticates the request with a
source's write key like any collector call.

The shape (``*`` marks required fields)::

    {
      "order_id": "A-10023",                      * string or integer
      "status": "completed",                      * "completed" or "refunded"
      "placed_at": "2026-01-15T10:30:00+09:00",   * ISO-8601 with a UTC offset
      "total": 3480,                              * number or decimal string, >= 0
      "currency": "JPY",                            ISO 4217; default JPY
      "customer": {                                 give id, email or phone to
        "id": "c-881",                              attach the order to a person
        "email": "hanako@example.jp",
        "phone": "090-1234-5678",
        "first_name": "花子",
        "last_name": "山田"
      },
      "anonymous_id": "5f0c3b1e-...",               the shopper's browser anonymousId
      "items": [
        {"product_id": "tea-01",                  * per item
         "sku": "TEA-01-100G", "name": "抹茶", "category": "tea",
         "price": 1200, "quantity": 2}            quantity defaults to 1
      ],
      "refund_total": 1200,                         "refunded" only; absent = whole order
      "refunded_at": "2026-01-20T09:00:00+09:00"    "refunded" only; absent = when received
    }

Mapping:

- ``completed`` → **Order Completed** (``messageId`` ``order-{order_id}``;
  ``revenue`` and ``total`` are ``total``; ``timestamp`` is ``placed_at``).
- ``refunded`` → the same Order Completed (so a refund of an order this
  platform never saw still has its order; when it was seen, the repeated
  ``messageId`` stores nothing new) plus **Order Refunded** with ``messageId``
  ``order-refund-{order_id}-{refund_total}`` (``full`` when the whole order
  was refunded), so each distinct partial refund is one event and a resent
  one is a duplicate.

Identity: ``customer.id`` is the shop's own customer id and becomes ``userId``
unchanged (the same id its web tracker sends); ``anonymous_id`` becomes
``anonymousId``; email, phone and names go to ``context.traits``. An order
with neither id gets ``anonymousId`` ``order-{order_id}`` so that it is still
an event of someone, and identity links it by email or phone.

Errors are ``UnmappableError`` naming the order and the field path, e.g.
``generic order A-10023: items[1].product_id is missing``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from cdp.errors import UnmappableError
from connectors.sources.webhooks import (
    RawEvent,
    amount,
    iso_from_text,
    lookup,
    need,
    need_id,
    optional_id,
    optional_text,
    person_traits,
    track,
    within,
)

STATUSES: Final = ("completed", "refunded")


def to_events(payload: dict[str, Any]) -> list[RawEvent]:
    """Order Completed (and Order Refunded for a refunded order) for one generic order."""
    if not isinstance(payload, dict):
        raise UnmappableError("generic order: the body must be a JSON object")
    try:
        order_id = need_id(payload, "order_id")
    except UnmappableError as error:
        raise UnmappableError(f"generic order: {error}") from None
    try:
        return _events(payload, order_id)
    except UnmappableError as error:
        raise UnmappableError(f"generic order {order_id}: {error}") from None


def _events(order: dict[str, Any], order_id: str) -> list[RawEvent]:
    status = need(order, "status")
    if status not in STATUSES:
        raise UnmappableError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    user_id = optional_id(order, "customer.id")
    anonymous_id = optional_id(order, "anonymous_id")
    if user_id is None and anonymous_id is None:
        anonymous_id = f"order-{order_id}"
    currency = optional_text(order, "currency")
    total = amount(need(order, "total"), "total")
    props: dict[str, Any] = {"order_id": order_id, "revenue": total, "total": total}
    if currency is not None:
        props["currency"] = currency
    props["products"] = _products(order)
    traits = person_traits(
        optional_text(order, "customer.email"),
        optional_text(order, "customer.phone"),
        optional_text(order, "customer.first_name"),
        optional_text(order, "customer.last_name"),
    )
    completed = track(
        "Order Completed",
        f"order-{order_id}",
        props,
        timestamp=iso_from_text(need(order, "placed_at"), "placed_at"),
        user_id=user_id,
        anonymous_id=anonymous_id,
        traits=traits,
    )
    if status == "completed":
        return [completed]
    refund: dict[str, Any] = {"order_id": order_id}
    refund_total = lookup(order, "refund_total")
    key = "full"
    if refund_total is not None and refund_total != "":
        refund["total"] = amount(refund_total, "refund_total")
        key = _canonical(refund["total"])
    if currency is not None:
        refund["currency"] = currency
    refunded_at = lookup(order, "refunded_at")
    refunded = track(
        "Order Refunded",
        f"order-refund-{order_id}-{key}",
        refund,
        timestamp=None if refunded_at is None else iso_from_text(refunded_at, "refunded_at"),
        user_id=user_id,
        anonymous_id=anonymous_id,
        traits=traits,
    )
    return [completed, refunded]


def _products(order: dict[str, Any]) -> list[dict[str, Any]]:
    items = lookup(order, "items")
    if items is None:
        return []
    if not isinstance(items, list):
        raise UnmappableError("items must be a list")
    products = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise UnmappableError(f"items[{i}] must be an object")
        with within(f"items[{i}]"):
            products.append(_product(item))
    return products


def _product(item: dict[str, Any]) -> dict[str, Any]:
    product: dict[str, Any] = {"product_id": need_id(item, "product_id")}
    for name in ("sku", "name", "category"):
        text = optional_text(item, name)
        if text is not None:
            product[name] = text
    price = item.get("price")
    if price is not None and price != "":
        product["price"] = amount(price, "price")
    quantity = item.get("quantity", 1)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise UnmappableError(f"quantity must be a whole number of at least 1, not {quantity!r}")
    product["quantity"] = quantity
    return product


def _canonical(text: str) -> str:
    """``1200``, ``1200.0`` and ``1200.00`` are one refund amount: one ``messageId``."""
    return format(Decimal(text).normalize(), "f")
