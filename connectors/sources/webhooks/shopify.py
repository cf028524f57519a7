"""Shopify order webhooks: verify ``X-Shopify-Hmac-Sha256``, map orders and refunds.

Signature (shopify.dev, "Deliver webhooks through HTTPS" → "Verify the
webhook"): Shopify computes HMAC-SHA256 over the raw request body with the
app's client secret and sends the base64 digest in ``X-Shopify-Hmac-Sha256``.
``verify`` recomputes it over the exact bytes received and compares in
constant time.

Topics (the ``X-Shopify-Topic`` header):

- ``orders/create`` and ``orders/paid`` → **Order Completed**. Both carry the
  same order object and get the same ``messageId`` (``shopify-order-{id}``),
  so a shop subscribed to both, and Shopify's retries, store one event.
  ``order_id`` is the order's ``id`` (not its display name ``#1001``, kept as
  ``order_name``); ``revenue`` and ``total`` are ``total_price``; ``tax``,
  ``discount`` and ``shipping`` come from ``total_tax``, ``total_discounts``
  and ``total_shipping_price_set.shop_money.amount``; products are the
  ``line_items``. The event time is ``processed_at`` (the date Shopify reports
  orders under, also for imported orders), else ``created_at``.
- ``refunds/create`` → **Order Refunded** with ``messageId``
  ``shopify-refund-{refund id}``; ``total`` is the sum of the refund's
  transactions of kind ``refund`` that did not fail (status ``failure`` or
  ``error``); products are the ``refund_line_items``.

Identity: an order with a customer has ``userId`` ``shopify-{customer.id}``
and the customer's email, phone and names in ``context.traits`` (order-level
``email``/``phone`` and the billing address fill gaps). Every order also
carries ``anonymousId`` ``shopify-order-{order id}``. Refund payloads have no
customer (their ``user_id`` is the staff member who refunded), so a refund is
sent with that same anonymous id: the order event has already tied it to the
customer, and a refund that arrives first joins the customer once its order
does. ``userId`` is set on a refund only if a future payload carries
``customer.id``.
"""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any, Final

from cdp.errors import UnmappableError
from connectors.sources.webhooks import (
    RawEvent,
    amount,
    check_digest,
    digest_from_base64,
    header_value,
    hmac_sha256,
    iso_from_text,
    lookup,
    need,
    need_id,
    optional_id,
    optional_text,
    person_traits,
    require_secret,
    track,
    within,
)

HEADER: Final = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER: Final = "X-Shopify-Topic"
ORDER_TOPICS: Final = ("orders/create", "orders/paid")
REFUND_TOPIC: Final = "refunds/create"
TOPICS: Final = (*ORDER_TOPICS, REFUND_TOPIC)
_FAILED: Final = frozenset({"failure", "error"})


def verify(body: bytes, hmac_header: str | None, secret: str) -> None:
    """Check ``X-Shopify-Hmac-Sha256`` against ``body``; ``AuthError`` saying what is wrong.

    ``body`` must be the raw request bytes: parsing and re-serialising JSON
    changes them. ``secret`` is the app's client secret (``ConfigError`` if empty).
    """
    key = require_secret(secret, "Shopify client secret")
    given = digest_from_base64(header_value(hmac_header, HEADER), HEADER)
    check_digest(hmac_sha256(key, body), given, HEADER)


def signature(body: bytes, secret: str) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value Shopify would send for ``body`` (tests, replays)."""
    key = require_secret(secret, "Shopify client secret")
    return base64.b64encode(hmac_sha256(key, body)).decode("ascii")


def to_events(topic: str, payload: dict[str, Any]) -> list[RawEvent]:
    """Raw events for a verified webhook of ``topic``.

    ``UnmappableError`` for an unknown topic or a payload missing what the
    event needs; the message names the topic, the order or refund id and the
    field path.
    """
    if topic not in TOPICS:
        raise UnmappableError(
            f"Shopify topic {topic!r} has no mapping; supported: {', '.join(TOPICS)}"
        )
    if not isinstance(payload, dict):
        raise UnmappableError(f"Shopify {topic} payload must be a JSON object")
    kind = "refund" if topic == REFUND_TOPIC else "order"
    try:
        if topic == REFUND_TOPIC:
            return [_order_refunded(payload)]
        return [_order_completed(payload)]
    except UnmappableError as error:
        raise UnmappableError(
            f"Shopify {topic} {kind} {_id_for_message(payload)}: {error}"
        ) from None


def _id_for_message(payload: dict[str, Any]) -> str:
    value = payload.get("id")
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) else "(no id)"


def _order_completed(order: dict[str, Any]) -> RawEvent:
    order_id = need_id(order, "id")
    customer_id = optional_id(order, "customer.id")
    return track(
        "Order Completed",
        f"shopify-order-{order_id}",
        _order_props(order, order_id),
        timestamp=_when(order),
        user_id=None if customer_id is None else f"shopify-{customer_id}",
        anonymous_id=f"shopify-order-{order_id}",
        traits=_traits(order),
    )


def _order_props(order: dict[str, Any], order_id: str) -> dict[str, Any]:
    total = amount(need(order, "total_price"), "total_price")
    props: dict[str, Any] = {"order_id": order_id, "revenue": total, "total": total}
    currency = optional_text(order, "currency")
    if currency is not None:
        props["currency"] = currency
    for name, path in (
        ("tax", "total_tax"),
        ("discount", "total_discounts"),
        ("shipping", "total_shipping_price_set.shop_money.amount"),
    ):
        value = lookup(order, path)
        if value is not None and value != "":
            props[name] = amount(value, path)
    codes = lookup(order, "discount_codes")
    if isinstance(codes, list) and codes and isinstance(codes[0], dict):
        coupon = optional_text(codes[0], "code")
        if coupon is not None:
            props["coupon"] = coupon
    order_name = optional_text(order, "name")
    if order_name is not None:
        props["order_name"] = order_name
    items = lookup(order, "line_items")
    if items is not None:
        if not isinstance(items, list):
            raise UnmappableError("line_items is not a list")
        props["products"] = [_line_item(item, f"line_items[{i}]") for i, item in enumerate(items)]
    return props


def _order_refunded(refund: dict[str, Any]) -> RawEvent:
    refund_id = need_id(refund, "id")
    order_id = need_id(refund, "order_id")
    total, currency = _refunded_amount(refund)
    props: dict[str, Any] = {"order_id": order_id, "total": total}
    if currency is not None:
        props["currency"] = currency
    lines = lookup(refund, "refund_line_items")
    if lines is not None:
        if not isinstance(lines, list):
            raise UnmappableError("refund_line_items is not a list")
        props["products"] = [_refund_line(line, i) for i, line in enumerate(lines)]
    customer_id = optional_id(refund, "customer.id")
    return track(
        "Order Refunded",
        f"shopify-refund-{refund_id}",
        props,
        timestamp=_when(refund),
        user_id=None if customer_id is None else f"shopify-{customer_id}",
        anonymous_id=f"shopify-order-{order_id}",
    )


def _refunded_amount(refund: dict[str, Any]) -> tuple[str, str | None]:
    """Sum of the refund's ``refund`` transactions that did not fail, and their currency."""
    transactions = lookup(refund, "transactions")
    if transactions is None:
        transactions = []
    if not isinstance(transactions, list):
        raise UnmappableError("transactions is not a list")
    total = Decimal(0)
    currency: str | None = None
    for i, tx in enumerate(transactions):
        path = f"transactions[{i}]"
        if not isinstance(tx, dict):
            raise UnmappableError(f"{path} is not an object")
        if tx.get("kind") != "refund" or tx.get("status") in _FAILED:
            continue
        with within(path):
            total += Decimal(amount(need(tx, "amount"), "amount"))
            currency = currency or optional_text(tx, "currency")
    return str(total), currency


def _refund_line(line: Any, index: int) -> dict[str, Any]:
    path = f"refund_line_items[{index}]"
    if not isinstance(line, dict):
        raise UnmappableError(f"{path} is not an object")
    with within(path):
        product = _line_item(need(line, "line_item"), "line_item")
        if line.get("quantity") is not None:
            product["quantity"] = _quantity(line["quantity"])
    return product


def _line_item(item: Any, path: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise UnmappableError(f"{path} is not an object")
    with within(path):
        return _product(item)


def _product(item: dict[str, Any]) -> dict[str, Any]:
    """A Shopify line item as an E-commerce product.

    ``product_id`` is null on custom line items (gift wrapping, manual
    charges); the SKU, else ``shopify-line-item-{id}``, stands in for it.
    """
    sku = optional_text(item, "sku")
    product_id = optional_id(item, "product_id")
    if product_id is None:
        line_id = optional_id(item, "id")
        product_id = sku or (None if line_id is None else f"shopify-line-item-{line_id}")
    if product_id is None:
        raise UnmappableError("product_id is missing (and there is no sku or id to stand in)")
    product: dict[str, Any] = {"product_id": product_id}
    if sku is not None:
        product["sku"] = sku
    for name, field in (("name", "title"), ("variant", "variant_title"), ("brand", "vendor")):
        text = optional_text(item, field)
        if text is not None:
            product[name] = text
    price = item.get("price")
    if price is not None and price != "":
        product["price"] = amount(price, "price")
    if item.get("quantity") is not None:
        product["quantity"] = _quantity(item["quantity"])
    return product


def _quantity(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UnmappableError(f"quantity must be a whole number of at least 1, not {value!r}")
    return value


def _traits(order: dict[str, Any]) -> dict[str, Any]:
    def first(*paths: str) -> str | None:
        for path in paths:
            text = optional_text(order, path)
            if text is not None:
                return text
        return None

    return person_traits(
        first("customer.email", "email", "contact_email"),
        first("customer.phone", "phone", "billing_address.phone"),
        first("customer.first_name", "billing_address.first_name"),
        first("customer.last_name", "billing_address.last_name"),
    )


def _when(data: dict[str, Any]) -> str:
    for path in ("processed_at", "created_at"):
        value = lookup(data, path)
        if value is not None and value != "":
            return iso_from_text(value, path)
    raise UnmappableError("processed_at and created_at are both missing")
