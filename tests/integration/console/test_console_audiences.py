"""The Audiences screen over real HTTP, against a loopback fake of a webhook
destination (tests/fakes): the destinations table, "sync now" in the
background, a failing destination, audience file downloads; roles and CSRF.

The numbers are compared with ``cdp destinations status`` and ``cdp export``
(the CLI, run beside the server), and with what the fake received.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app as cli
from cdp.config import Settings
from cdp.services.privacy import audit, provisions
from connectors.destinations.push.config import FILE_NAME
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.webhook import FakeWebhook
from tests.integration.console.conftest import SignedIn
from tests.loopback import free_port, serve_app

pytestmark = pytest.mark.integration

PAGE = "/console/audiences"
SEGMENT = "new_customers"
HOOK, DOWN, CRM = "console-hook", "console-down", "console-crm"


def cdp_json(data_dir: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli, ["--data-dir", str(data_dir), "--json", *args])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def cdp_beside(data_dir: Path, *args: str) -> Any:
    """The CLI in a process of its own, as a person runs it beside ``cdp serve``
    (it reads through the server, which owns the directory)."""
    done = subprocess.run(
        [sys.executable, "-m", "cdp.cli", "--data-dir", str(data_dir), "--json", *args],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return orjson.loads(done.stdout)


@dataclass
class Fakes:
    """The loopback fakes the destinations point at."""

    hook: FakeWebhook
    crm: FakeHubSpot


@pytest.fixture(scope="module")
def fakes(console_shop: Settings) -> Iterator[Fakes]:
    """A fake webhook receiver, configured as ``console-hook``; ``console-down``
    points at a port nothing listens on (one attempt, so it fails at once);
    ``console-crm`` is a fake HubSpot (an SFA push of ``hot_leads``)."""
    fake = FakeWebhook()
    served = serve_app(fake.asgi(), log_level="critical")
    url = next(served)
    crm = FakeHubSpot()
    crm_served = serve_app(crm.asgi(), log_level="critical")
    crm_url = next(crm_served)
    os.environ["CONSOLE_TEST_HOOK_SECRET"] = fake.secret
    os.environ["CONSOLE_TEST_HS_TOKEN"] = crm.token
    path = console_shop.data_dir / FILE_NAME
    before = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(
        before
        + f'\n[{HOOK}]\nplatform = "webhook"\nurl = "{url}/hooks/audience"\n'
        + 'secret = "env:CONSOLE_TEST_HOOK_SECRET"\n'
        + f'\n[{DOWN}]\nplatform = "webhook"\nurl = "http://127.0.0.1:{free_port()}/hooks"\n'
        + 'secret = "env:CONSOLE_TEST_HOOK_SECRET"\nmax_attempts = 1\ntimeout = 2.0\n'
        + f'\n[{CRM}]\nplatform = "hubspot"\nbase_url = "{crm_url}"\n'
        + 'access_token = "env:CONSOLE_TEST_HS_TOKEN"\n',
        encoding="utf-8",
    )
    yield Fakes(fake, crm)
    path.write_text(before, encoding="utf-8")
    for server in (served, crm_served):
        for _ in server:
            pass


def sync_now(client: SignedIn, destination: str, segment: str = SEGMENT) -> dict[str, Any]:
    """Press "sync now" and wait for the background job to end; its JSON."""
    answer = client.post(
        f"{PAGE}/sync",
        data={"csrf": client.csrf, "destination": destination, "segment": segment},
    )
    assert answer.status_code == 303, answer.text
    job_id = re.search(r"job=([0-9a-f]+)", answer.headers["location"])
    assert job_id
    deadline = time.monotonic() + 120
    while True:
        job = client.get(f"{PAGE}/jobs/{job_id.group(1)}").json()
        if job["state"] in ("done", "failed"):
            return dict(job)
        assert time.monotonic() < deadline, job
        time.sleep(0.1)


def row(page: str, destination: str, segment: str = SEGMENT) -> str:
    """The destinations table's row of one audience."""
    match = re.search(
        rf'<tr data-destination="{destination}" data-segment="{segment}">(.*?)</tr>', page, re.S
    )
    assert match, page
    return match.group(1)


def cell(html: str, name: str) -> str:
    match = re.search(rf'class="[^"]*\b{name}\b[^"]*">(.*?)</', html, re.S)
    assert match, (name, html)
    return re.sub(r"\s+", " ", match.group(1)).strip()


def test_a_viewer_sees_the_destinations_but_cannot_sync_or_export(
    fakes: Fakes, sign_in: Any
) -> None:
    viewer = sign_in("viewer")
    page = viewer.get(PAGE)
    assert page.status_code == 200
    assert '<table id="destinations">' in page.text
    assert f'data-destination="{HOOK}"' in page.text
    assert "sync-now" not in page.text and 'id="export"' not in page.text
    jobs = page.text.count('data-job="')
    refused = viewer.post(
        f"{PAGE}/sync", data={"csrf": viewer.csrf, "destination": HOOK, "segment": SEGMENT}
    )
    assert refused.status_code == 403
    refused = viewer.post(
        f"{PAGE}/export", data={"csrf": viewer.csrf, "segment": SEGMENT, "format": "csv"}
    )
    assert refused.status_code == 403
    assert viewer.get(PAGE).text.count('data-job="') == jobs


def test_sync_and_export_need_the_forms_csrf_token(fakes: Fakes, sign_in: Any) -> None:
    marketer = sign_in("marketer")
    jobs = marketer.get(PAGE).text.count('data-job="')
    for csrf in ("", "forged"):
        answer = marketer.post(
            f"{PAGE}/sync", data={"csrf": csrf, "destination": HOOK, "segment": SEGMENT}
        )
        assert answer.status_code == 403
        answer = marketer.post(
            f"{PAGE}/export", data={"csrf": csrf, "segment": SEGMENT, "format": "csv"}
        )
        assert answer.status_code == 403
    assert marketer.get(PAGE).text.count('data-job="') == jobs


def test_sync_now_pushes_in_the_background_and_the_numbers_match_the_cli(
    console_shop: Settings, fakes: Fakes, sign_in: Any
) -> None:
    marketer = sign_in("marketer")
    page = marketer.get(PAGE).text
    assert 'class="sync-now"' in page
    job = sync_now(marketer, HOOK)
    assert job["state"] == "done", job
    assert job["status"] == "synced" and job["adds"] > 0
    assert len(fakes.hook.members) == job["adds"] == job["members"]
    (status,) = cdp_json(console_shop.data_dir, "destinations", "status", HOOK, SEGMENT)
    assert status["synced_members"] == len(fakes.hook.members)
    shown = row(marketer.get(PAGE).text, HOOK)
    assert cell(shown, "synced-members") == f"{status['synced_members']:,}"
    assert cell(shown, "adds") == f"+{status['last_sync']['adds']:,}"
    assert cell(shown, "removes") == f"−{status['last_sync']['removes']:,}"
    # the APPI record and the audit line, as the CLI's sync writes them
    records = provisions.read(console_shop.data_dir)
    assert any(r.recipient == HOOK and len(r.people) == job["adds"] for r in records)
    lines = audit.entries(console_shop.data_dir, action="sync")
    assert any(
        e.actor == "console:mika-marketer"
        and e.target == f"segment:{SEGMENT}"
        and e.details.get("added") == job["adds"]
        for e in lines
    )
    assert f"sync segment:{SEGMENT}" in re.sub(r"\s+", " ", marketer.get(PAGE).text)
    # again: nothing changed, nothing sent
    again = sync_now(marketer, HOOK)
    assert again["status"] == "up to date" and again["adds"] == 0


def test_an_sfa_push_runs_from_its_row_before_it_ever_ran(
    console_shop: Settings, fakes: Fakes, sign_in: Any
) -> None:
    marketer = sign_in("marketer")
    shown = row(marketer.get(PAGE).text, CRM, "hot_leads")  # the SFA's own segment
    assert 'class="sync-now"' in shown
    job = sync_now(marketer, CRM, "hot_leads")
    assert job["state"] == "done", job
    (status,) = cdp_json(console_shop.data_dir, "destinations", "status", CRM, "hot_leads")
    contacts = fakes.crm.contacts
    assert status["synced_members"] == len(contacts) == job["members"]
    shown = row(marketer.get(PAGE).text, CRM, "hot_leads")
    assert cell(shown, "synced-members") == f"{status['synced_members']:,}"
    pushed = audit.entries(console_shop.data_dir, action="sfa.push")
    assert any(
        e.actor == "console:mika-marketer" and e.details["destination"] == CRM for e in pushed
    )


def test_a_failing_destination_shows_the_error_and_the_plan_left_half_way(
    console_shop: Settings, fakes: Fakes, sign_in: Any
) -> None:
    marketer = sign_in("marketer")
    job = sync_now(marketer, DOWN)
    assert job["state"] == "failed"
    assert "DestinationUnavailableError" in job["error"]
    page = marketer.get(PAGE).text
    shown = row(page, DOWN)
    assert "stopped half-way" in shown
    jobs = re.search(rf'<tr data-job="{job["id"]}" data-state="failed"(.*?)</tr>', page, re.S)
    assert jobs and "DestinationUnavailableError" in jobs.group(1)
    (status,) = cdp_json(console_shop.data_dir, "destinations", "status", DOWN, SEGMENT)
    assert status["pending"] and status["synced_members"] == 0
    failed = [
        e
        for e in audit.entries(console_shop.data_dir, action="sync")
        if e.details.get("destination") == DOWN
    ]
    assert failed and failed[-1].details["status"] == "failed"


def test_an_audience_file_downloads_as_cdp_export_writes_it(
    console_shop: Settings, fakes: Fakes, sign_in: Any, tmp_path: Path
) -> None:
    marketer = sign_in("marketer")
    answer = marketer.post(
        f"{PAGE}/export",
        data={
            "csrf": marketer.csrf,
            "segment": SEGMENT,
            "format": "csv",
            "recipient": "console-test-account",
        },
    )
    assert answer.status_code == 200, answer.text
    assert "attachment" in answer.headers["content-disposition"]
    assert f"{SEGMENT}-csv.csv" in answer.headers["content-disposition"]
    downloaded = list(csv.DictReader(io.StringIO(answer.text)))
    out = tmp_path / "cli.csv"
    summary = cdp_beside(console_shop.data_dir, "export", SEGMENT, "--to", "csv", "--out", str(out))
    with out.open(encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert downloaded == written
    assert len(downloaded) == summary["exported"] > 0
    recorded = [
        r for r in provisions.read(console_shop.data_dir) if r.recipient == "console-test-account"
    ]
    assert recorded and len(recorded[-1].people) == summary["exported"]
    assert recorded[-1].account.startswith("console-download:mika-marketer:")
    exports = [
        e
        for e in audit.entries(console_shop.data_dir, action="export")
        if e.actor == "console:mika-marketer"
    ]
    assert exports and exports[-1].details["exported"] == summary["exported"]
    # a bad option is refused with the destination's own reason, no file
    bad = marketer.post(
        f"{PAGE}/export",
        data={"csrf": marketer.csrf, "segment": SEGMENT, "format": "csv", "options": "x=y"},
    )
    assert bad.status_code == 400 and "has no option" in bad.text


def test_the_page_speaks_japanese_when_asked(fakes: Fakes, sign_in: Any) -> None:
    marketer = sign_in("marketer")
    page = marketer.get(PAGE, headers={"Accept-Language": "ja"})
    assert page.status_code == 200
    assert "連携先" in page.text and "今すぐ同期" in page.text
    assert '<table id="destinations">' in page.text
    assert not re.search(r"""(?:src|href|action)\s*=\s*["']?(?:https?:)?//""", page.text)
