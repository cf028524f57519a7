"""The flat customer columns both runtimes publish: types and row values.

The folds (``projections.profile``, ``projections.lead_score``) hold the
facts; this module says how they become the flat columns of the DuckDB
customers table and ``profiles`` view, of the Kafka ``profiles`` topic and of
the Parquet archive (one row shape everywhere, typed in DuckDB's names): ``PROFILE_COLUMNS`` and
``LEAD_SCORE_COLUMNS`` (name → DuckDB type) and ``profile_summary`` /
``lead_score_summary``, which fill them with Python values as DuckDB stores
them (money rounded to ``DECIMAL(18,2)``, times in UTC). Pure Python, no
connection: the segment fields (``cdp.services.segment_lang``) read the
column list from here too.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

from projections import lead_score, profile
from projections.profile.sales import summary as sales_summary

__all__ = [
    "CONTACT_DAYS_TYPE",
    "LEAD_SCORE_COLUMNS",
    "PROFILE_COLUMNS",
    "lead_score_summary",
    "profile_summary",
]

CONTACT_DAYS_TYPE: Final = "STRUCT(day DATE, contacts INTEGER)[]"
"""DuckDB type of ``contacts_by_day``: contacts per UTC day, oldest first."""

PROFILE_COLUMNS: Final[dict[str, str]] = {
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
    "first_utm_campaign": "VARCHAR",
    "last_utm_campaign": "VARCHAR",
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
    # Sales: the SFA's deals and activities (schemas.sales; projections.profile.sales),
    # deal values summed in JPY.
    "deals_count": "INTEGER",
    "open_deals": "INTEGER",
    "open_deal_value": "DECIMAL(18,2)",
    "deals_won": "INTEGER",
    "won_revenue": "DECIMAL(18,2)",
    "deals_lost": "INTEGER",
    "first_deal_at": "TIMESTAMPTZ",
    "first_won_at": "TIMESTAMPTZ",
    "last_sales_touch_at": "TIMESTAMPTZ",
    "sales_owner": "VARCHAR",
    "last_deal_stage": "VARCHAR",
    "last_activity_type": "VARCHAR",
    "sales_activities": "INTEGER",
    # The shop's contacts (projections.outbound): the profiles view counts them
    # over windows ending at the log clock (contacts_7d, contacts_30d, ...).
    "last_contacted_at": "TIMESTAMPTZ",
    "contacts_by_day": CONTACT_DAYS_TYPE,
}
"""Columns of the ``profiles`` table (name → DuckDB type), in ``profile_summary`` order."""

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


def _text(state: profile.State, name: str) -> str | None:
    cell = state.traits.get(name)
    return cell.value if cell is not None and isinstance(cell.value, str) else None


def profile_summary(state: profile.State) -> dict[str, Any]:
    """One flat ``profiles`` row: keys are ``PROFILE_COLUMNS``, values Python objects.

    ``revenue`` is the lifetime value net of refunds in ``currency``: the
    currency most of the kept orders are in (revenue in other currencies is
    not converted here). ``avg_order_value`` is over those same orders.
    ``emails_*`` count distinct campaigns (unique deliveries, opens, clicks).
    ``name`` is the name trait, else "last first" (Japanese order).
    The sales columns come from ``projections.profile.sales.summary`` (deal
    values in JPY; ``sales_owner`` is named by the latest sales event naming one).
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

    kept = profile.kept_orders(state)
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
    row["first_utm_campaign"] = None if first_touch is None else first_touch[0].name
    row["last_utm_campaign"] = None if last_touch is None else last_touch[0].name

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
    sales = sales_summary(state.deals, state.sales_activities)
    row["deals_count"] = sales.deals
    row["open_deals"] = sales.open_deals
    row["open_deal_value"] = _money(sales.open_deal_value)
    row["deals_won"] = sales.deals_won
    row["won_revenue"] = _money(sales.won_revenue)
    row["deals_lost"] = sales.deals_lost
    row["first_deal_at"] = _utc(sales.first_deal_at)
    row["first_won_at"] = _utc(sales.first_won_at)
    row["last_sales_touch_at"] = _utc(sales.last_sales_touch_at)
    row["sales_owner"] = sales.sales_owner
    row["last_deal_stage"] = sales.last_deal_stage
    row["last_activity_type"] = sales.last_activity_type
    row["sales_activities"] = sales.sales_activities
    row["last_contacted_at"] = _utc(state.last_contacted)
    row["contacts_by_day"] = [
        {"day": day, "contacts": n} for day, n in sorted(state.contacts.items())
    ]
    return {name: row[name] for name in PROFILE_COLUMNS}


LEAD_SCORE_COLUMNS: Final[dict[str, str]] = {
    "lead_score": "DOUBLE",
    "score_time": "TIMESTAMPTZ",
    "lifecycle_stage": "VARCHAR",
    "funnel_stage": "VARCHAR",
    "hot": "BOOLEAN",
    "score_reasons": "VARCHAR",
}
"""Columns ``lead_score_summary`` fills in the profiles table, with their DuckDB types."""


def lead_score_summary(
    state: lead_score.State, rules: lead_score.Rules = lead_score.DEFAULT_RULES
) -> dict[str, Any]:
    """The ``LEAD_SCORE_COLUMNS`` of one customer, as of their last activity.

    From ``lead_score.assess``: ``hot`` is the score alone (an anonymous hot
    visitor is still worth retargeting); ``score_reasons`` names the three
    rules that weigh most, e.g. ``"form_submitted +9.8, product_added +4.9"``.
    """
    assessed = lead_score.assess(state, rules)
    return {
        "lead_score": assessed.score,
        "score_time": state.last_activity,
        "lifecycle_stage": assessed.lifecycle_stage,
        "funnel_stage": assessed.funnel_stage,
        "hot": assessed.hot,
        "score_reasons": ", ".join(f"{name} {total:+.1f}" for name, total in assessed.reasons),
    }
