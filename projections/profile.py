"""Customer profile: the one shared record of a customer, folded from their events.

The identity projection decides which events belong to which customer; this
fold turns one customer's events into everything MISSION item 1 asks a
customer record to hold: personal traits, consents, web and app behaviour,
purchases and refunds, campaign touches, email behaviour, SNS accounts,
support tickets, survey answers and groups, and the shop's contacts of them.

What the customer did and what the shop did are different facts
(``projections.outbound``): ``first_seen``/``last_seen`` move only with the
customer's own events; the shop's contacts (an email delivered, an SNS
message sent, a push received) set ``last_contacted`` and the per-day contact
counts instead, and the shop's other records (a bounce, a refund booked) move
neither.

Order independence, by construction (see ``projections._lww``): every trait
is a last-writer-wins cell keyed by event time then ``messageId``, counters
are sums (contacts per day too, pruned against the latest contact, which
only grows), sets are unions, first/last are min/max, orders are keyed by
``order_id`` (a resend replaces, never adds) and refunds by ``messageId``.
Anything derived (net revenue, orders not refunded, ...) is computed from
those by ``summary`` and never stored, so folding any permutation of the same
events gives an equal ``State`` and ``combine`` of two customers equals the
fold of all their events.

Speed: ``fold`` runs a batch through a ``Builder`` (``_profile_builder``) that
copies each map of the state on first write only, mutates it in place and
freezes once, so one event costs a few microseconds however large the profile.
The records the state is made of live in ``_profile_parts``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from projections._lww import (
    Lww,
    earliest,
    from_iso,
    iso,
    later_or_none,
    latest,
    merge_earliest,
    merge_later,
    merge_maps,
    merge_sums,
)
from projections._profile_builder import Builder, recent_contacts
from projections._profile_parts import (
    CampaignKey,
    EmailStats,
    Order,
    Refund,
    SnsAccount,
    SurveyAnswer,
    Ticket,
    Touches,
    lww_from_json,
    lww_to_json,
    map_from_json,
    map_to_json,
    opt_from_iso,
    opt_iso,
    opt_lww_from_json,
    opt_lww_to_json,
)
from schemas import AnyEvent

__all__ = [
    "CONTACT_DAYS_TYPE",
    "SUMMARY_COLUMNS",
    "State",
    "apply",
    "combine",
    "fold",
    "from_json",
    "initial",
    "kept_orders",
    "project",
    "summary",
    "to_json",
]

TraitValue = str | date | int
"""Type of a reserved trait: text, ``birthday`` (a date) or ``age``."""

#: Version of the ``to_json`` layout; ``from_json`` refuses others. Version 2
#: (contacts apart from activity) changed what ``first_seen``/``last_seen``
#: mean, so a version 1 snapshot cannot be read as one: the projections are
#: rebuilt from the log (``cdp.adapters.duckdb.store.create`` does it for the embedded tables).
JSON_VERSION: Final = 2


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


_FIELD_NAMES: Final = tuple(f.name for f in fields(State))


def initial() -> State:
    """The profile of a customer with no events."""
    return State()


def fold(state: State, events: Iterable[AnyEvent]) -> State:
    """Fold a batch of this customer's events into ``state`` (== reduce of ``apply``)."""
    builder = Builder(state)
    add = builder.add
    for event in events:
        add(event)
    builder.prune_contacts()
    return State(*builder.values(_FIELD_NAMES))


def apply(state: State, event: AnyEvent) -> State:
    """Fold one event into ``state``."""
    return fold(state, (event,))


def project(events: Iterable[AnyEvent]) -> State:
    """The profile of a customer with exactly these events."""
    return fold(initial(), events)


def combine(a: State, b: State) -> State:
    """Two customers merged into one: equals the fold of all their (disjoint) events."""
    last_contacted = latest(a.last_contacted, b.last_contacted)
    return State(
        traits=merge_later(a.traits, b.traits),
        custom_traits=merge_later(a.custom_traits, b.custom_traits),
        consents=merge_later(a.consents, b.consents),
        first_seen=earliest(a.first_seen, b.first_seen),
        last_seen=latest(a.last_seen, b.last_seen),
        last_contacted=last_contacted,
        contacts=recent_contacts(merge_sums(a.contacts, b.contacts), last_contacted),
        message_counts=merge_sums(a.message_counts, b.message_counts),
        track_counts=merge_sums(a.track_counts, b.track_counts),
        last_page=later_or_none(a.last_page, b.last_page),
        viewed_products=merge_maps(a.viewed_products, b.viewed_products, Touches.merge),
        carted_products=merge_maps(a.carted_products, b.carted_products, Touches.merge),
        orders=merge_maps(a.orders, b.orders, Order.merge),
        refunds={**a.refunds, **b.refunds},  # keyed by messageId: disjoint
        campaigns=merge_maps(a.campaigns, b.campaigns, Touches.merge),
        emails=merge_maps(a.emails, b.emails, EmailStats.merge),
        sns=merge_maps(a.sns, b.sns, SnsAccount.merge),
        tickets=merge_maps(a.tickets, b.tickets, Ticket.merge),
        surveys=merge_later(a.surveys, b.surveys),
        nps=later_or_none(a.nps, b.nps),
        groups=merge_earliest(a.groups, b.groups),
        forms=merge_maps(a.forms, b.forms, Touches.merge),
    )


def _trait_to_json(value: TraitValue) -> str | int:
    return value.isoformat() if isinstance(value, date) else value


def _trait_from_json(name: str, data: dict[str, Any]) -> Lww[TraitValue]:
    # ``birthday`` is the one reserved trait whose JSON form is not its value.
    return lww_from_json(data, date.fromisoformat if name == "birthday" else None)


def _survey_to_json(answer: SurveyAnswer) -> dict[str, Any]:
    return {"answers": dict(answer.answers), "nps": answer.nps}


def _survey_from_json(data: dict[str, Any]) -> Lww[SurveyAnswer]:
    return lww_from_json(data, lambda value: SurveyAnswer(**value))


def to_json(state: State) -> dict[str, Any]:
    """The profile as plain JSON values (a snapshot); ``from_json`` is its inverse."""
    return {
        "version": JSON_VERSION,
        "traits": {k: lww_to_json(v, _trait_to_json) for k, v in state.traits.items()},
        "custom_traits": map_to_json(state.custom_traits, lww_to_json),
        "consents": map_to_json(state.consents, lww_to_json),
        "first_seen": opt_iso(state.first_seen),
        "last_seen": opt_iso(state.last_seen),
        "last_contacted": opt_iso(state.last_contacted),
        "contacts": {day.isoformat(): n for day, n in sorted(state.contacts.items())},
        "message_counts": dict(state.message_counts),
        "track_counts": dict(state.track_counts),
        "last_page": opt_lww_to_json(state.last_page),
        "viewed_products": map_to_json(state.viewed_products, Touches.to_json),
        "carted_products": map_to_json(state.carted_products, Touches.to_json),
        "orders": map_to_json(state.orders, Order.to_json),
        "refunds": map_to_json(state.refunds, Refund.to_json),
        # Keys are tuples, so campaigns are a list, sorted so equal states give equal JSON.
        "campaigns": [
            {"source": key.source, "medium": key.medium, "name": key.name, **touches.to_json()}
            for key, touches in sorted(state.campaigns.items(), key=lambda kv: kv[0].sort_key())
        ],
        "emails": map_to_json(state.emails, EmailStats.to_json),
        "sns": map_to_json(state.sns, SnsAccount.to_json),
        "tickets": map_to_json(state.tickets, Ticket.to_json),
        "surveys": {k: lww_to_json(v, _survey_to_json) for k, v in state.surveys.items()},
        "nps": opt_lww_to_json(state.nps),
        "groups": map_to_json(state.groups, iso),
        "forms": map_to_json(state.forms, Touches.to_json),
    }


def from_json(data: Mapping[str, Any]) -> State:
    """Inverse of ``to_json``; raise ``ValueError`` for another snapshot version."""
    if data.get("version") != JSON_VERSION:
        raise ValueError(
            f"profile snapshot version {data.get('version')!r} is not {JSON_VERSION}: "
            "rebuild the projections from the log (`cdp replay`; distributed: reprocess the log)"
        )
    return State(
        traits={k: _trait_from_json(k, v) for k, v in data["traits"].items()},
        custom_traits=map_from_json(data["custom_traits"], lww_from_json),
        consents=map_from_json(data["consents"], lww_from_json),
        first_seen=opt_from_iso(data["first_seen"]),
        last_seen=opt_from_iso(data["last_seen"]),
        last_contacted=opt_from_iso(data["last_contacted"]),
        contacts={date.fromisoformat(day): n for day, n in data["contacts"].items()},
        message_counts=dict(data["message_counts"]),
        track_counts=dict(data["track_counts"]),
        last_page=opt_lww_from_json(data["last_page"]),
        viewed_products=map_from_json(data["viewed_products"], Touches.from_json),
        carted_products=map_from_json(data["carted_products"], Touches.from_json),
        orders=map_from_json(data["orders"], Order.from_json),
        refunds=map_from_json(data["refunds"], Refund.from_json),
        campaigns={
            CampaignKey(c["source"], c["medium"], c["name"]): Touches.from_json(c)
            for c in data["campaigns"]
        },
        emails=map_from_json(data["emails"], EmailStats.from_json),
        sns=map_from_json(data["sns"], SnsAccount.from_json),
        tickets=map_from_json(data["tickets"], Ticket.from_json),
        surveys=map_from_json(data["surveys"], _survey_from_json),
        nps=opt_lww_from_json(data["nps"]),
        groups=map_from_json(data["groups"], from_iso),
        forms=map_from_json(data["forms"], Touches.from_json),
    )


CONTACT_DAYS_TYPE: Final = "STRUCT(day DATE, contacts INTEGER)[]"
"""DuckDB type of ``contacts_by_day``: contacts per UTC day, oldest first."""

SUMMARY_COLUMNS: Final[dict[str, str]] = {
    # Who: reserved traits (latest stated value).
    "email": "VARCHAR",
    "phone": "VARCHAR",
    "first_name": "VARCHAR",
    "last_name": "VARCHAR",
    "first_name_kana": "VARCHAR",
    "last_name_kana": "VARCHAR",
    "name": "VARCHAR",
    "gender": "VARCHAR",
    "birthday": "DATE",
    "region": "VARCHAR",
    "city": "VARCHAR",
    "country": "VARCHAR",
    "postal_code": "VARCHAR",
    "preferred_channel": "VARCHAR",
    # Consent per purpose: NULL when the customer never stated it.
    "consent_email": "BOOLEAN",
    "consent_sms": "BOOLEAN",
    "consent_line": "BOOLEAN",
    "consent_ads": "BOOLEAN",
    "consent_analytics": "BOOLEAN",
    "consent_phone": "BOOLEAN",
    # Activity: the customer's own events only (projections.outbound).
    "first_seen": "TIMESTAMPTZ",
    "last_seen": "TIMESTAMPTZ",
    "events_count": "BIGINT",
    "page_views": "INTEGER",
    "screen_views": "INTEGER",
    "product_views": "INTEGER",
    "cart_adds": "INTEGER",
    "last_page_path": "VARCHAR",
    "forms_submitted": "INTEGER",
    # Purchases: orders not fully refunded; money net of refunds, in `currency`.
    "orders_count": "INTEGER",
    "revenue": "DECIMAL(18,2)",
    "currency": "VARCHAR",
    "avg_order_value": "DECIMAL(18,2)",
    "first_order_at": "TIMESTAMPTZ",
    "last_order_at": "TIMESTAMPTZ",
    "products_bought": "VARCHAR[]",
    "categories_bought": "VARCHAR[]",
    "refunds_count": "INTEGER",
    # Campaigns (context.campaign).
    "campaigns_touched": "INTEGER",
    "first_utm_source": "VARCHAR",
    "last_utm_source": "VARCHAR",
    # Email: distinct campaigns delivered / opened / clicked at least once.
    "emails_delivered": "INTEGER",
    "emails_opened": "INTEGER",
    "emails_clicked": "INTEGER",
    # SNS.
    "line_user_id": "VARCHAR",
    "x_user_id": "VARCHAR",
    "instagram_user_id": "VARCHAR",
    "last_sns_message_at": "TIMESTAMPTZ",
    "sns_messages": "INTEGER",
    # Support, surveys, groups.
    "tickets_open": "INTEGER",
    "tickets_closed": "INTEGER",
    "surveys_answered": "INTEGER",
    "last_nps": "INTEGER",
    "group_ids": "VARCHAR[]",
    # The shop's contacts (projections.outbound): the profiles view counts them
    # over windows ending at the log clock (contacts_7d, contacts_30d, ...).
    "last_contacted_at": "TIMESTAMPTZ",
    "contacts_by_day": CONTACT_DAYS_TYPE,
}
"""Columns of the ``profiles`` table (name → DuckDB type), in ``summary`` order."""

_TEXT_TRAIT_COLUMNS: Final = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "first_name_kana",
    "last_name_kana",
    "name",
    "gender",
    "region",
    "city",
    "country",
    "postal_code",
    "preferred_channel",
)
_CONSENT_PURPOSES: Final = ("email", "sms", "line", "ads", "analytics", "phone")
_SNS_CHANNELS: Final = ("line", "x", "instagram")
_CENTS: Final = Decimal("0.01")


def _money(amount: Decimal) -> Decimal:
    # What DECIMAL(18,2) would store, so the row equals what a query reads back.
    return amount.quantize(_CENTS, rounding=ROUND_HALF_UP)


def _utc(moment: datetime | None) -> datetime | None:
    return None if moment is None else moment.astimezone(UTC)


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


def _text(state: State, name: str) -> str | None:
    cell = state.traits.get(name)
    return cell.value if cell is not None and isinstance(cell.value, str) else None


def summary(state: State) -> dict[str, Any]:
    """One flat ``profiles`` row: keys are ``SUMMARY_COLUMNS``, values Python objects.

    ``revenue`` is the lifetime value net of refunds in ``currency``: the
    currency most of the kept orders are in (revenue in other currencies is
    not converted here). ``avg_order_value`` is over those same orders.
    ``emails_*`` count distinct campaigns (unique deliveries, opens, clicks).
    ``name`` is the name trait, else "last first" (Japanese order).
    ``first_seen``/``last_seen`` are the customer's own events;
    ``last_contacted_at`` and ``contacts_by_day`` (``[{day, contacts}]``, UTC
    days, oldest first) the shop's contacts (``projections.outbound``).
    """
    row: dict[str, Any] = {name: _text(state, name) for name in _TEXT_TRAIT_COLUMNS}
    first, last = row["first_name"], row["last_name"]
    if row["name"] is None and (first or last):
        row["name"] = " ".join(part for part in (last, first) if part)  # Japanese order
    birthday = state.traits.get("birthday")
    row["birthday"] = birthday.value if birthday and isinstance(birthday.value, date) else None
    for purpose in _CONSENT_PURPOSES:
        consent = state.consents.get(purpose)
        row[f"consent_{purpose}"] = None if consent is None else consent.value

    row["first_seen"] = _utc(state.first_seen)
    row["last_seen"] = _utc(state.last_seen)
    row["events_count"] = state.events_count
    row["page_views"] = state.page_views
    row["screen_views"] = state.screen_views
    row["product_views"] = state.product_views
    row["cart_adds"] = state.cart_adds
    row["last_page_path"] = None if state.last_page is None else state.last_page.value
    row["forms_submitted"] = state.track_counts.get("Form Submitted", 0)

    kept = kept_orders(state)
    per_currency = Counter(order.currency for _, order, _ in kept)
    currency = min(per_currency, key=lambda c: (-per_currency[c], c)) if kept else None
    main = [net for _, order, net in kept if order.currency == currency]
    revenue = sum(main, Decimal(0))
    placed = [order.placed_at for _, order, _ in kept]
    row["orders_count"] = len(kept)
    row["revenue"] = _money(revenue)
    row["currency"] = currency
    row["avg_order_value"] = _money(revenue / len(main)) if main else None
    row["first_order_at"] = _utc(placed[0] if placed else None)
    row["last_order_at"] = _utc(max(placed, default=None))
    lines = [line for _, order, _ in kept for line in order.lines]
    row["products_bought"] = sorted({line.product_id for line in lines})
    row["categories_bought"] = sorted({line.category for line in lines if line.category})
    row["refunds_count"] = len(state.refunds)

    campaigns = state.campaigns.items()
    row["campaigns_touched"] = len(campaigns)
    first_touch = min(campaigns, key=lambda kv: (kv[1].first_at, kv[0].sort_key()), default=None)
    last_touch = max(campaigns, key=lambda kv: (kv[1].last_at, kv[0].sort_key()), default=None)
    row["first_utm_source"] = None if first_touch is None else first_touch[0].source
    row["last_utm_source"] = None if last_touch is None else last_touch[0].source

    emails = state.emails.values()
    row["emails_delivered"] = sum(1 for e in emails if e.delivered)
    row["emails_opened"] = sum(1 for e in emails if e.opened)
    row["emails_clicked"] = sum(1 for e in emails if e.clicked)

    for channel in _SNS_CHANNELS:
        account = state.sns.get(channel)
        row[f"{channel}_user_id"] = None if account is None else account.user_id
    accounts = state.sns.values()
    row["last_sns_message_at"] = _utc(max((a.last.at for a in accounts), default=None))
    row["sns_messages"] = sum(a.received + a.sent for a in accounts)

    tickets = state.tickets.values()
    row["tickets_open"] = sum(1 for t in tickets if t.status.value == "open")
    row["tickets_closed"] = sum(1 for t in tickets if t.status.value == "closed")
    row["surveys_answered"] = len(state.surveys)
    row["last_nps"] = None if state.nps is None else state.nps.value
    row["group_ids"] = sorted(state.groups)
    row["last_contacted_at"] = _utc(state.last_contacted)
    row["contacts_by_day"] = [
        {"day": day, "contacts": n} for day, n in sorted(state.contacts.items())
    ]
    return {name: row[name] for name in SUMMARY_COLUMNS}
