"""Sequence patterns: "buyers of X buy Y within N days".

Over kept orders (``cdp.services.analytics._base.ORDER_LINES_SQL``), with ``buyers``
the customers with at least one order:

- a customer's **X time** is their first order containing X;
- they **follow with Y** when an order containing Y (Y ≠ X) is placed after
  the X time and at most ``within_days`` days after it; the **gap** is from
  the X time to the first such order;
- only **matured** X buyers count (X time at least ``within_days`` before the
  log clock): a recent buyer has not had the chance yet, and counting them
  would understate the pattern. ``x_buyers`` is how many matured buyers X has.

Per pair (X, Y):

    customers  = matured X buyers who follow with Y
    support    = customers / buyers
    confidence = customers / x_buyers
    lift       = confidence / (buyers of Y at any time / buyers)
    median_gap_days, p25/p75 of the gap

Pairs below ``min_support`` (or ``min_customers``) are dropped; the rest are
ranked by lift, then confidence. One SQL pass: X times are joined to the
same customer's later lines, so the work grows with each customer's order
count squared, not with the catalog squared.
"""

from __future__ import annotations

from typing import Final

import duckdb

from cdp.services.analytics._base import (
    ORDER_LINES_SQL,
    Report,
    check_positive,
    fetch,
    log_clock,
)

_FOLLOWS_SQL: Final = f"""
WITH lines AS MATERIALIZED (
    SELECT DISTINCT customer_id, order_id, placed_at, product_id
    FROM ({ORDER_LINES_SQL}) WHERE product_id IS NOT NULL
), buyers AS (SELECT count(DISTINCT customer_id) AS n FROM lines),
product_buyers AS (
    SELECT product_id, count(DISTINCT customer_id) AS buyers FROM lines GROUP BY 1
), first_x AS (
    SELECT l.customer_id, l.product_id AS x, min(l.placed_at) AS x_at
    FROM lines l WHERE $product IS NULL OR l.product_id = $product
    GROUP BY 1, 2
), matured AS (
    SELECT f.* FROM first_x f, log_clock k
    WHERE f.x_at <= k.as_of - to_days(CAST($within_days AS INTEGER))
), x_buyers AS (SELECT x, count(*) AS x_buyers FROM matured GROUP BY 1),
follows AS (
    SELECT m.customer_id, m.x, l.product_id AS y,
           (epoch(min(l.placed_at)) - epoch(m.x_at)) / 86400.0 AS gap_days
    FROM matured m JOIN lines l
      ON l.customer_id = m.customer_id AND l.product_id <> m.x
     AND l.placed_at > m.x_at
     AND l.placed_at <= m.x_at + to_days(CAST($within_days AS INTEGER))
    GROUP BY m.customer_id, m.x, l.product_id, m.x_at
)"""
"""The shared steps: ``lines``, ``buyers``, ``product_buyers``, ``first_x``, ``matured``,
``x_buyers`` and ``follows`` (one row per matured X buyer who follows with Y, with the gap)."""

SEQUENCES_SQL: Final = f"""{_FOLLOWS_SQL}, pairs AS (
    SELECT x, y, count(*) AS customers, median(gap_days) AS median_gap,
           quantile_cont(gap_days, 0.25) AS gap_p25, quantile_cont(gap_days, 0.75) AS gap_p75
    FROM follows GROUP BY 1, 2
)
SELECT p.x AS product_x, p.y AS product_y, p.customers, xb.x_buyers, yb.buyers AS y_buyers,
       round(p.customers / b.n, 4) AS support,
       round(p.customers / xb.x_buyers, 4) AS confidence,
       round((p.customers / xb.x_buyers) / (yb.buyers / b.n), 2) AS lift,
       round(p.median_gap, 1) AS median_gap_days,
       round(p.gap_p25, 1) AS gap_p25_days, round(p.gap_p75, 1) AS gap_p75_days
FROM pairs p
JOIN x_buyers xb ON xb.x = p.x
JOIN product_buyers yb ON yb.product_id = p.y, buyers b
WHERE p.customers / b.n >= $min_support AND p.customers >= $min_customers
ORDER BY lift DESC, confidence DESC, p.x, p.y
"""


def sequences(
    con: duckdb.DuckDBPyConnection,
    *,
    within_days: int = 90,
    product: str | None = None,
    min_support: float = 0.01,
    min_customers: int = 5,
    limit: int | None = 20,
) -> Report:
    """Product pairs X → Y ranked by lift (see the module docstring for the measures)."""
    check_positive("within days", within_days)
    check_positive("min support", min_support, zero=True)
    check_positive("min customers", min_customers, zero=True)
    params = {
        "within_days": within_days,
        "product": product,
        "min_support": min_support,
        "min_customers": min_customers,
    }
    columns, rows = fetch(con, "sequences", SEQUENCES_SQL, params)
    _, totals = fetch(con, "sequences", "SELECT count(*) FROM profiles WHERE orders_count > 0")
    summary = {
        "as_of": log_clock(con),
        "buyers": totals[0][0],
        "pairs": len(rows),
        "ranked_by": "lift, then confidence",
    }
    return Report(
        "sequences",
        columns,
        rows if limit is None else rows[:limit],
        summary,
        {**params, "limit": limit},
    )


GAPS_SQL: Final = f"""{_FOLLOWS_SQL}, gaps AS (
    SELECT gap_days,
           CAST(floor(least(gap_days, $within_days - 1e-9) / $bucket_days) AS INTEGER) AS bucket
    FROM follows WHERE x = $product AND y = $then
)
SELECT bucket, count(*) AS customers, round(median(gap_days), 1) AS median_gap_days
FROM gaps GROUP BY GROUPING SETS ((bucket), ()) ORDER BY bucket NULLS LAST
"""
"""Per gap bucket of one pair: customers; the last row (bucket ``NULL``) the pair's
total and median gap."""


def sequence_gaps(
    con: duckdb.DuckDBPyConnection,
    *,
    product: str,
    then: str,
    within_days: int = 90,
    bucket_days: int = 7,
) -> Report:
    """The time from X (``product``) to Y (``then``): matured X buyers who follow
    with Y, counted per ``bucket_days`` of gap (every bucket up to ``within_days``
    listed, empty ones too). The counts sum to the pair's ``customers`` in
    :func:`sequences`, from the same steps (``_FOLLOWS_SQL``)."""
    check_positive("within days", within_days)
    check_positive("bucket days", bucket_days)
    params = {"within_days": within_days, "product": product, "then": then}
    _, rows = fetch(con, "sequences", GAPS_SQL, {**params, "bucket_days": bucket_days})
    counts = {int(b): int(n) for b, n, _ in rows if b is not None}
    total = [(int(n), median) for b, n, median in rows if b is None]
    buckets = -(-within_days // bucket_days)
    out = [
        (b * bucket_days, min(within_days, (b + 1) * bucket_days), counts.get(b, 0))
        for b in range(buckets)
    ]
    summary = {
        "as_of": log_clock(con),
        "customers": total[0][0] if total else 0,
        "median_gap_days": total[0][1] if total else None,
    }
    return Report(
        "sequence-gaps",
        ("days_from", "days_to", "customers"),
        out,
        summary,
        {**params, "bucket_days": bucket_days},
    )
