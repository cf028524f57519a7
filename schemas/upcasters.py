"""Upcasters: pure functions that lift a stored raw event to the next version.

Stored events are never edited. When an event type's contract changes, its
version goes up and an ``upcast_vN_vN1(raw) -> raw`` function is registered
here; the deserializer runs the chain on the raw dict before validation, so
folds only ever see the current shape.

Registered chain:

- ``Order Completed`` v1 → v2: v1 producers wrote ``orderId`` and ``total``
  and products with ``id``; v2 follows Segment's E-commerce v2 spec
  (``order_id``, ``revenue``, ``products[].product_id``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Raw = dict[str, Any]
Upcaster = Callable[[Raw], Raw]


def upcast_order_completed_v1_v2(raw: Raw) -> Raw:
    """Order Completed v1 → v2 (rename orderId/total/id to the E-commerce v2 names)."""
    given = raw.get("properties") or {}
    if not isinstance(given, dict):
        return {**raw, "schemaVersion": 2}  # validation names properties as the bad field
    props = dict(given)
    if "orderId" in props and "order_id" not in props:
        props["order_id"] = props.pop("orderId")
    if "total" in props and "revenue" not in props:
        props["revenue"] = props.pop("total")
    products = []
    items = props.get("products")
    for item in items if isinstance(items, list) else []:
        product = dict(item) if isinstance(item, dict) else item
        if isinstance(product, dict) and "id" in product and "product_id" not in product:
            product["product_id"] = product.pop("id")
        products.append(product)
    if products:
        props["products"] = products
    return {**raw, "properties": props, "schemaVersion": 2}


#: tag → {from_version: upcaster to from_version + 1}
UPCASTERS: dict[str, dict[int, Upcaster]] = {
    "Order Completed": {1: upcast_order_completed_v1_v2},
}


def upcast(tag: str, raw: Raw, current: int) -> Raw:
    """Run ``raw`` through the upcasters of ``tag`` until it is at ``current``.

    A raw event without ``schemaVersion`` is taken to be at the current
    version (producers that never heard of versions write today's shape).
    """
    version = raw.get("schemaVersion", current)
    if not isinstance(version, int) or isinstance(version, bool) or version == current:
        return raw
    chain = UPCASTERS.get(tag, {})
    while version < current:
        step = chain.get(version)
        if step is None:
            break  # validation will report the unsupported version
        raw = step(raw)
        version += 1
    return raw
