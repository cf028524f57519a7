"""The analytics screen over real HTTP: every number on a page is the service's.

The expected reports come from the CLI's own read connection
(``bootstrap.open_read``, what ``cdp analytics ...`` opens) and the same
service calls with the CLI's defaults, gathered before the server opens the
shop (DuckDB allows no read-only connection beside a writer in one process).
Where a page shows a number the service does not print as such, it is checked
against a computation that does not share the page's path: the R × F grid
against a count of the per-customer scores (``rfm --customers``), the gap
histogram against the pair's count and median, the A/B verdict against a
z-test run here, the due buckets against the rows' ``due_in_days``.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest

from cdp.config import Settings
from cdp.console.screens.analytics_pages import PAGE_SIZE, verdict
from cdp.services import analytics
from cdp.services.analytics import Report
from cdp.services.analytics.stats import two_proportion_z
from cdp.services.privacy import audit
from tests.integration.console.conftest import PASSWORDS, SignedIn, sign_in_as
from tests.integration.console.shop import cli_read

pytestmark = pytest.mark.integration

PAGES = ("rfm", "cohorts", "ltv", "sequences", "next-purchase", "email-ab", "campaigns")


@dataclass(frozen=True)
class Expected:
    """The reports as the CLI computes them (default options)."""

    rfm: Report
    scores: Report
    retention: Report
    ltv: Report
    sequences: Report
    gaps: Report
    next_purchase: Report
    email_ab: Report
    campaigns: Report


@pytest.fixture(scope="module", autouse=True)
def expected(console_shop: Settings) -> Expected:
    """Every report, from the CLI's connection, before the server opens the shop."""
    with cli_read(console_shop) as con:
        pairs = analytics.sequences(con)
        assert pairs.rows, "the generated shop should show the planted A → B pattern"
        x, y = pairs.rows[0][0], pairs.rows[0][1]
        return Expected(
            rfm=analytics.rfm(con),
            scores=analytics.rfm_scores(con),
            retention=analytics.retention(con),
            ltv=analytics.ltv(con),
            sequences=pairs,
            gaps=analytics.sequence_gaps(con, product=x, then=y),
            next_purchase=analytics.next_purchase(con),
            email_ab=analytics.email_ab(con),
            campaigns=analytics.campaigns(con),
        )


@pytest.fixture(scope="module")
def viewer(console_url: str) -> Iterator[SignedIn]:
    """One viewer session for the module's reads."""
    name, password = PASSWORDS["viewer"]
    client = sign_in_as(console_url, name, password)
    yield client
    client.close()


@pytest.fixture(scope="module")
def pages(viewer: SignedIn) -> dict[str, str]:
    """Every analytics page as the viewer sees it (English, default options)."""
    out = {}
    for name in PAGES:
        answer = viewer.get(f"/console/analytics/{name}", headers={"Accept-Language": "en"})
        assert answer.status_code == 200, answer.text
        assert 'id="analytics-pending"' not in answer.text
        out[name] = answer.text
    return out


def _number(text: str) -> float:
    return float(re.sub(r"<[^>]+>", "", text).replace(",", "").replace("%", "").strip())


def _rows(page: str, table_id: str) -> list[tuple[str, list[str]]]:
    """(the row's attributes, its cell texts) of every body row of a table."""
    match = re.search(rf'<table id="{table_id}"[^>]*>(.*?)</table>', page, re.S)
    assert match, table_id
    rows = re.findall(r"<tr([^>]*)>(.*?)</tr>", match.group(1).split("</thead>")[-1], re.S)
    return [
        (attrs, [c.strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", body, re.S)])
        for attrs, body in rows
    ]


def _attr(attrs: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', attrs)
    assert match, (name, attrs)
    return match.group(1)


def _section(page: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}"[^>]*>(.*?)</section>', page, re.S)
    assert match, anchor
    return match.group(1)


def test_index_links_every_page_and_pages_have_their_sections(
    viewer: SignedIn, pages: dict[str, str]
) -> None:
    index = viewer.get("/console/analytics")
    assert index.status_code == 200
    for name in PAGES:
        assert f'href="/console/analytics/{name}"' in index.text
        section = _section(pages[name], name)
        assert '<svg class="chart"' in section and "<table" in section, name


def test_rfm_segments_and_grid_are_the_services(pages: dict[str, str], expected: Expected) -> None:
    shown = {_attr(a, "data-segment"): cells for a, cells in _rows(pages["rfm"], "rfm-segments")}
    for row in expected.rfm.records():
        cells = shown[row["rfm_segment"]]
        assert _number(cells[1]) == row["customers"]
        assert _number(cells[3]) == round(row["revenue"])
    # The grid against a count of every buyer's scores (`rfm --customers`).
    per_cell = Counter((s["r"], s["f"]) for s in expected.scores.records())
    grid = re.findall(
        r'<td class="num[^"]*" data-r="(\d)" data-f="(\d)">(?:<span class="customers">([\d,]+)|–)',
        pages["rfm"],
    )
    assert len(grid) == 25
    got = {(int(r), int(f)): int(n.replace(",", "")) for r, f, n in grid if n}
    assert got == dict(per_cell)


def test_cohort_heatmap_and_table_are_the_retention_report(
    pages: dict[str, str], expected: Expected
) -> None:
    page = pages["cohorts"]
    by_cohort: dict[str, dict[int, dict[str, Any]]] = {}
    for row in expected.retention.records():
        by_cohort.setdefault(row["cohort"].strftime("%Y-%m"), {})[row["period"]] = row
    rows = _rows(page, "cohorts-table")
    assert [_attr(a, "data-cohort") for a, _ in rows] == sorted(by_cohort)[-24:]
    for cohort, periods in by_cohort.items():
        block = re.search(rf'<tr data-cohort="{cohort}">(.*?)</tr>', page, re.S)
        assert block, cohort
        found = re.findall(r'data-period="(\d+)" data-active="(\d+)">([\d.]+)%', block.group(1))
        assert {int(p): (int(a), float(v)) for p, a, v in found} == {
            p: (r["active"], round(100 * r["retention"], 1)) for p, r in periods.items()
        }
    heat_cells = len(re.findall(r'<rect class="heat h\d"', _section(page, "cohorts")))
    assert heat_cells == len(expected.retention.rows)


def test_ltv_table_is_the_ltv_report(pages: dict[str, str], expected: Expected) -> None:
    page = pages["ltv"]
    for row in expected.ltv.records():
        block = re.search(
            rf'<tr data-cohort="{row["cohort"].strftime("%Y-%m")}">(.*?)</tr>', page, re.S
        )
        assert block
        cell = re.search(rf'data-period="{row["period"]}">([\d,.]+)<', block.group(1))
        assert cell and Decimal(cell.group(1).replace(",", "")) == row["ltv"]


def test_sequences_and_the_time_to_b_are_the_services(
    pages: dict[str, str], expected: Expected
) -> None:
    page = pages["sequences"]
    shown = [(_attr(a, "data-x"), _attr(a, "data-y"), c) for a, c in _rows(page, "sequences-table")]
    records = expected.sequences.records()
    assert [(x, y) for x, y, _ in shown] == [(r["product_x"], r["product_y"]) for r in records]
    for (_, _, cells), r in zip(shown, records, strict=True):
        assert _number(cells[2]) == r["customers"]
        assert _number(cells[4]) == round(100 * r["confidence"], 1)
        assert _number(cells[5]) == r["lift"]
        assert _number(cells[6]) == r["median_gap_days"]
    # The distribution of the top pair: its buckets add up to the pair's customers.
    top = records[0]
    gaps = [_number(c[1]) for _, c in _rows(page, "sequence-gaps-table")]
    assert gaps == [row[2] for row in expected.gaps.rows]
    assert sum(gaps) == top["customers"]
    assert f"median {top['median_gap_days']} days" in page


def test_next_purchase_lists_customers_due_from_now_soonest_first(
    viewer: SignedIn, pages: dict[str, str], expected: Expected
) -> None:
    records = expected.next_purchase.records()
    upcoming = [r for r in records if r["due_in_days"] >= 0]
    rows = _rows(pages["next-purchase"], "next-purchase-table")
    assert [_attr(a, "data-customer") for a, _ in rows] == [
        r["customer_id"] for r in upcoming[:PAGE_SIZE]
    ]
    for (_, cells), r in zip(rows, upcoming, strict=False):
        assert cells[3] == r["predicted_at"].strftime("%Y-%m-%d")
    due = [_number(c[1]) for _, c in _rows(pages["next-purchase"], "next-purchase-due")]
    assert due[0] == sum(1 for r in records if r["due_in_days"] < 0)
    assert sum(due) == len(records) == expected.next_purchase.summary["customers"]
    # Every customer, second page.
    second = viewer.get("/console/analytics/next-purchase?show=all&page=2")
    got = [_attr(a, "data-customer") for a, _ in _rows(second.text, "next-purchase-table")]
    assert got == [r["customer_id"] for r in records[PAGE_SIZE : 2 * PAGE_SIZE]]


def test_email_ab_rates_p_values_and_winners(pages: dict[str, str], expected: Expected) -> None:
    page = pages["email-ab"]
    alpha = 0.05
    campaigns: dict[str, list[dict[str, Any]]] = {}
    for r in expected.email_ab.records():
        campaigns.setdefault(r["campaign_id"], []).append(r)
    assert campaigns
    for campaign, rows in campaigns.items():
        block = re.search(rf'<tbody data-campaign="{campaign}">(.*?)</tbody>', page, re.S)
        assert block, campaign
        for r in rows:
            line = re.search(rf'<tr data-variant="{r["variant"]}">(.*?)</tr>', block.group(1), re.S)
            assert line
            cells = re.findall(r"<td[^>]*>(.*?)</td>", line.group(1), re.S)
            assert _number(cells[0]) == r["delivered"] and _number(cells[1]) == r["opened"]
            assert _number(cells[2]) == round(100 * r["open_rate"], 1)
            if r["open_p"] is not None:
                assert float(cells[5]) == r["open_p"]
        # The verdict, from a z-test run here on the counts.
        control, *others = rows
        tests = {
            o["variant"]: two_proportion_z(
                control["opened"], control["delivered"], o["opened"], o["delivered"]
            )
            for o in others
        }
        better = [v for v, z in tests.items() if z and z.p_value < alpha and z.z > 0]
        worse = [v for v, z in tests.items() if z and z.p_value < alpha and z.z < 0]
        outcome = re.search(r'data-outcome="(\w+)"(?: data-winner="([^"]*)")?', block.group(1))
        assert outcome
        if better:
            best = max(
                better, key=lambda v: next(o["open_rate"] for o in others if o["variant"] == v)
            )
            assert outcome.groups() == ("winner", best)
        elif others and len(worse) == len(others):
            assert outcome.groups() == ("winner", control["variant"])
        else:
            assert outcome.groups() == ("not_significant", None)
        assert verdict(rows) == (outcome.group(1), outcome.group(2))
    assert "winner: B" in page  # the generator's B variant opens at 32% against 20%


def test_verdict_names_the_control_when_every_variant_loses() -> None:
    def row(variant: str, rate: float, z: float | None, significant: bool | None) -> dict[str, Any]:
        return {"variant": variant, "open_rate": rate, "open_z": z, "significant": significant}

    assert verdict([row("A", 0.3, None, None), row("B", 0.1, -3.0, True)]) == ("winner", "A")
    assert verdict([row("A", 0.3, None, None), row("B", 0.2, -1.0, False)]) == (
        "not_significant",
        None,
    )
    assert verdict(
        [row("A", 0.1, None, None), row("B", 0.3, 3.0, True), row("C", 0.4, 4.0, True)]
    ) == (
        "winner",
        "C",
    )
    assert verdict([row("A", 0.2, None, None)]) == ("not_significant", None)


def test_campaigns_are_the_service(pages: dict[str, str], expected: Expected) -> None:
    rows = _rows(pages["campaigns"], "campaigns-table")
    records = expected.campaigns.records()
    assert len(rows) == len(records)
    for (attrs, cells), r in zip(rows, records, strict=True):
        assert (_attr(attrs, "data-touch"), _attr(attrs, "data-source")) == (
            r["touch"],
            r["utm_source"],
        )
        assert _number(cells[3]) == r["leads"] and _number(cells[6]) == r["deals"]
        assert _number(cells[7]) == r["won"]


def test_marketer_downloads_the_report_as_csv_and_it_is_audited(
    sign_in: Callable[[str], SignedIn], console_shop: Settings, expected: Expected
) -> None:
    marketer = sign_in("marketer")
    page = marketer.get("/console/analytics/rfm")
    assert re.findall(r'<a class="download-csv[^"]*" id="download-([\w-]+)"', page.text) == [
        "rfm",
        "rfm-grid",
    ]
    answer = marketer.get("/console/analytics/rfm.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    table = list(csv.reader(io.StringIO(answer.content.decode("utf-8-sig"))))
    assert table[0] == list(expected.rfm.columns)
    assert table[1:] == [["" if v is None else str(v) for v in row] for row in expected.rfm.rows]
    everyone = marketer.get("/console/analytics/next-purchase.csv")
    lines = list(csv.reader(io.StringIO(everyone.content.decode("utf-8-sig"))))
    assert len(lines) == 1 + len(expected.next_purchase.rows)
    mine = [
        e
        for e in audit.entries(console_shop.data_dir, action="analytics")
        if e.actor == "console:mika-marketer"
    ]
    targets = [(e.action, e.target, e.details.get("rows")) for e in mine]
    assert ("analytics.download", "analytics:rfm", len(expected.rfm.rows)) in targets
    assert (
        "analytics.download",
        "analytics:next-purchase",
        len(expected.next_purchase.rows),
    ) in targets


def test_viewer_reads_but_cannot_download(viewer: SignedIn, pages: dict[str, str]) -> None:
    assert 'class="download-csv' not in pages["rfm"] and 'id="download-note"' in pages["rfm"]
    for name in (
        "rfm",
        "cohorts",
        "ltv",
        "sequences",
        "sequence-gaps",
        "next-purchase",
        "email-ab",
    ):
        answer = viewer.get(f"/console/analytics/{name}.csv")
        assert answer.status_code == 403, name
        assert "text/csv" not in answer.headers["content-type"]


def test_signed_out_is_sent_to_sign_in(console_url: str) -> None:
    import httpx  # noqa: PLC0415

    with httpx.Client(base_url=console_url, follow_redirects=False) as anonymous:
        for path in ("/console/analytics", "/console/analytics/rfm", "/console/analytics/rfm.csv"):
            answer = anonymous.get(path)
            assert answer.status_code == 303 and "/console/login" in answer.headers["location"]


def test_both_languages_render(viewer: SignedIn) -> None:
    index = viewer.get("/console/analytics", headers={"Accept-Language": "ja"})
    assert "分析" in index.text
    for name, word in [("rfm", "セグメント"), ("cohorts", "コホート"), ("ltv", "LTV"),
                       ("sequences", "購買パターン"), ("next-purchase", "次回購入"),
                       ("email-ab", "開封率"), ("campaigns", "受注")]:  # fmt: skip
        answer = viewer.get(f"/console/analytics/{name}", headers={"Accept-Language": "ja"})
        assert answer.status_code == 200, name
        assert '<html lang="ja">' in answer.text and word in answer.text, name


def test_options_are_checked_and_passed_to_the_service(viewer: SignedIn) -> None:
    bad = viewer.get("/console/analytics/sequences?within_days=zero")
    assert bad.status_code == 400 and 'id="analytics-error"' in bad.text
    unknown = viewer.get("/console/analytics/cohorts?tz=Mars/Olympus")
    assert unknown.status_code == 400 and "Mars/Olympus" in unknown.text
    weekly = viewer.get("/console/analytics/cohorts?period=week")
    assert weekly.status_code == 200 and "--period week" in weekly.text
    only = viewer.get("/console/analytics/sequences?product=NO-SUCH-PRODUCT")
    assert only.status_code == 200 and 'id="sequence-gaps"' not in only.text


def test_a_result_is_kept_until_the_data_changes(viewer: SignedIn) -> None:
    viewer.get("/console/analytics/email-ab?alpha=0.01")
    again = viewer.get("/console/analytics/email-ab?alpha=0.01")
    assert 'desc="hit"' in again.headers["server-timing"]
