"""RFM: recency, frequency and monetary scores 1–5 and the classic named segments.

Over every customer with at least one kept order (``profiles.orders_count >
0``), from the profile columns the folds keep exact:

- recency ``R``: ``days_since_last_order`` (whole days before the log clock);
- frequency ``F``: ``orders_count`` (orders not fully refunded);
- monetary ``M``: ``revenue`` (net of refunds, DECIMAL).

**Scores** are quintiles by rank: ``score = 1 + floor(5 (rank - 1) / n)``
with ``rank = RANK()`` (1-based, ascending: fewer days, more orders, more
money rank higher) among the ``n`` buyers. **Ties share a score**: tied
customers all get the rank of the first of them, so equal values never land
in different quintiles, and a value shared by many customers (one order
only, say) leaves some scores unused rather than splitting them at random
as ``NTILE`` would.

**Segments** are named from R and F (M is reported, not used to name, as in
the usual RF grid):

====== ====== ===================
R      F      segment
====== ====== ===================
5      4–5    champions
3–4    4–5    loyal_customers
4–5    2–3    potential_loyalists
5      1      new_customers
4      1      promising
3      3      need_attention
3      1–2    about_to_sleep
1–2    5      cant_lose
1–2    3–4    at_risk
1–2    1–2    hibernating
====== ====== ===================

``RFM_SQL`` (``customer_id, r, f, m, rfm_segment``) is a plain SELECT over
the views that other SQL (the segment language) can join.
"""

from __future__ import annotations

from typing import Final

import duckdb

from cdp.services.analytics._base import Report, fetch, log_clock

SEGMENTS: Final = (
    "champions",
    "loyal_customers",
    "potential_loyalists",
    "new_customers",
    "promising",
    "need_attention",
    "about_to_sleep",
    "cant_lose",
    "at_risk",
    "hibernating",
)
"""Segment names, best first (the order reports list them in)."""


def _score(rank: str) -> str:
    return f"CAST(1 + floor(5 * ({rank} - 1) / n) AS INTEGER)"


RFM_DETAIL_SQL: Final = f"""
SELECT customer_id, recency_days, frequency, monetary, r, f, m,
       CASE WHEN r = 5 AND f >= 4 THEN 'champions'
            WHEN r >= 3 AND f >= 4 THEN 'loyal_customers'
            WHEN r >= 4 AND f >= 2 THEN 'potential_loyalists'
            WHEN r = 5 THEN 'new_customers'
            WHEN r = 4 THEN 'promising'
            WHEN r = 3 AND f = 3 THEN 'need_attention'
            WHEN r = 3 THEN 'about_to_sleep'
            WHEN f = 5 THEN 'cant_lose'
            WHEN f >= 3 THEN 'at_risk'
            ELSE 'hibernating' END AS rfm_segment
FROM (
    SELECT customer_id, recency_days, frequency, monetary,
           {_score("rank() OVER (ORDER BY recency_days DESC)")} AS r,
           {_score("rank() OVER (ORDER BY frequency)")} AS f,
           {_score("rank() OVER (ORDER BY monetary)")} AS m
    FROM (SELECT customer_id, days_since_last_order AS recency_days,
                 orders_count AS frequency, revenue AS monetary,
                 count(*) OVER () AS n
          FROM profiles WHERE orders_count > 0)
)
"""
"""Per buyer: the raw R/F/M values, the scores and the segment."""

RFM_SQL: Final = f"SELECT customer_id, r, f, m, rfm_segment FROM ({RFM_DETAIL_SQL})"
"""Per buyer: ``customer_id, r, f, m, rfm_segment`` (join it to ``profiles``)."""

_SEGMENT_ORDER = ", ".join(f"'{name}'" for name in SEGMENTS)

RFM_SEGMENTS_SQL: Final = f"""
SELECT s.rfm_segment, count(d.customer_id) AS customers,
       coalesce(sum(d.monetary), 0) AS revenue,
       round(avg(d.recency_days), 1) AS avg_recency_days,
       round(avg(d.frequency), 2) AS avg_frequency,
       CAST(avg(d.monetary) AS DECIMAL(18, 2)) AS avg_monetary
FROM unnest([{_SEGMENT_ORDER}]) WITH ORDINALITY AS s(rfm_segment, position)
LEFT JOIN ({RFM_DETAIL_SQL}) d USING (rfm_segment)
GROUP BY s.rfm_segment, s.position ORDER BY s.position
"""


def rfm(con: duckdb.DuckDBPyConnection) -> Report:
    """Customers and revenue per RFM segment (every segment listed, empty ones too)."""
    columns, rows = fetch(con, "rfm", RFM_SEGMENTS_SQL)
    buyers = sum(row[1] for row in rows)
    shares = [round(row[1] / buyers, 4) if buyers else None for row in rows]
    columns = (*columns[:2], "share", *columns[2:])
    rows = [(*row[:2], share, *row[2:]) for row, share in zip(rows, shares, strict=True)]
    summary = {"as_of": log_clock(con), "buyers": buyers, "revenue": sum(row[3] for row in rows)}
    return Report("rfm", columns, rows, summary)


RFM_GRID_SQL: Final = f"""
SELECT r, f, any_value(rfm_segment) AS rfm_segment, count(*) AS customers,
       sum(monetary) AS revenue
FROM ({RFM_DETAIL_SQL}) GROUP BY r, f ORDER BY r DESC, f
"""


def rfm_grid(con: duckdb.DuckDBPyConnection) -> Report:
    """Customers and revenue per (R, F) score cell, the grid the segments are cut from
    (only cells with buyers; each cell lies in exactly one segment)."""
    columns, rows = fetch(con, "rfm", RFM_GRID_SQL)
    summary = {"as_of": log_clock(con), "buyers": sum(row[3] for row in rows)}
    return Report("rfm-grid", columns, rows, summary)


def rfm_scores(
    con: duckdb.DuckDBPyConnection, *, segment: str | None = None, limit: int | None = None
) -> Report:
    """Per-customer R/F/M values, scores and segment (best customers first)."""
    sql = (
        f"SELECT * FROM ({RFM_DETAIL_SQL}) WHERE $segment IS NULL OR rfm_segment = $segment "
        "ORDER BY r + f + m DESC, monetary DESC, customer_id"
        + ("" if limit is None else f" LIMIT {int(limit)}")
    )
    columns, rows = fetch(con, "rfm", sql, {"segment": segment})
    return Report(
        "rfm-scores", columns, rows, {"as_of": log_clock(con)}, {"segment": segment, "limit": limit}
    )
