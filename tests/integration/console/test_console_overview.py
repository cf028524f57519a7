"""The overview over real HTTP: its numbers are the services' and the SQL's.

Each figure is checked against a computation that does not share the page's
code path: customer counts and stage counts straight from ``profiles``, the
ladders against ``cdp analytics funnel``'s service, events per day against a
count of the log in the same window, the revenue total against the sum of
``profiles.revenue`` (the fold's kept orders, not the analytics SQL).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from cdp.config import Settings
from cdp.services.analytics.funnel import funnel
from tests.integration.console.conftest import PASSWORDS, SignedIn, sign_in_as
from tests.integration.console.shop import cli_read

pytestmark = pytest.mark.integration

TOKYO = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class Expected:
    """What the CLI's read connection says, gathered before the server opens the
    shop (in one process, DuckDB allows no read-only connection beside a writer)."""

    counts: tuple[int, int, int]
    funnel: list[dict[str, Any]]
    funnel_stages: dict[str, int]
    hot_leads: int
    as_of: datetime
    times: list[datetime]
    revenue: Decimal
    orders: int


@pytest.fixture(scope="module", autouse=True)
def expected(console_shop: Settings) -> Expected:
    """The figures, computed with the CLI's connection, the service and plain SQL."""
    with cli_read(console_shop) as con:
        counts = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE lifecycle_stage <> 'unknown'),"
            " count(*) FILTER (WHERE orders_count > 0) FROM profiles"
        ).fetchone()
        hot = con.execute(
            "SELECT count(*) FROM profiles WHERE lifecycle_stage IN ('lead', 'hot_lead') AND hot_now"
        ).fetchone()
        as_of = con.execute("SELECT as_of FROM log_clock").fetchone()
        revenue = con.execute(
            "SELECT sum(revenue), sum(orders_count) FROM profiles WHERE currency = 'JPY'"
        ).fetchone()
        assert counts and hot and as_of and revenue
        return Expected(
            counts=tuple(counts),
            funnel=funnel(con).records(),
            funnel_stages=dict(
                con.execute("SELECT funnel_stage, count(*) FROM profiles GROUP BY 1").fetchall()
            ),
            hot_leads=hot[0],
            as_of=as_of[0],
            times=[t for (t,) in con.execute("SELECT timestamp FROM event_log").fetchall()],
            revenue=Decimal(revenue[0]),
            orders=int(revenue[1]),
        )


@pytest.fixture(scope="module")
def page(console_url: str) -> str:
    """The overview as a signed-in viewer sees it (English)."""

    name, password = PASSWORDS["viewer"]
    client = sign_in_as(console_url, name, password)
    try:
        answer = client.get("/console/")
    finally:
        client.close()
    assert answer.status_code == 200, answer.text
    return answer.text


def _number(text: str) -> float:
    return float(text.replace(",", "").replace("%", ""))


def _kpi(page: str, name: str) -> float:
    match = re.search(rf'id="kpi-{name}">([^<]+)<', page)
    assert match, name
    return _number(match.group(1))


def _table(page: str, table_id: str) -> list[list[str]]:
    """The body rows of a table as lists of cell texts."""
    match = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert match, table_id
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", match.group(1), re.S)
    return [
        [c.strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)] for row in rows
    ]


def test_customer_counts_are_the_profiles(page: str, expected: Expected) -> None:
    assert expected.counts[0] > 0
    assert (_kpi(page, "customers"), _kpi(page, "known"), _kpi(page, "buyers")) == expected.counts


def test_funnel_and_ladder_match_the_cli_service_and_the_profiles(
    page: str, expected: Expected
) -> None:
    for ladder, table_id in (("funnel", "funnel-table"), ("lifecycle", "ladder-table")):
        records = [r for r in expected.funnel if r["ladder"] == ladder]
        shown = _table(page, table_id)
        assert [int(_number(cells[1])) for cells in shown] == [r["customers"] for r in records]
        assert [int(_number(cells[3])) for cells in shown] == [r["reached"] for r in records]
        for cells, record in zip(shown, records, strict=True):
            if record["conversion"] is None:
                assert cells[4] == "–"
            else:
                assert _number(cells[4]) == pytest.approx(record["conversion"] * 100, abs=0.05)
    # The stage counts, independently of the service.
    names = ("awareness", "interest", "consideration", "purchase", "retention")
    shown = _table(page, "funnel-table")
    assert [int(_number(c[1])) for c in shown] == [expected.funnel_stages.get(n, 0) for n in names]
    at_stage = {cells[0]: int(_number(cells[1])) for cells in _table(page, "ladder-table")}
    assert at_stage["Hot lead"] == expected.hot_leads
    assert re.search(r"<th[^>]*>Purchase</th>", page) and "Repeater" in page


def test_events_per_day_count_the_log_in_the_last_90_days(page: str, expected: Expected) -> None:
    last_day = expected.as_of.astimezone(TOKYO).date()
    first_day = last_day - timedelta(days=89)
    rows = _table(page, "events-table")
    assert len(rows) == 90
    assert rows[0][0] == first_day.isoformat() and rows[-1][0] == last_day.isoformat()
    in_window = [
        t
        for t in expected.times
        if t <= expected.as_of and first_day <= t.astimezone(TOKYO).date() <= last_day
    ]
    assert sum(int(_number(c[1])) for c in rows) == len(in_window) > 0
    busiest = max(rows, key=lambda c: _number(c[1]))
    assert sum(1 for t in in_window if t.astimezone(TOKYO).date().isoformat() == busiest[0]) == int(
        _number(busiest[1])
    )


def test_revenue_per_month_adds_up_to_the_profiles_revenue(page: str, expected: Expected) -> None:
    assert expected.revenue > 0
    assert Decimal(str(_kpi(page, "revenue"))) == expected.revenue.quantize(Decimal(1))
    months = _table(page, "revenue-table")
    assert months and sum(int(_number(c[1])) for c in months) == expected.orders


def test_both_languages_render(sign_in: Callable[[str], SignedIn]) -> None:
    client = sign_in("viewer")
    japanese = client.get("/console/", headers={"Accept-Language": "ja,en;q=0.5"})
    assert japanese.status_code == 200
    assert '<html lang="ja">' in japanese.text
    for word in ("認知", "興味", "検討", "購入", "継続", "リード", "ホットリード", "リピーター"):
        assert word in japanese.text
    english = client.get("/console/", headers={"Accept-Language": "en"})
    assert "Awareness" in english.text and "Hot lead" in english.text
    assert "<svg" in english.text


def test_signed_out_is_sent_to_sign_in(console_url: str) -> None:

    answer = httpx.get(console_url + "/console/", follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"].startswith("/console/login")
