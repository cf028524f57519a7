"""Email A/B report: open and click rates per campaign and variant, with a z-test.

Recipients are customers (after identity merges) with an ``Email Delivered``
event for the campaign; a customer's variant is the ``properties.variant``
their email events carry (``-`` when absent). Per (campaign, variant):

- ``delivered``: recipients;
- ``opened``: recipients with an ``Email Opened`` *or* ``Email Link Clicked``
  (a click proves an open that image blocking may have hidden);
- ``clicked``: recipients with an ``Email Link Clicked``;
- ``open_rate = opened / delivered``, ``click_rate = clicked / delivered``,
  ``click_to_open = clicked / opened``.

Each variant is compared with the campaign's control (the first variant in
name order, usually ``A``) by the pooled two-proportion z-test
(``cdp.services.analytics.stats``) on the open rate and on the click rate; ``z > 0``
means the variant beats the control. ``significant`` is ``open_p < alpha``.
Events without a delivery (an open of a mail the platform never saw sent)
are not counted: rates stay proportions of a known denominator.
"""

from __future__ import annotations

from typing import Any, Final

import duckdb

from cdp.errors import AnalyticsError
from cdp.services.analytics._base import Report, fetch, ratio
from cdp.services.analytics.stats import two_proportion_z

NO_VARIANT: Final = "-"

# From the ``facts`` view (campaign_id and variant are fact columns): over
# ``events`` the joins that attribute customers carried every mail's payload,
# and at a million customers did not fit the server's memory.
EMAIL_AB_SQL: Final = """
WITH mail AS (
    SELECT customer_id, event, campaign_id, coalesce(variant, '-') AS variant
    FROM facts
    WHERE event IN ('Email Delivered', 'Email Opened', 'Email Link Clicked')
      AND customer_id IS NOT NULL
), per_recipient AS (
    SELECT campaign_id, variant, customer_id,
           bool_or(event = 'Email Delivered') AS delivered,
           bool_or(event IN ('Email Opened', 'Email Link Clicked')) AS opened,
           bool_or(event = 'Email Link Clicked') AS clicked
    FROM mail
    WHERE campaign_id IS NOT NULL AND ($campaign IS NULL OR campaign_id = $campaign)
    GROUP BY ALL
)
SELECT campaign_id, variant, count(*) AS delivered,
       count(*) FILTER (WHERE opened) AS opened, count(*) FILTER (WHERE clicked) AS clicked
FROM per_recipient WHERE delivered
GROUP BY ALL ORDER BY campaign_id, variant
"""

COLUMNS: Final = (
    "campaign_id",
    "variant",
    "delivered",
    "opened",
    "open_rate",
    "clicked",
    "click_rate",
    "click_to_open",
    "open_z",
    "open_p",
    "click_z",
    "click_p",
    "significant",
)


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _significant(value: float | None) -> float | None:
    """Three significant digits: small p-values stay readable instead of rounding to 0."""
    return None if value is None else float(f"{value:.3g}")


def email_ab(
    con: duckdb.DuckDBPyConnection, *, campaign: str | None = None, alpha: float = 0.05
) -> Report:
    """Open/click rates per campaign and variant, each variant z-tested against the control."""
    if not 0 < alpha < 1:
        raise AnalyticsError(f"alpha must lie between 0 and 1, not {alpha}")
    _, counts = fetch(con, "email-ab", EMAIL_AB_SQL, {"campaign": campaign})
    if campaign is not None and not counts:
        raise AnalyticsError(f"no email deliveries for campaign {campaign!r}")
    controls: dict[str, tuple[int, int, int]] = {}
    rows: list[tuple[Any, ...]] = []
    for campaign_id, variant, delivered, opened, clicked in counts:
        control = controls.get(campaign_id)
        if control is None:  # rows come sorted: the first variant is the control
            controls[campaign_id] = (delivered, opened, clicked)
            opens = clicks = None
        else:
            opens = two_proportion_z(control[1], control[0], opened, delivered)
            clicks = two_proportion_z(control[2], control[0], clicked, delivered)
        rows.append(
            (
                campaign_id,
                variant,
                delivered,
                opened,
                ratio(opened, delivered),
                clicked,
                ratio(clicked, delivered),
                ratio(clicked, opened),
                None if opens is None else _rounded(opens.z),
                None if opens is None else _significant(opens.p_value),
                None if clicks is None else _rounded(clicks.z),
                None if clicks is None else _significant(clicks.p_value),
                None if opens is None else opens.p_value < alpha,
            )
        )
    summary = {
        "campaigns": len(controls),
        "test": "pooled two-proportion z-test vs the campaign's first variant (two-sided)",
        "alpha": alpha,
        "significant_open_differences": sum(1 for r in rows if r[-1]),
    }
    return Report("email-ab", COLUMNS, rows, summary, {"campaign": campaign, "alpha": alpha})
