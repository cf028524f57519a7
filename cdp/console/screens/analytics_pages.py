"""The analytics pages of the console: their options, what each computes, and
what each shows.

Every number comes from the service ``cdp analytics ...`` prints, called the
way the CLI calls it (``cdp.cli.analytics``), so the page, its CSV and the CLI
agree. An :class:`~cdp.console.screens.analytics_form.Analytic` names

- ``options``: the page's GET form read into the service's keyword
  arguments (the CLI's options, checked; :class:`BadOption` names a wrong one);
- ``compute``: the service calls, one ``Report`` per table, run through the
  screen's result cache (``cdp.console.report_cache``);
- ``view``: the values the template shows (tables, chart inputs);
- ``downloads``: CSV name → report (the CSV is that report's columns and
  rows, as ``--csv FILE`` writes them).
"""

from __future__ import annotations

from typing import Any, Final

import duckdb

from cdp.console.screens.analytics_form import (
    Analytic,
    BadOption,
    Options,
    Query,
    Reports,
    Text,
    choice,
    command,
    label,
    number,
    text,
)
from cdp.services import analytics
from cdp.services.analytics import Report

PAGE_SIZE: Final = 50
"""Customers per page of the next-purchase list."""
MAX_COHORTS: Final = 24
"""Cohorts (the latest) and periods shown in a cohort grid; the CSV has them all."""
DUE_BUCKETS: Final = ((None, 0), (0, 7), (7, 14), (14, 28), (28, 56), (56, None))
"""Predicted next purchase, days from the log clock: late, this week, ... later."""


# --- RFM ---------------------------------------------------------------------


def _rfm_view(reports: Reports, options: Options, query: Query, t: Text) -> dict[str, Any]:
    segments = reports["segments"].records()
    cells = {(c["r"], c["f"]): c for c in reports["grid"].records()}
    top = max((c["customers"] for c in cells.values()), default=0) or 1
    grid = [
        (r, [(f, cells.get((r, f)), 9 * cells[(r, f)]["customers"] // top if (r, f) in cells else 0)
             for f in range(1, 6)])
        for r in range(5, 0, -1)
    ]  # fmt: skip
    return {
        "segments": segments,
        "labels": [t(f"analytics.segment.{s['rfm_segment']}") for s in segments],
        "grid": grid,
        "summary": reports["segments"].summary,
    }


RFM = Analytic(
    "rfm",
    lambda query: {},
    lambda con, o: {"segments": analytics.rfm(con), "grid": analytics.rfm_grid(con)},
    _rfm_view,
    {"rfm": "segments", "rfm-grid": "grid"},
    lambda o: "cdp analytics rfm; cdp analytics rfm --grid",
)


# --- cohorts: retention and LTV ------------------------------------------------


_PERIOD_FLAGS: Final = {"period": "--period", "tz": "--tz"}


def _cohort_options(query: Query) -> Options:
    period = choice(query, "period", analytics.PERIODS, "month")
    return {"period": period, "tz": text(query, "tz") or analytics.DEFAULT_TZ}


def _matrix(report: Report) -> tuple[list[Any], list[int], dict[Any, Any]]:
    """(the latest ``MAX_COHORTS`` cohorts, the periods shown, cohort → {period: row})."""
    by: dict[Any, dict[int, dict[str, Any]]] = {}
    for row in report.records():
        by.setdefault(row["cohort"], {})[row["period"]] = row
    cohorts = sorted(by)[-MAX_COHORTS:]
    periods = list(range(min(MAX_COHORTS, 1 + max((max(p) for p in by.values()), default=-1))))
    return cohorts, periods, by


def _retention_view(reports: Reports, options: Options, query: Query, t: Text) -> dict[str, Any]:
    report = reports["retention"]
    cohorts, periods, by = _matrix(report)
    shares = [[by[c][p]["retention"] if p in by[c] else None for p in periods] for c in cohorts]
    return {
        "cohorts": [(label(c, options["period"]), by[c][0]["customers"], by[c]) for c in cohorts],
        "periods": periods,
        "shares": shares,
        "cut": len(by) > len(cohorts) or any(len(v) > len(periods) for v in by.values()),
        "summary": report.summary,
    }


def _ltv_options(query: Query) -> Options:
    return {**_cohort_options(query), "currency": text(query, "currency")}


def _ltv_view(reports: Reports, options: Options, query: Query, t: Text) -> dict[str, Any]:
    report = reports["ltv"]
    cohorts, periods, by = _matrix(report)
    rows = []
    for c in cohorts:
        latest = by[c][max(by[c])]
        rows.append((label(c, options["period"]), by[c][0]["customers"], by[c], latest["ltv"]))
    return {
        "rows": rows,
        "periods": periods,
        "summary": report.summary,
        "cut": len(by) > len(cohorts),
    }


RETENTION = Analytic(
    "cohorts",
    _cohort_options,
    lambda con, o: {"retention": analytics.retention(con, period=o["period"], tz=o["tz"])},
    _retention_view,
    {"cohorts": "retention"},
    lambda o: command("retention", o, _PERIOD_FLAGS),
)
LTV = Analytic(
    "ltv",
    _ltv_options,
    lambda con, o: {"ltv": analytics.ltv(con, **o)},
    _ltv_view,
    {"ltv": "ltv"},
    lambda o: command("ltv", o, {**_PERIOD_FLAGS, "currency": "--currency"}),
)


# --- sequences ----------------------------------------------------------------

GAP_COLUMNS: Final = ("days_from", "days_to", "customers")


def _sequence_options(query: Query) -> Options:
    return {
        "product": text(query, "product"),
        "within_days": number(query, "within_days", int, 90, 1, 3650),
        "min_support": number(query, "min_support", float, 0.01, 0, 1),
        "min_customers": number(query, "min_customers", int, 5, 0, 1_000_000),
        "limit": number(query, "limit", int, 20, 1, 500),
        "x": text(query, "x"),
        "y": text(query, "y"),
    }


def _sequence_reports(con: duckdb.DuckDBPyConnection, o: Options) -> Reports:
    keys = ("within_days", "product", "min_support", "min_customers", "limit")
    pairs = analytics.sequences(con, **{k: o[k] for k in keys})
    x, y = o["x"], o["y"]
    if not (x and y) and pairs.rows:
        x, y = pairs.rows[0][0], pairs.rows[0][1]  # the top-ranked pair
    if x and y:
        gaps = analytics.sequence_gaps(con, product=x, then=y, within_days=o["within_days"])
    else:
        gaps = Report("sequence-gaps", GAP_COLUMNS, [])
    return {"pairs": pairs, "gaps": gaps}


def _short(product: str, most: int = 10) -> str:
    """A product id short enough for a chart label (the table has it whole)."""
    return product if len(product) <= most else product[: most - 1] + "…"


def _sequence_view(reports: Reports, options: Options, query: Query, t: Text) -> dict[str, Any]:
    pairs, gaps = reports["pairs"], reports["gaps"]
    records = pairs.records()
    return {
        "pairs": records,
        "labels": [f"{_short(r['product_x'])} → {_short(r['product_y'])}" for r in records],
        "shares": [round(100 * r["confidence"], 1) for r in records],
        "summary": pairs.summary,
        "gap_labels": [f"{g[0]}–{g[1]}" for g in gaps.rows],
        "gaps": gaps.records(),
        "gap_summary": gaps.summary,
        "pair": (gaps.params.get("product"), gaps.params.get("then")),
        "products": sorted({r[0] for r in pairs.rows} | {r[1] for r in pairs.rows}),
    }


SEQUENCES = Analytic(
    "sequences",
    _sequence_options,
    _sequence_reports,
    _sequence_view,
    {"sequences": "pairs", "sequence-gaps": "gaps"},
    lambda o: command(
        "sequences",
        o,
        {
            "within_days": "--within-days",
            "product": "--product",
            "min_support": "--min-support",
            "min_customers": "--min-customers",
            "limit": "--limit",
        },
    ),
)


# --- next purchase --------------------------------------------------------------


SHOW: Final = ("upcoming", "overdue", "all")
"""Next-purchase lists: predicted from the log clock on (soonest first; the
default), overdue only (the CLI's ``--overdue``), or every repeat customer."""


def _show(query: Query) -> str:
    return choice(query, "show", SHOW, "upcoming")


def _next_options(query: Query) -> Options:
    return {
        "overdue_only": _show(query) == "overdue",
        "prior_weight": number(query, "prior_weight", float, 5.0, 0, 1000),
    }


def _due_buckets(records: list[dict[str, Any]]) -> list[tuple[tuple[Any, Any], int]]:
    counts = [0] * len(DUE_BUCKETS)
    for row in records:
        due = row["due_in_days"]
        for n, (low, high) in enumerate(DUE_BUCKETS):
            if (low is None or due >= low) and (high is None or due < high):
                counts[n] += 1
                break
    return list(zip(DUE_BUCKETS, counts, strict=True))


def _due_label(bucket: tuple[Any, Any], t: Text) -> str:
    low, high = bucket
    if low is None:
        return t("analytics.next.late")
    if high is None:
        return t("analytics.next.later", days=low)
    return t("analytics.next.within", low=low, high=high)


def _next_view(reports: Reports, options: Options, query: Query, t: Text) -> dict[str, Any]:
    report = reports["next"]
    show = _show(query)
    every = report.records()
    records = [r for r in every if r["due_in_days"] >= 0] if show == "upcoming" else every
    pages = max(1, -(-len(records) // PAGE_SIZE))
    try:
        page = min(pages, max(1, int(query.get("page", "1"))))
    except ValueError:
        raise BadOption("page", query.get("page", "")) from None
    start = (page - 1) * PAGE_SIZE
    return {
        "rows": records[start : start + PAGE_SIZE],
        "page": page,
        "pages": pages,
        "first": start + 1,
        "total": len(records),
        "show": show,
        "due": [(_due_label(bucket, t), n) for bucket, n in _due_buckets(every)],
        "summary": report.summary,
    }


NEXT_PURCHASE = Analytic(
    "next-purchase",
    _next_options,
    lambda con, o: {"next": analytics.next_purchase(con, **o)},
    _next_view,
    {"next-purchase": "next"},
    lambda o: command(
        "next-purchase", o, {"overdue_only": "--overdue", "prior_weight": "--prior-weight"}
    ),
)


# --- email A/B ----------------------------------------------------------------


def verdict(rows: list[dict[str, Any]]) -> tuple[str, str | None]:
    """One campaign's A/B outcome on the open rate, from the report's own test:
    ``("winner", variant)`` when a variant beats the control significantly (the
    best such one) or every variant is significantly worse than the control
    (the control wins); else ``("not_significant", None)``."""
    control, others = rows[0], rows[1:]
    better = [r for r in others if r["significant"] and (r["open_z"] or 0) > 0]
    if better:
        return "winner", max(better, key=lambda r: r["open_rate"] or 0)["variant"]
    if others and all(r["significant"] and (r["open_z"] or 0) < 0 for r in others):
        return "winner", control["variant"]
    return "not_significant", None


def _email_options(query: Query) -> Options:
    return {
        "campaign": text(query, "campaign"),
        "alpha": number(query, "alpha", float, 0.05, 0.0001, 0.5),
    }


def _email_view(reports: Reports, options: Options, query: Query, t: Text) -> dict[str, Any]:
    report = reports["ab"]
    campaigns: dict[str, list[dict[str, Any]]] = {}
    for row in report.records():
        campaigns.setdefault(row["campaign_id"], []).append(row)
    return {
        "campaigns": [(c, rows, *verdict(rows)) for c, rows in campaigns.items()],
        "summary": report.summary,
        "bars": [
            (f"{r['campaign_id']} · {r['variant']}", round(100 * (r["open_rate"] or 0), 1))
            for r in report.records()
        ],
    }


EMAIL_AB = Analytic(
    "email-ab",
    _email_options,
    lambda con, o: {"ab": analytics.email_ab(con, **o)},
    _email_view,
    {"email-ab": "ab"},
    lambda o: command("email-ab", o, {"campaign": "--campaign", "alpha": "--alpha"}),
)


# --- campaigns -----------------------------------------------------------------


def _campaign_view(reports: Reports, options: Options, query: Query, t: Text) -> dict[str, Any]:
    report = reports["campaigns"]
    records = report.records()
    shown = [r for r in records if r["touch"] == records[0]["touch"]] if records else []
    return {
        "rows": records,
        "summary": report.summary,
        "bars": [(f"{r['utm_source']} / {r['utm_campaign']}", r["won"]) for r in shown[:15]],
        "bars_touch": shown[0]["touch"] if shown else None,
    }


CAMPAIGNS = Analytic(
    "campaigns",
    lambda query: {"touch": choice(query, "touch", ("first", "last", "both"), "both")},
    lambda con, o: {"campaigns": analytics.campaigns(con, touch=o["touch"])},
    _campaign_view,
    {"campaigns": "campaigns"},
    lambda o: command("campaigns", o, {"touch": "--touch"}),
)

PAGES: Final = (RFM, RETENTION, LTV, SEQUENCES, NEXT_PURCHASE, EMAIL_AB, CAMPAIGNS)
"""Every analytics page, in the order of the index."""
