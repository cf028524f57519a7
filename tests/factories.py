"""Builders of valid events for tests: raw dicts (wire form) and decoded models.

Every builder takes the identifiers and the event time as keywords and fills
the rest with valid defaults, so a test says only what matters to it::

    order(user_id="u1", at=T0, order_id="o1", revenue=1200)
    identify(anonymous_id="a1", at=T0, email="hanako@example.jp")
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas import AnyEvent, decode

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
_counter = itertools.count(1)


def at_days(days: float) -> datetime:
    """T0 plus ``days`` days."""
    return T0 + timedelta(days=days)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def envelope(
    kind: str,
    *,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    at: datetime = T0,
    message_id: str | None = None,
    context: dict[str, Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A raw event dict of message type ``kind``."""
    raw: dict[str, Any] = {
        "type": kind,
        "messageId": message_id or f"msg-{next(_counter):08d}",
        "timestamp": _iso(at),
        "receivedAt": _iso(at + timedelta(seconds=1)),
    }
    if user_id is not None:
        raw["userId"] = user_id
    if anonymous_id is not None:
        raw["anonymousId"] = anonymous_id
    if context is not None:
        raw["context"] = context
    raw.update(fields)
    return raw


def raw_track(event: str, properties: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return envelope("track", event=event, properties=properties or {}, **kw)


def raw_identify(*, traits: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return envelope("identify", traits=traits or {}, **kw)


def raw_page(path: str = "/", **kw: Any) -> dict[str, Any]:
    props = {"path": path, "url": f"https://shop.example.jp{path}"}
    return envelope("page", properties=props, **kw)


def raw_order(
    order_id: str, revenue: float, products: list[dict[str, Any]] | None = None, **kw: Any
) -> dict[str, Any]:
    items = (
        products
        if products is not None
        else [
            {
                "product_id": "p-1",
                "name": "抹茶",
                "category": "tea",
                "price": revenue,
                "quantity": 1,
            }
        ]
    )
    props = {"order_id": order_id, "revenue": revenue, "currency": "JPY", "products": items}
    return raw_track("Order Completed", props, **kw)


def identify(**kw: Any) -> AnyEvent:
    """A decoded identify; ``email``/``phone``/other traits may be given directly."""
    traits = kw.pop("traits", {}) or {}
    for name in ("email", "phone", "first_name", "last_name", "gender", "birthday"):
        if name in kw:
            traits[name] = kw.pop(name)
    return decode(raw_identify(traits=traits, **kw))


def page(path: str = "/", **kw: Any) -> AnyEvent:
    return decode(raw_page(path, **kw))


def track(event: str, properties: dict[str, Any] | None = None, **kw: Any) -> AnyEvent:
    return decode(raw_track(event, properties, **kw))


def order(order_id: str, revenue: float, **kw: Any) -> AnyEvent:
    return decode(raw_order(order_id, revenue, **kw))


def message(channel: str, channel_user_id: str, text: str = "こんにちは", **kw: Any) -> AnyEvent:
    props = {"channel": channel, "channel_user_id": channel_user_id, "text": text}
    return track("Message Received", props, **kw)
