"""``cdp destinations list|check|status``, ``cdp sync`` and ``cdp export --to <push destination>``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.config import Settings
from connectors.destinations.push.journal import Journal
from tests.fakes.audience import SEGMENT, Shop
from tests.fakes.harness import Harness, running

pytestmark = pytest.mark.e2e


def cdp(data_dir: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(data_dir), *args])


def as_json(data_dir: Path, *args: str) -> Any:
    result = cdp(data_dir, "--json", *args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[tuple[Harness, Shop]]:
    settings = Settings(tmp_path / "data")
    shop = Shop(settings)
    with running("meta", settings.data_dir) as harness:
        harness.configure(backoff=0.01)
        yield harness, shop


def test_list_shows_destinations_and_whether_secrets_are_set(
    meta: tuple[Harness, Shop], monkeypatch: pytest.MonkeyPatch
) -> None:
    harness, _ = meta
    listed = as_json(harness.data_dir, "destinations", "list")
    assert listed == [
        {
            "name": "dest",
            "platform": "meta",
            "target": f"meta:{harness.fake.audience_id}",  # type: ignore[attr-defined]
            "consent": "ads",
            "secrets": "access_token: set",
            "segments": [],
        }
    ]
    monkeypatch.delenv("PUSH_TEST_META_TOKEN")
    text = cdp(harness.data_dir, "destinations", "list")
    assert text.exit_code == 0 and "MISSING" in text.output
    check = cdp(harness.data_dir, "destinations", "check", "dest")
    assert check.exit_code == 2
    assert "environment variable PUSH_TEST_META_TOKEN is not set" in check.output


def test_check_calls_the_platform_with_the_credentials(meta: tuple[Harness, Shop]) -> None:
    harness, _ = meta
    checked = as_json(harness.data_dir, "destinations", "check", "dest")
    assert checked["ok"] is True and harness.fake.audience_id in checked["detail"]  # type: ignore[attr-defined]
    harness.fake.token = "revoked"  # type: ignore[attr-defined]
    refused = cdp(harness.data_dir, "destinations", "check", "dest")
    assert refused.exit_code == 2
    assert "Invalid OAuth access token" in refused.output and "'dest'" in refused.output


def test_dry_run_then_sync_then_status(meta: tuple[Harness, Shop]) -> None:
    harness, shop = meta
    users = shop.add(3)
    ids = shop.customer_ids()
    dry = as_json(harness.data_dir, "sync", SEGMENT, "--to", "dest", "--dry-run")
    assert dry["status"] == "dry run" and dry["adds"] == 3
    assert sorted(dry["add_ids"]) == sorted(ids[u] for u in users)
    assert harness.fake.requests(contains="/users") == []  # a dry run sends nothing

    synced = as_json(harness.data_dir, "sync", SEGMENT, "--to", "dest")
    assert (synced["adds"], synced["removes"], synced["status"]) == (3, 0, "synced")
    assert harness.actual() == harness.expected(shop)

    shop.withdraw(users[:1])
    dry = as_json(harness.data_dir, "sync", SEGMENT, "--to", "dest", "--dry-run")
    assert dry["remove_ids"] == [ids[users[0]]] and dry["adds"] == 0
    text = cdp(harness.data_dir, "sync", SEGMENT, "--to", "dest")
    assert text.exit_code == 0, text.output
    assert "1 removed" in text.output and "synced" in text.output
    assert harness.actual() == harness.expected(shop)

    state = as_json(harness.data_dir, "destinations", "status", "dest")
    assert [s["segment"] for s in state] == [SEGMENT]
    assert state[0]["synced_members"] == 2 and state[0]["pending"] is None
    assert state[0]["last_sync"]["removes"] == 1
    shown = cdp(harness.data_dir, "destinations", "status", "dest")
    assert shown.exit_code == 0 and "new_cust" in shown.output and "none" in shown.output


def test_export_to_a_configured_destination_pushes(meta: tuple[Harness, Shop]) -> None:
    harness, shop = meta
    shop.add(2)
    pushed = as_json(harness.data_dir, "export", SEGMENT, "--to", "dest")
    assert pushed["adds"] == 2 and pushed["destination"] == "dest"
    assert harness.actual() == harness.expected(shop)
    wrong = cdp(harness.data_dir, "export", SEGMENT, "--to", "dest", "--out", "x.csv")
    assert wrong.exit_code == 2 and "push destination" in wrong.output


def test_unknown_destination_and_bad_config_are_clear(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    missing = cdp(data_dir, "sync", SEGMENT, "--to", "nowhere")
    assert missing.exit_code == 2 and "no destination named 'nowhere'" in missing.output
    (data_dir / "destinations.toml").write_text(
        '[g]\nplatform = "google_ads"\ncustomer_id = "12x"\nuser_list = "lists/1"\n'
        'developer_token = "t"\naccess_token = "a"\n'
    )
    broken = cdp(data_dir, "destinations", "list")
    assert broken.exit_code == 2
    assert "g.customer_id" in broken.output and "g.user_list" in broken.output
    (data_dir / "destinations.toml").write_text('[x]\nplatform = "myspace"\n')
    unknown = cdp(data_dir, "destinations", "list")
    assert unknown.exit_code == 2 and "x.platform must be one of" in unknown.output


def test_a_second_sync_of_the_same_audience_is_refused_while_one_runs(
    meta: tuple[Harness, Shop],
) -> None:
    harness, shop = meta
    shop.add(1)
    with Journal(harness.data_dir, "dest", SEGMENT).locked():
        busy = cdp(harness.data_dir, "sync", SEGMENT, "--to", "dest")
    assert busy.exit_code == 2 and "another sync" in busy.output
    assert os.path.exists(harness.data_dir / "sync" / "dest")
