"""Marketing → sales conversion (the PDCA view of issue 17): the sales ladder and
campaigns judged by deals, not clicks.

The sales ladder, per known person (``lifecycle_stage`` not ``unknown``), from
the ``profiles`` view (the sales columns are the profile's ``sales`` part,
``projections.profile.sales``):

- ``lead``: every known contact;
- ``hot_lead``: the lead score was hot at the person's last activity
  (``profiles.hot``), or the person went further down the ladder;
- ``handed_to_sales``: the person has a deal (a ``Deal Created`` or any other
  deal event from the SFA) or is in ``handed``, the customer ids pushed to an
  SFA destination (``cdp analytics`` passes every person whose record an SFA
  push created: ``connectors.destinations.sfa.pushed.pushed_people``);
- ``deal``: at least one deal (``deals_count > 0``);
- ``won``: at least one deal whose latest status is won (``deals_won > 0``),
  with ``won_revenue`` (JPY) summed.

Each rung is a subset of the one before, so ``reached`` and ``conversion``
read as in the other ladders (``cdp.services.analytics.funnel``).

``campaigns`` counts the same rungs per first touch and per last touch: the
``context.campaign`` (utm source and campaign name) of the person's earliest
and latest campaign-tagged event (``profiles.first_utm_*``/``last_utm_*``).
People without any campaign touch fall under ``(none)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final

import duckdb

from cdp.errors import AnalyticsError
from cdp.services.analytics._base import Report, fetch, log_clock, ratio

SALES_STAGES: Final = ("lead", "hot_lead", "handed_to_sales", "deal", "won")
"""The rungs of the sales ladder, in order."""
TOUCHES: Final = ("first", "last", "both")
NO_TOUCH: Final = "(none)"
HANDED_DEFINITION: Final = (
    "a deal from the SFA (Deal Created or any deal event), or a push to an SFA destination "
    "when those are given"
)
HANDED_BY_PUSH: Final = (
    "pushed to an SFA destination (cdp destinations push) or a deal from the SFA "
    "(Deal Created or any deal event)"
)


def handed_definition(handed: Iterable[str] | None) -> str:
    """What ``handed_to_sales`` counted: with the pushed people given, or without."""
    return HANDED_DEFINITION if handed is None else HANDED_BY_PUSH


_PEOPLE_SQL: Final = """
SELECT customer_id,
       coalesce(hot, false) AS hot,
       coalesce(deals_count, 0) > 0 AS deal,
       coalesce(deals_count, 0) > 0 OR list_contains($handed, customer_id) AS handed,
       coalesce(deals_won, 0) > 0 AS won,
       coalesce(won_revenue, 0) AS won_revenue,
       first_utm_source, first_utm_campaign, last_utm_source, last_utm_campaign
FROM profiles
WHERE lifecycle_stage <> 'unknown'
"""

LADDER_SQL: Final = f"""
SELECT CASE WHEN won THEN 'won' WHEN deal THEN 'deal' WHEN handed THEN 'handed_to_sales'
            WHEN hot THEN 'hot_lead' ELSE 'lead' END AS stage,
       count(*) AS people, sum(won_revenue) AS won_revenue
FROM ({_PEOPLE_SQL}) GROUP BY ALL
"""
"""People per highest sales rung, with their won revenue."""

CAMPAIGNS_SQL: Final = f"""
WITH people AS ({_PEOPLE_SQL}),
touches AS (
    SELECT 'first' AS touch, first_utm_source AS utm_source, first_utm_campaign AS utm_campaign,
           hot, handed, deal, won, won_revenue FROM people
    UNION ALL
    SELECT 'last', last_utm_source, last_utm_campaign, hot, handed, deal, won, won_revenue
    FROM people
)
SELECT touch, coalesce(utm_source, '{NO_TOUCH}') AS utm_source,
       coalesce(utm_campaign, '{NO_TOUCH}') AS utm_campaign,
       count(*) AS leads,
       count(*) FILTER (WHERE hot OR handed) AS hot_leads,
       count(*) FILTER (WHERE handed) AS handed_to_sales,
       count(*) FILTER (WHERE deal) AS deals,
       count(*) FILTER (WHERE won) AS won,
       CAST(sum(won_revenue) AS DECIMAL(18, 2)) AS won_revenue
FROM touches WHERE list_contains($touches, touch)
GROUP BY ALL
ORDER BY touch, won_revenue DESC, won DESC, leads DESC, utm_source, utm_campaign
"""

CAMPAIGN_COLUMNS: Final = (
    "touch",
    "utm_source",
    "utm_campaign",
    "leads",
    "hot_leads",
    "handed_to_sales",
    "deals",
    "won",
    "won_revenue",
    "lead_to_won",
    "deal_to_won",
    "revenue_per_lead",
)


def _handed(handed: Iterable[str] | None) -> list[str]:
    return sorted(set(handed or ()))


def sales_ladder(
    con: duckdb.DuckDBPyConnection, handed: Iterable[str] | None = None
) -> tuple[dict[str, int], Decimal]:
    """People per highest rung of ``SALES_STAGES`` and the total won revenue (JPY).

    ``handed``: customer ids pushed to an SFA destination (beside those with a deal).
    """
    _, rows = fetch(con, "funnel", LADDER_SQL, {"handed": _handed(handed)})
    counts = {str(stage): int(people) for stage, people, _ in rows}
    revenue = sum((Decimal(r[2] or 0) for r in rows), Decimal(0))
    return counts, revenue


def campaigns(
    con: duckdb.DuckDBPyConnection, touch: str = "both", handed: Iterable[str] | None = None
) -> Report:
    """Leads, hot leads, hand-offs, deals, won deals and won revenue per campaign touch.

    ``touch``: ``first``, ``last`` or ``both`` (rows of each). ``handed`` as in
    ``sales_ladder``. Per row also ``lead_to_won`` (won / leads), ``deal_to_won``
    (won / deals) and ``revenue_per_lead`` (won revenue / leads, JPY).
    """
    if touch not in TOUCHES:
        raise AnalyticsError(f"touch {touch!r} is not supported; use one of {', '.join(TOUCHES)}")
    chosen = ["first", "last"] if touch == "both" else [touch]
    _, rows = fetch(con, "campaigns", CAMPAIGNS_SQL, {"handed": _handed(handed), "touches": chosen})
    out: list[tuple[Any, ...]] = []
    for row in rows:
        leads, deals, won, revenue = row[3], row[6], row[7], row[8]
        per_lead = None if not leads else (revenue / leads).quantize(Decimal("0.01"))
        out.append((*row, ratio(won, leads), ratio(won, deals), per_lead))
    first = [r for r in out if r[0] == out[0][0]] if out else []
    summary = {
        "as_of": log_clock(con),
        "leads": sum(r[3] for r in first),
        "deals": sum(r[6] for r in first),
        "won": sum(r[7] for r in first),
        "won_revenue": sum((r[8] for r in first), Decimal(0)),
        "handed_to_sales": handed_definition(handed),
    }
    return Report("campaigns", CAMPAIGN_COLUMNS, out, summary, {"touch": touch})
