"""The overview (``GET /console/``): the shop at a glance.

Customers, events per day over the last 90 days of the log clock (line),
revenue per month (bars), the journey funnel 認知→興味→検討→購入→継続 and the
lead ladder (internet user → lead → hot lead → customer → repeater; the sales
ladder too once the SFA has deals), each step with its count and the
conversion from the step before. The numbers are the services' own
(``cdp analytics funnel``'s :func:`~cdp.services.analytics.funnel`,
:mod:`cdp.services.analytics.activity`).

Cost: the funnel reads ``profiles`` (one pass over the customers), events per
day the ``timestamp`` column of 90 days of the log, revenue per month the
order events of the whole log (``ORDERS_SQL``, the analytics' definition).
They go through the console's result cache (``ctx.reports``,
``cdp.console.report_cache``, beside the analytics pages): computed once per
data mark (the log's rows and last offset, the folds' checkpoint positions),
at most once every ``REFRESH`` seconds, on the cache's worker thread while the
page shows the figures at hand. A page view costs the mark's two reads; only
the first one after the server starts waits for the computation (about 0.3 s
on the demo shop, most of it revenue per month), up to the cache's wait, after
which the page says the figures are being computed and reloads itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final

import duckdb
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cdp.console import i18n
from cdp.console.report_cache import Pending
from cdp.console.web import PREFIX, ConsoleContext, Viewer, render, signed_in, unavailable
from cdp.errors import CdpError, LogUnavailableError
from cdp.services.analytics import Report, activity
from cdp.services.analytics.funnel import funnel

REFRESH: Final = 15.0
"""Seconds a computed overview is kept while the log moves on (a busy shop
recomputes at most this often; a quiet one only when something changed)."""
DAYS: Final = 90
MONTHS: Final = 24
"""Months of revenue shown (the most recent ones)."""
KEY: Final = ("overview",)
"""The overview's figures in the console's result cache."""
RELOAD_SECONDS: Final = 3

i18n.register(
    {
        "overview.title": ("Overview", "概要"),
        "overview.customers": ("Customers", "顧客数"),
        "overview.known": ("Known people (leads and later)", "既知の人（リード以降）"),
        "overview.buyers": ("Buyers", "購入者"),
        "overview.revenue_total": ("Revenue ({currency})", "売上（{currency}）"),
        "overview.as_of": ("As of the log clock {as_of}", "ログ時刻 {as_of} 時点"),
        "overview.pending": (
            "The figures are being computed; this page reloads itself.",
            "数値を計算中です。このページは自動で再読み込みされます。",
        ),
        "overview.events_per_day": (
            "Events per day (last {days} days)",
            "1日あたりのイベント数（直近{days}日）",
        ),
        "overview.events_total": ("{n} events in these days", "この期間のイベント {n} 件"),
        "overview.day": ("Day", "日"),
        "overview.events": ("Events", "イベント"),
        "overview.revenue_per_month": ("Revenue per month ({currency})", "月別売上（{currency}）"),
        "overview.revenue_failed": (
            "Revenue per month could not be computed here:",
            "月別売上はここでは計算できませんでした:",
        ),
        "overview.month": ("Month", "月"),
        "overview.orders": ("Orders", "注文数"),
        "overview.revenue": ("Revenue", "売上"),
        "overview.other_currencies": (
            "Orders in other currencies are not included: {currencies}",
            "他の通貨の注文は含みません: {currencies}",
        ),
        "overview.funnel": ("Customer journey funnel", "カスタマージャーニーのファネル"),
        "overview.ladder": ("Lead ladder", "リードの段階"),
        "overview.sales": ("Sales ladder", "営業の段階"),
        "overview.stage": ("Stage", "段階"),
        "overview.at_stage": ("At this stage", "この段階の人数"),
        "overview.reached": ("Reached", "到達"),
        "overview.conversion": ("Conversion from the step before", "前の段階からの転換率"),
        "overview.share": ("Share of all", "全体に占める割合"),
        "overview.ladder_note": (
            "Reached: at this stage or a later one. Hot lead: the lead score, decayed to the "
            "log clock, is at or above the threshold.",
            "到達：この段階かそれ以降にいる人数。ホットリード：ログ時刻まで減衰させたリードスコアが閾値以上。",
        ),
        "overview.stage.funnel.awareness": ("Awareness", "認知"),
        "overview.stage.funnel.interest": ("Interest", "興味"),
        "overview.stage.funnel.consideration": ("Consideration", "検討"),
        "overview.stage.funnel.purchase": ("Purchase", "購入"),
        "overview.stage.funnel.retention": ("Retention", "継続"),
        "overview.stage.lifecycle.unknown": ("Internet user", "インターネットユーザー"),
        "overview.stage.lifecycle.lead": ("Lead", "リード"),
        "overview.stage.lifecycle.hot_lead": ("Hot lead", "ホットリード"),
        "overview.stage.lifecycle.customer": ("Customer", "顧客"),
        "overview.stage.lifecycle.repeater": ("Repeater", "リピーター"),
        "overview.stage.sales.lead": ("Lead", "リード"),
        "overview.stage.sales.hot_lead": ("Hot lead", "ホットリード"),
        "overview.stage.sales.handed_to_sales": ("Handed to sales", "営業へ引き渡し"),
        "overview.stage.sales.deal": ("Deal", "商談"),
        "overview.stage.sales.won": ("Won", "受注"),
    }
)


@dataclass(frozen=True, slots=True)
class Figures:
    """Everything the overview shows, computed together."""

    as_of: datetime | None
    customers: int
    known: int
    buyers: int
    ladders: dict[str, list[dict[str, Any]]]
    days: list[tuple[str, int]]
    months: list[tuple[str, int, Decimal]]
    currency: str
    other_currencies: list[str]
    revenue_total: Decimal | None
    #: Why revenue per month could not be computed (``None``: it was).
    revenue_error: str | None = None


def compute(con: duckdb.DuckDBPyConnection) -> Figures:
    """The overview's figures from the analytics services (one read cursor)."""
    report = funnel(con)
    ladders: dict[str, list[dict[str, Any]]] = {"funnel": [], "lifecycle": [], "sales": []}
    for record in report.records():
        ladders[record["ladder"]].append(record)
    per_day = activity.events_per_day(con, days=DAYS)
    try:  # the heaviest figure: one that fails leaves the others shown, saying why
        revenue = activity.revenue_per_month(con)
        revenue_error = None
    except CdpError as error:
        revenue = Report(
            "revenue_per_month",
            (),
            [],
            {"currency": "JPY", "other_currencies": [], "revenue": None},
        )
        revenue_error = str(error)
    row = con.execute(
        "SELECT count(*) FILTER (WHERE lifecycle_stage <> 'unknown'),"
        " count(*) FILTER (WHERE orders_count > 0) FROM customers"
    ).fetchone()
    known, buyers = (int(row[0]), int(row[1])) if row else (0, 0)
    return Figures(
        as_of=report.summary["as_of"],
        customers=int(report.summary["customers"]),
        known=known,
        buyers=buyers,
        ladders=ladders,
        days=[(day.isoformat(), n) for day, n in per_day.rows],
        months=[(m.strftime("%Y-%m"), o, r) for m, o, r in revenue.rows],
        currency=revenue.summary["currency"],
        other_currencies=revenue.summary["other_currencies"],
        revenue_total=revenue.summary["revenue"],
        revenue_error=revenue_error,
    )


def router(ctx: ConsoleContext) -> APIRouter:
    """``GET /console/``."""
    routes = APIRouter(include_in_schema=False)

    @routes.get(PREFIX + "/")
    def overview(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
        try:  # the figures at hand, however old, while newer ones are computed
            result = ctx.reports.get(KEY, compute, max_stale=math.inf, refresh=REFRESH)
        except LogUnavailableError as error:
            return unavailable(request, viewer, error)
        if isinstance(result, Pending):
            answer = render(request, viewer, "overview/index.html", pending=True)
            answer.headers["Refresh"] = str(RELOAD_SECONDS)
            return answer
        figures: Figures = result.value
        shown = figures.months[-MONTHS:]
        return render(
            request,
            viewer,
            "overview/index.html",
            pending=False,
            f=figures,
            months=shown,
            as_of=figures.as_of.strftime("%Y-%m-%d %H:%M UTC") if figures.as_of else "–",
            days=DAYS,
            events_total=sum(n for _, n in figures.days),
            show_sales=any(r["customers"] for r in figures.ladders["sales"][2:]),
            names={
                ladder: [viewer.t(f"overview.stage.{ladder}.{r['stage']}") for r in rows]
                for ladder, rows in figures.ladders.items()
            },
        )

    return routes
