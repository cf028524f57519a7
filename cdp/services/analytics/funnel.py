"""Funnel: customers per journey stage and per ladder rung, with conversion ratios.

Two ladders, both from ``profiles`` (MISSION item 4):

- ``funnel``: ``funnel_stage``, awareness → interest → consideration →
  purchase → retention (認知・興味・検討・購入・継続);
- ``lifecycle``: internet user → lead → hot lead → customer → repeater
  (``unknown`` is the anonymous internet user). ``lead`` vs ``hot_lead`` is
  decided *as of the log clock* (``profiles.hot_now``: the lead score decayed
  to the latest event time), so a lead that was hot months ago and went
  quiet counts as a lead;
- ``sales``: lead → hot lead → handed to sales → deal → won, marketing →
  sales conversion from the SFA's deals (``cdp.services.analytics.sales``),
  with the won revenue in the summary.

Per stage: ``customers`` (at that stage now), ``share`` of everyone,
``reached`` (at that stage or a later one: stages are a ladder, so a
customer at a later stage is counted as having passed the earlier ones) and
``conversion = reached / reached of the stage before`` (empty for the
first stage).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import duckdb

from cdp.services.analytics._base import Report, fetch, log_clock, ratio
from cdp.services.analytics.sales import SALES_STAGES, handed_definition, sales_ladder

FUNNEL_STAGES: Final = ("awareness", "interest", "consideration", "purchase", "retention")
LIFECYCLE_STAGES: Final = ("unknown", "lead", "hot_lead", "customer", "repeater")

FUNNEL_SQL: Final = """
SELECT 'funnel' AS ladder, funnel_stage AS stage, count(*) AS customers
FROM profiles GROUP BY ALL
UNION ALL
SELECT 'lifecycle', CASE WHEN lifecycle_stage IN ('lead', 'hot_lead')
                         THEN CASE WHEN hot_now THEN 'hot_lead' ELSE 'lead' END
                         ELSE lifecycle_stage END, count(*)
FROM profiles GROUP BY ALL
"""

COLUMNS: Final = ("ladder", "stage", "customers", "share", "reached", "conversion")


def _ladder(name: str, stages: tuple[str, ...], counts: dict[str, int]) -> list[tuple[Any, ...]]:
    total = sum(counts.values())
    rows: list[tuple[Any, ...]] = []
    previous: int | None = None
    for index, stage in enumerate(stages):
        reached = sum(counts.get(later, 0) for later in stages[index:])
        conversion = None if previous is None else ratio(reached, previous)
        rows.append(
            (
                name,
                stage,
                counts.get(stage, 0),
                ratio(counts.get(stage, 0), total),
                reached,
                conversion,
            )
        )
        previous = reached
    return rows


def funnel(con: duckdb.DuckDBPyConnection, handed: Iterable[str] | None = None) -> Report:
    """Stage counts and conversions of the journey funnel, the lifecycle ladder and
    the sales ladder (``handed``: customer ids pushed to an SFA, see ``sales_ladder``)."""
    _, rows = fetch(con, "funnel", FUNNEL_SQL)
    counts: dict[str, dict[str, int]] = {"funnel": {}, "lifecycle": {}}
    for ladder, stage, customers in rows:
        counts[ladder][stage] = customers
    sales, won_revenue = sales_ladder(con, handed)
    out = (
        _ladder("funnel", FUNNEL_STAGES, counts["funnel"])
        + _ladder("lifecycle", LIFECYCLE_STAGES, counts["lifecycle"])
        + _ladder("sales", SALES_STAGES, sales)
    )
    unexpected = {
        f"{ladder}:{stage}"
        for ladder, known in (("funnel", FUNNEL_STAGES), ("lifecycle", LIFECYCLE_STAGES))
        for stage in counts[ladder]
        if stage not in known
    }
    summary = {
        "as_of": log_clock(con),
        "customers": sum(counts["funnel"].values()),
        "unknown_stages": sorted(unexpected),
        "won_revenue": won_revenue,
        "handed_to_sales": handed_definition(handed),
    }
    return Report("funnel", COLUMNS, out, summary)
