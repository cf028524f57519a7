"""The lead score's state: ``State``, its ``Bucket``s and the funnel signals.

Every field of a ``State`` is a value that any order of the same events
reproduces exactly (see ``projections.lead_score``); the fold is in
``projections.lead_score.fold``, what is read from a state in
``projections.lead_score.scoring``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Final, NamedTuple

EXAMPLES_PER_BUCKET: Final = 3
LIFECYCLE_STAGES: Final = ("unknown", "lead", "hot_lead", "customer", "repeater")
FUNNEL_STAGES: Final = ("awareness", "interest", "consideration", "purchase", "retention")


class Bucket(NamedTuple):
    """The events one rule matched on one UTC day."""

    rule: str
    #: Days since 1970-01-01, UTC.
    day: int
    #: How many events matched (points are ``Rule.day_points(events)``).
    events: int
    #: Up to three ``(event time in µs since the epoch, messageId)``, newest first.
    examples: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class State:
    """What the lead score and the stages are computed from (one customer).

    Every field is a value that any order of the same events reproduces
    exactly: maxima, counts, sets and sorted tuples.
    """

    #: Latest time of the customer's own events (UTC; not ``SHOP_EVENTS``);
    #: ``None`` before any. The score decays from here.
    last_activity: datetime | None = None
    #: The customer can be contacted: a userId, an email/phone trait, a form,
    #: an SNS message or an email event was seen.
    known: bool = False
    #: Page and screen views, all time.
    views: int = 0
    #: Funnel signals seen (``SIGNALS``).
    signals: frozenset[str] = frozenset()
    #: ``(order_id, revenue)``, sorted by id; a repeated order id counts once.
    orders: tuple[tuple[str, Decimal], ...] = ()
    #: ``(order_id, refunded amount)``, sorted; ``None`` = the whole order.
    refunds: tuple[tuple[str, Decimal | None], ...] = ()
    #: Score buckets within the horizon, sorted by (rule, day).
    buckets: tuple[Bucket, ...] = ()
    #: ``(deal_id, event time in µs, messageId, won)`` of each deal's latest
    #: deal event (``schemas.sales``), sorted by id: a won deal makes a customer.
    deals: tuple[tuple[str, int, str, bool], ...] = ()


PRODUCT_VIEWED: Final = "product_viewed"
PRODUCT_ADDED: Final = "product_added"
FORM_SUBMITTED: Final = "form_submitted"
SNS_MESSAGE: Final = "sns_message"
EMAIL_OPENED: Final = "email_opened"
EMAIL_CLICKED: Final = "email_clicked"
CONSIDERATION_PAGE: Final = "consideration_page"
SIGNALS: Final = frozenset(
    {
        PRODUCT_VIEWED,
        PRODUCT_ADDED,
        FORM_SUBMITTED,
        SNS_MESSAGE,
        EMAIL_OPENED,
        EMAIL_CLICKED,
        CONSIDERATION_PAGE,
    }
)

EMPTY: Final = State()
"""The state of a customer with no events (shared: a ``State`` is immutable)."""


def initial() -> State:
    """The state of a customer with no events."""
    return EMPTY


def new_bucket(fields: tuple[str, int, int, tuple[tuple[int, str], ...]]) -> Bucket:
    """``Bucket(*fields)``, faster."""
    # NamedTuple's generated __new__ is a Python frame; a freeze makes one per bucket.
    return tuple.__new__(Bucket, fields)
