"""Acquisition cohorts: LTV curves and purchase retention.

A customer's **cohort** is the calendar period (``week``, ``month`` or
``quarter``, cut in time zone ``tz``) of their first kept order; ``period``
counts whole periods since it (0 = the acquisition period). Rows run from
period 0 to the period holding the log clock, so a young cohort has fewer
rows, and a period with no orders still has a row.

- ``ltv``: per cohort and period, ``orders`` and ``revenue`` (net of refunds,
  exact DECIMAL) placed in that period by the cohort's customers,
  ``cumulative_revenue`` up to it, and ``ltv = cumulative_revenue /
  customers`` (rounded to 0.01). Money of one currency only (``currency``,
  default: the one most orders use); ``summary.other_currency_orders`` counts
  what was left out.
- ``retention``: per cohort and period, ``active`` customers (with at least
  one kept order in that period) and ``retention = active / customers``.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final

import duckdb

from cdp.services.analytics._base import (
    DEFAULT_TZ,
    ORDERS_SQL,
    Report,
    check_period,
    check_tz,
    fetch,
    log_clock,
    ratio,
)

_CENTS: Final = Decimal("0.01")


def _cohort_sql(period: str, body: str) -> str:
    """Shared CTEs: orders with their cohort and period index, cohort sizes, the grid."""
    local = f"date_trunc('{period}', timezone($tz, {{}}))::DATE"
    return f"""
WITH orders AS MATERIALIZED (
    SELECT customer_id, placed_at, revenue, currency FROM ({ORDERS_SQL})
),
cohort_of AS (
    SELECT customer_id, {local.format("min(placed_at)")} AS cohort FROM orders GROUP BY 1
), placed AS (
    SELECT o.*, c.cohort,
           date_diff('{period}', c.cohort, {local.format("o.placed_at")}) AS period
    FROM orders o JOIN cohort_of c USING (customer_id)
), sizes AS (SELECT cohort, count(*) AS customers FROM cohort_of GROUP BY 1
), grid AS (
    SELECT s.cohort, s.customers,
           unnest(range(0, date_diff('{period}', s.cohort, {local.format("k.as_of")}) + 1))
             AS period
    FROM sizes s, log_clock k
)
{body}
"""


def ltv(
    con: duckdb.DuckDBPyConnection,
    *,
    period: str = "month",
    tz: str = DEFAULT_TZ,
    currency: str | None = None,
) -> Report:
    """Revenue per cohort customer, cumulative, by periods since acquisition."""
    check_period(period)
    check_tz(con, tz)
    body = """
, chosen AS (
    SELECT coalesce($currency, (SELECT currency FROM orders GROUP BY 1
                                ORDER BY count(*) DESC, currency LIMIT 1)) AS currency
)
SELECT g.cohort, g.period, g.customers,
       count(p.customer_id) AS orders, coalesce(sum(p.revenue), 0) AS revenue,
       any_value(c.currency) AS currency,
       (SELECT count(*) FROM orders o, chosen c2 WHERE o.currency <> c2.currency) AS other
FROM grid g CROSS JOIN chosen c
LEFT JOIN placed p ON p.cohort = g.cohort AND p.period = g.period AND p.currency = c.currency
GROUP BY ALL ORDER BY g.cohort, g.period
"""
    _, rows = fetch(con, "ltv", _cohort_sql(period, body), {"tz": tz, "currency": currency})
    out: list[tuple[Any, ...]] = []
    running: dict[Any, Decimal] = {}
    other = 0
    for cohort, index, customers, orders, revenue, chosen, other_orders in rows:
        currency, other = chosen, other_orders
        total = running[cohort] = running.get(cohort, Decimal(0)) + revenue
        value = (total / customers).quantize(_CENTS, rounding=ROUND_HALF_UP)
        out.append((cohort, index, customers, orders, _money(revenue), _money(total), value))
    columns = ("cohort", "period", "customers", "orders", "revenue", "cumulative_revenue", "ltv")
    summary = {
        "as_of": log_clock(con),
        "cohorts": len(running),
        "customers": sum(_sizes(out).values()),
        "revenue": _money(sum(running.values(), Decimal(0))),
        "currency": currency,
        "other_currency_orders": other,
    }
    params = {"period": period, "tz": tz, "currency": currency}
    return Report("ltv", columns, out, summary, params)


def retention(
    con: duckdb.DuckDBPyConnection, *, period: str = "month", tz: str = DEFAULT_TZ
) -> Report:
    """Share of each cohort that ordered in each period since acquisition."""
    check_period(period)
    check_tz(con, tz)
    body = """
SELECT g.cohort, g.period, g.customers, count(DISTINCT p.customer_id) AS active
FROM grid g LEFT JOIN placed p ON p.cohort = g.cohort AND p.period = g.period
GROUP BY ALL ORDER BY g.cohort, g.period
"""
    _, rows = fetch(con, "retention", _cohort_sql(period, body), {"tz": tz})
    out = [(*row, ratio(row[3], row[2])) for row in rows]
    columns = ("cohort", "period", "customers", "active", "retention")
    sizes = _sizes(out)
    summary = {"as_of": log_clock(con), "cohorts": len(sizes), "customers": sum(sizes.values())}
    return Report("retention", columns, out, summary, {"period": period, "tz": tz})


def _money(value: Decimal) -> Decimal:
    return value.quantize(_CENTS, rounding=ROUND_HALF_UP)


def _sizes(rows: list[tuple[Any, ...]]) -> dict[Any, int]:
    return {row[0]: row[2] for row in rows}


def pivot(
    report: Report, value: str, fmt: Callable[[Any], str] = str
) -> tuple[list[str], list[list[str]]]:
    """A cohort report as a matrix for people: one row per cohort, one column per period."""
    index = report.columns.index(value)
    periods = sorted({row[1] for row in report.rows})
    cells: dict[Any, dict[int, Any]] = {}
    sizes: dict[Any, int] = {}
    for row in report.rows:
        cells.setdefault(row[0], {})[row[1]] = row[index]
        sizes[row[0]] = row[2]
    header = ["cohort", "customers", *[str(p) for p in periods]]
    matrix = [
        [str(cohort), str(sizes[cohort]), *[fmt(by[p]) if p in by else "" for p in periods]]
        for cohort, by in cells.items()
    ]
    return header, matrix
