"""Who acted: the customer, or the shop. The one place that decides it.

A customer's event stream holds the shop's own doings beside the customer's:
the newsletter delivered, the LINE reply sent, the refund booked. Those must
not read as the customer being active: a customer silent since June who got
the monthly newsletter was not "seen" 21 days ago, and a "not seen for 90
days" segment exists precisely to find them. So the folds split them:

- ``CONTACT_EVENTS``: the shop's messages reaching the customer. They set the
  profile's ``last_contacted`` and per-day contact counts (``contacts_7d``,
  ``contacts_30d``, ``contacts_90d`` in the ``profiles`` view), one contact per
  message.
- ``SHOP_EVENTS``: everything the shop's systems record, the contacts plus a
  few events that are neither the customer's activity nor a contact (a bounce
  reached nobody; "Email Sent" precedes an "Email Delivered" of the same email,
  which is the one counted; a refund or a ticket closed is booked by the
  shop; so are the SFA's deal and sales activity records). None of them
  moves the profile's ``first_seen``/``last_seen`` or the lead score's last
  activity, and no scoring rule may match them.

Every other event is the customer's activity, including replies to the shop
(Email Opened, Email Link Clicked, Message Received, Push Notification
Tapped, Unsubscribed, Email Marked as Spam). Names follow Segment's Email and
Mobile specs and this platform's SNS events (docs/segments.md lists them).
"""

from __future__ import annotations

from typing import Any, Final

__all__ = [
    "CONTACT_EVENTS",
    "CONTACT_HORIZON_DAYS",
    "CONTACT_WINDOWS",
    "SHOP_EVENTS",
    "by_shop",
    "is_contact",
]

CONTACT_EVENTS: Final = frozenset(
    {
        "Email Delivered",  # Segment Email spec: the shop's email reached the inbox
        "Message Sent",  # LINE push/reply, X DM, Instagram message from the shop
        "Push Notification Received",  # Segment Mobile spec: the shop's push reached the device
    }
)
"""Track event names that are one contact of the customer by the shop."""

SHOP_EVENTS: Final = CONTACT_EVENTS | frozenset(
    {
        "Email Sent",
        "Email Bounced",
        "Push Notification Bounced",
        "Order Refunded",
        "Support Ticket Closed",
        # The SFA's records (schemas.sales): a salesperson's doing, booked by the
        # shop's sales team, never the customer's own activity on the shop.
        "Deal Created",
        "Deal Stage Changed",
        "Deal Won",
        "Deal Lost",
        "Deal Updated",
        "Sales Activity Logged",
    }
)
"""Track event names the shop's systems record: never the customer's activity."""

CONTACT_WINDOWS: Final = (7, 30, 90)
"""Windows (days) of the ``contacts_Nd`` counts of the ``profiles`` view."""

CONTACT_HORIZON_DAYS: Final = max(CONTACT_WINDOWS)
"""Per-day contact counts kept: this many UTC days up to the last contact."""


def by_shop(event: Any) -> bool:
    """The event is the shop's (``SHOP_EVENTS``), not something the customer did."""
    return event.__dict__.get("event") in SHOP_EVENTS


def is_contact(event: Any) -> bool:
    """The event is one contact of the customer by the shop (``CONTACT_EVENTS``)."""
    return event.__dict__.get("event") in CONTACT_EVENTS
