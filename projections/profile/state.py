"""The profile's state: ``State``, the record of one customer, and what reads it.

``State`` holds only facts that merge order-independently (see
``projections.profile`` for the rules); anything derived is computed on
reading: ``kept_orders`` here, the ``profiles`` table row in the DuckDB
adapter (``cdp.runtime.columns``). The records the maps hold live in
``projections.profile.parts``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from projections.profile.lww import Lww
from projections.profile.parts import (
    CampaignKey,
    EmailStats,
    Order,
    Refund,
    SnsAccount,
    SurveyAnswer,
    Ticket,
    Touches,
)
from projections.profile.sales import Deal, SalesActivity

TraitValue = str | date | int
"""Type of a reserved trait: text, ``birthday`` (a date) or ``age``."""


@dataclass(frozen=True, slots=True)
class State:
    """One customer's profile. Equal for every order of the same events.

    Maps are plain dicts typed read-only (``Mapping``): a ``State`` is never
    mutated after ``fold`` returns it, and dicts compare by value whatever
    their insertion order.
    """

    traits: Mapping[str, Lww[TraitValue]] = field(default_factory=dict)
    """Reserved traits from identify ``traits`` and any event's ``context.traits``:
    email, phone, first_name, last_name, *_kana, name, gender, birthday, age,
    region, city, country, postal_code, street, preferred_channel, created_at."""
    custom_traits: Mapping[str, Lww[Any]] = field(default_factory=dict)
    """Any other trait as sent (JSON values); address extras as ``address.<key>``."""
    consents: Mapping[str, Lww[bool]] = field(default_factory=dict)
    """Consent Updated, per purpose (email, sms, line, ads, analytics, phone)."""
    first_seen: datetime | None = None
    """Earliest event time of the customer's own events (not ``SHOP_EVENTS``)."""
    last_seen: datetime | None = None
    """Latest event time of the customer's own events (not ``SHOP_EVENTS``)."""
    last_contacted: datetime | None = None
    """Latest event time of a contact by the shop (``CONTACT_EVENTS``)."""
    contacts: Mapping[date, int] = field(default_factory=dict)
    """Contacts per UTC day, the ``CONTACT_HORIZON_DAYS`` days up to ``last_contacted``."""
    message_counts: Mapping[str, int] = field(default_factory=dict)
    """Events per message type (page, screen, identify, track, group, alias)."""
    track_counts: Mapping[str, int] = field(default_factory=dict)
    """Track events per event name (Order Completed, Signed Up, ...)."""
    last_page: Lww[str] | None = None
    """Path of the latest page view."""
    viewed_products: Mapping[str, Touches] = field(default_factory=dict)
    """Product Viewed per product id."""
    carted_products: Mapping[str, Touches] = field(default_factory=dict)
    """Product Added (to cart) per product id."""
    orders: Mapping[str, Order] = field(default_factory=dict)
    """Order Completed per order id (latest version of each order)."""
    refunds: Mapping[str, Refund] = field(default_factory=dict)
    """Order Refunded per ``messageId`` (several partial refunds may hit one order)."""
    campaigns: Mapping[CampaignKey, Touches] = field(default_factory=dict)
    """Events that carried ``context.campaign``, per (source, medium, name)."""
    emails: Mapping[str, EmailStats] = field(default_factory=dict)
    """Email Delivered / Opened / Link Clicked per campaign id."""
    sns: Mapping[str, SnsAccount] = field(default_factory=dict)
    """Message Received / Sent per channel (line, x, instagram)."""
    tickets: Mapping[str, Ticket] = field(default_factory=dict)
    """Support tickets per ticket id."""
    surveys: Mapping[str, Lww[SurveyAnswer]] = field(default_factory=dict)
    """Latest answers per survey id."""
    nps: Lww[int] | None = None
    """Latest Net Promoter Score given in any survey."""
    groups: Mapping[str, datetime] = field(default_factory=dict)
    """Groups joined (Group events): group id → first time seen."""
    forms: Mapping[str, Touches] = field(default_factory=dict)
    """Form Submitted per form id."""
    deals: Mapping[str, Deal] = field(default_factory=dict)
    """The ``sales`` part: Deal Created / Stage Changed / Won / Lost / Updated per
    deal id (``projections.profile.sales``)."""
    sales_activities: Mapping[str, SalesActivity] = field(default_factory=dict)
    """The ``sales`` part: Sales Activity Logged per activity id (latest version)."""

    @property
    def events_count(self) -> int:
        """All events folded."""
        return sum(self.message_counts.values())

    @property
    def page_views(self) -> int:
        """Page events."""
        return self.message_counts.get("page", 0)

    @property
    def screen_views(self) -> int:
        """Screen events."""
        return self.message_counts.get("screen", 0)

    @property
    def product_views(self) -> int:
        """Product Viewed events."""
        return self.track_counts.get("Product Viewed", 0)

    @property
    def cart_adds(self) -> int:
        """Product Added events."""
        return self.track_counts.get("Product Added", 0)


def initial() -> State:
    """The profile of a customer with no events."""
    return State()


def kept_orders(state: State) -> list[tuple[str, Order, Decimal]]:
    """Orders not fully refunded as (order id, order, revenue net of refunds), oldest first.

    A refund without an amount refunds the whole order; partial refunds add
    up and are capped at the order's revenue. Refunds are matched to orders
    here, not when folded, because a refund may arrive before its order.
    """
    whole: set[str] = set()
    partial: dict[str, Decimal] = {}
    for refund in state.refunds.values():
        if refund.amount is None:
            whole.add(refund.order_id)
        else:
            partial[refund.order_id] = partial.get(refund.order_id, Decimal(0)) + refund.amount
    kept: list[tuple[str, Order, Decimal]] = []
    for order_id, order in state.orders.items():
        refunded = partial.get(order_id)
        if order_id in whole or (refunded is not None and refunded >= order.revenue):
            continue
        kept.append((order_id, order, order.revenue - (refunded or Decimal(0))))
    kept.sort(key=lambda item: (item[1].placed_at, item[0]))
    return kept
