"""The Segments screen over real HTTP: counts and members are `cdp segment run`'s.

The expected members come from the CLI (``cdp --json segment run FILE``, its
own read connection), gathered before the server opens the shop (in one
process DuckDB allows no read-only connection beside the writer). The
console's live count, segment page, member pages and CSV must agree with them.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app as cli
from cdp.config import Settings
from cdp.services.privacy import audit
from tests.integration.console.conftest import SignedIn
from tests.integration.console.shop import a_not_b, cli_read, most_ordered

pytestmark = pytest.mark.integration

NAME = "console_a_not_b"  # this module's own saved segment


def definition(a: str, b: str, name: str = NAME) -> str:
    """Bought A, not B within 30 days (30 days ago at least), consented to ads."""
    return a_not_b(a, b, name, f"bought {a}, not {b} within 30 days, consented to ads")


@dataclass(frozen=True)
class Expected:
    """What `cdp segment run` says, before the server opens the shop."""

    text: str
    members: list[str]
    lapsed: list[str]


def cli_members(settings: Settings, target: str) -> list[str]:
    """Members by ``cdp --json segment run TARGET`` (every member)."""
    answer = CliRunner().invoke(
        cli, ["--data-dir", str(settings.data_dir), "--json", "segment", "run", target]
    )
    assert answer.exit_code == 0, answer.output
    members: list[str] = orjson.loads(answer.stdout)["members"]
    return members


@pytest.fixture(scope="module", autouse=True)
def expected(console_shop: Settings, tmp_path_factory: pytest.TempPathFactory) -> Expected:
    """The definition over the shop's two most ordered products, run by the CLI."""
    with cli_read(console_shop) as con:
        a, b = most_ordered(con)
    text = definition(a, b)
    path = tmp_path_factory.mktemp("segments") / f"{NAME}.yaml"
    path.write_text(text, encoding="utf-8")
    members = cli_members(console_shop, str(path))
    assert members, "the generated shop should have members for this definition"
    return Expected(text, members, cli_members(console_shop, "lapsed_repeaters"))


def preview(client: SignedIn, text: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
    answer = client.post(
        "/console/segments/preview",
        json={"definition": text},
        headers={"X-CSRF-Token": client.csrf if token is None else token},
    )
    if answer.headers["content-type"].startswith("application/json"):
        return answer.status_code, orjson.loads(answer.content)
    return answer.status_code, {}


def test_list_shows_builtins_and_saved_in_both_languages(
    sign_in: Callable[[str], SignedIn],
) -> None:
    viewer = sign_in("viewer")
    page = viewer.get("/console/segments")
    assert page.status_code == 200
    for name in ("hot_leads", "lapsed_repeaters", "a_buyers_without_b"):
        assert f'id="segment-{name}"' in page.text
    assert "Repeat buyers" in page.text  # the description
    ja = viewer.get("/console/segments", headers={"Accept-Language": "ja"})
    assert "前回記録時の人数" in ja.text and '<html lang="ja">' in ja.text
    for path in ("/console/segments/new", "/console/segments/hot_leads"):
        answer = viewer.get(path, headers={"Accept-Language": "ja"})
        assert answer.status_code == 200 and "セグメント" in answer.text, path
    viewer.cookies.clear()
    assert viewer.get("/console/segments").status_code == 303  # no session: sign in first


def test_live_count_equals_cdp_segment_run(
    sign_in: Callable[[str], SignedIn], expected: Expected
) -> None:
    viewer = sign_in("viewer")
    status, answer = preview(viewer, expected.text)
    assert status == 200, answer
    assert answer["count"] == len(expected.members)
    assert answer["sql"].startswith("WITH") and "ASOF LEFT JOIN" in answer["sql"]
    assert answer["definition"]["rules"]["all"][1]["trait"]["field"] == "consent_ads"
    # Without a name it is previewed all the same.
    status, nameless = preview(viewer, expected.text.split("\n", 1)[1])
    assert status == 200 and nameless["count"] == len(expected.members)


def test_preview_names_where_a_definition_is_wrong_and_needs_the_token(
    sign_in: Callable[[str], SignedIn], expected: Expected
) -> None:
    viewer = sign_in("viewer")
    status, answer = preview(viewer, expected.text.replace("consent_ads", "consent_adz"))
    assert status == 422
    assert answer["problems"][0]["path"] == "rules.all[1].trait.field"
    assert "did you mean consent_ads" in answer["error"]
    status, answer = preview(viewer, expected.text.replace("within_days: 30", "within_days: 0"))
    assert status == 422 and "rules.all[0].sequence.within_days" in answer["error"]
    status, answer = preview(viewer, "rules: [unclosed")
    assert status == 422 and "not valid YAML" in answer["error"]
    status, answer = preview(viewer, expected.text.replace("Order Completed", "Order Complete"))
    assert status == 200 and answer["count"] == 0
    assert answer["warnings"] == [
        "event 'Order Complete' never occurs in the data; did you mean 'Order Completed'?"
    ]
    assert preview(viewer, expected.text, token="forged")[0] == 403
    assert preview(viewer, expected.text, token="")[0] == 403


def test_viewer_sees_no_save_and_is_refused_save_and_csv(
    sign_in: Callable[[str], SignedIn], expected: Expected
) -> None:
    viewer = sign_in("viewer")
    builder = viewer.get("/console/segments/new")
    assert builder.status_code == 200
    for element in ('id="definition"', 'id="live-count"', 'id="sql"', 'id="segment-name"'):
        assert element in builder.text
    assert 'id="save"' not in builder.text
    refused = viewer.post(
        "/console/segments",
        data={"csrf": viewer.csrf, "name": "viewer_try", "definition": expected.text},
    )
    assert refused.status_code == 403
    assert viewer.get("/console/segments/lapsed_repeaters.csv").status_code == 403
    page = viewer.get("/console/segments/lapsed_repeaters")
    assert 'id="download-csv"' not in page.text and 'id="record"' not in page.text


def test_marketer_saves_pages_downloads_and_records(
    sign_in: Callable[[str], SignedIn], expected: Expected, console_shop: Settings
) -> None:
    marketer = sign_in("marketer")
    assert 'id="save"' in marketer.get("/console/segments/new").text
    forged = marketer.post(
        "/console/segments", data={"csrf": "forged", "name": NAME, "definition": expected.text}
    )
    assert forged.status_code == 403
    bad = marketer.post(
        "/console/segments",
        data={"csrf": marketer.csrf, "name": NAME, "definition": "name: x\nrules: {all: []}"},
    )
    assert bad.status_code == 422 and "rules.all" in bad.text
    saved = marketer.post(
        "/console/segments",
        data={"csrf": marketer.csrf, "name": NAME, "definition": expected.text, "replace": "1"},
    )
    assert saved.status_code == 303, saved.text
    assert saved.headers["location"] == f"/console/segments/{NAME}?saved=1"
    assert (console_shop.data_dir / "segments" / f"{NAME}.yaml").read_text() == expected.text
    again = marketer.post(
        "/console/segments",
        data={"csrf": marketer.csrf, "name": NAME, "definition": expected.text},
    )
    assert again.status_code == 422 and "exists" in again.text
    builder_name = marketer.post(
        "/console/segments",
        data={"csrf": marketer.csrf, "name": "new", "definition": expected.text},
    )
    assert builder_name.status_code == 422 and "taken by the console" in builder_name.text
    assert not (console_shop.data_dir / "segments" / "new.yaml").exists()

    page = marketer.get(f"/console/segments/{NAME}")
    assert page.status_code == 200
    assert f'data-count="{len(expected.members)}"' in page.text
    assert NAME in marketer.get("/console/segments").text
    assert 'id="no-history"' in page.text
    recorded = marketer.post(f"/console/segments/{NAME}/record", data={"csrf": marketer.csrf})
    assert recorded.status_code == 303
    page = marketer.get(f"/console/segments/{NAME}")
    assert 'id="history"' in page.text and "<svg" in page.text
    listed = marketer.get("/console/segments").text
    row = re.search(rf'id="segment-{NAME}".*?</tr>', listed, re.S)
    assert row and f">{len(expected.members):,}<" in row.group(0)

    download = marketer.get(f"/console/segments/{NAME}.csv")
    assert download.status_code == 200
    assert download.headers["content-disposition"] == f'attachment; filename="{NAME}.csv"'
    rows = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))
    assert rows[0][0] == "customer_id"
    assert [r[0] for r in rows[1:]] == sorted(expected.members)
    wanted = [f'"action":"{a}","target":"{NAME}"' for a in ("save", "record", "export_csv")]
    wanted = [w.replace('"action":"', '"action":"segment.') for w in wanted]
    log = audit_text(console_shop.data_dir)
    deadline = time.monotonic() + 10  # the audit log is written by its own thread
    while not all(w in log for w in wanted) and time.monotonic() < deadline:
        time.sleep(0.05)
        log = audit_text(console_shop.data_dir)
    assert all(w in log for w in wanted), log[-2000:]


def test_members_keyset_pages_walk_the_whole_segment(
    sign_in: Callable[[str], SignedIn], expected: Expected
) -> None:
    viewer = sign_in("viewer")
    seen: list[str] = []
    url = "/console/segments/lapsed_repeaters"
    pages = 0
    while url:
        page = viewer.get(url)
        assert page.status_code == 200
        body = page.text.split('id="members"', 1)[1].split("</table>", 1)[0]
        seen.extend(re.findall(r'<th scope="row"><a href="/console/customers/([^"]+)">', body))
        following = re.search(r'href="([^"]+)" id="members-next"', page.text)
        url = "/console/segments/lapsed_repeaters" + following.group(1) if following else ""
        pages += 1
    assert seen == sorted(expected.lapsed)  # in customer-id order
    assert pages == max(1, -(-len(expected.lapsed) // 50))
    if pages > 1:  # and back
        last = seen[-1]
        back = viewer.get(f"/console/segments/lapsed_repeaters?before={last}")
        assert re.findall(r'href="/console/customers/([^"]+)"', back.text)[-1] == seen[-2]


def test_unknown_segment_is_404(sign_in: Callable[[str], SignedIn]) -> None:
    viewer = sign_in("viewer")
    assert viewer.get("/console/segments/no_such_segment").status_code == 404
    assert viewer.get("/console/segments/hot_leads/edit").status_code == 404  # built-in


def audit_text(data_dir: Path) -> str:
    """Every audit line so far."""
    folder = audit.directory(data_dir)
    return "".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.jsonl")))
