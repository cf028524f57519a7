"""``cdp serve``, ``cdp sources`` and ``cdp deadletter`` as an operator uses them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.config import Settings
from cdp.errors import AuthError
from cdp.runtime.engine import Engine
from cdp.services import deadletters
from cdp.services.sources import SourceRegistry
from tests.loopback import start_cdp_serve
from tests.unit.test_webhooks_orders import ORDER

pytestmark = pytest.mark.e2e


def cli(data_dir: Path, *args: str) -> dict:  # type: ignore[type-arg]
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), "--json", *args])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)  # type: ignore[no-any-return]


def test_sources_add_list_rotate_revoke(tmp_path: Path) -> None:
    created = cli(tmp_path, "sources", "add", "shop-web")
    assert created["write_key"].startswith("wk_")
    assert created["write_key"] not in (tmp_path / "sources.json").read_text()
    listed = cli(tmp_path, "sources", "list")
    assert [(s["name"], s["active"]) for s in listed] == [("shop-web", True)]
    rotated = cli(tmp_path, "sources", "rotate", "shop-web")
    registry = SourceRegistry(tmp_path)
    assert registry.authenticate(rotated["write_key"]) == "shop-web"
    with pytest.raises(AuthError):
        registry.authenticate(created["write_key"])  # the old key is refused
    assert "source.rotate" in {e["action"] for e in cli(tmp_path, "audit")}
    cli(tmp_path, "sources", "revoke", "shop-web")
    assert cli(tmp_path, "sources", "list")[0]["active"] is False
    revoked = CliRunner().invoke(
        app, ["--data-dir", str(tmp_path), "sources", "rotate", "shop-web"]
    )
    assert revoked.exit_code != 0 and "was revoked" in revoked.output
    twice = CliRunner().invoke(app, ["--data-dir", str(tmp_path), "sources", "add", "BAD NAME"])
    assert twice.exit_code == 2 and "must be 1-63 lower-case" in twice.output


def test_deadletter_list_and_retry(tmp_path: Path) -> None:
    settings = Settings(tmp_path)
    good = {"batch": [{"type": "page", "messageId": "m-1", "anonymousId": "a"}]}
    bad = {"batch": [{"type": "page", "messageId": "m-2"}]}
    with Engine.open(settings) as engine:
        for body in (good, bad):
            deadletters.add(
                engine.con,
                received_at=datetime(2026, 5, 1, tzinfo=UTC),
                source="web",
                endpoint="batch",
                reason="was rejected",
                body=orjson.dumps(body),
            )
    assert [d["id"] for d in cli(tmp_path, "deadletter", "list")] == [1, 2]
    report = cli(tmp_path, "deadletter", "retry")
    assert report == {"retried": 1, "events": 1, "still_failing": 1}
    pending = cli(tmp_path, "deadletter", "list")
    assert [d["id"] for d in pending] == [2]
    assert "needs userId or anonymousId" in pending[0]["reason"]
    assert cli(tmp_path, "status")["events"] == 1
    assert len(cli(tmp_path, "deadletter", "list", "--all")) == 2


def test_serve_accepts_events_and_shuts_down_cleanly(tmp_path: Path) -> None:
    key = cli(tmp_path, "sources", "add", "web")["write_key"]
    server = start_cdp_serve(tmp_path)
    try:
        url = server.url
        batch = {
            "batch": [
                {
                    "type": "identify",
                    "messageId": f"m-{i}",
                    "userId": f"u-{i}",
                    "traits": {"email": f"user{i}@shop.jp"},
                }
                for i in range(25)
            ]
        }
        answer = httpx.post(f"{url}/v1/batch", json=batch, auth=(key, ""), timeout=10)
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    assert cli(tmp_path, "status")["events"] == 25
    profile = cli(tmp_path, "profile", "email:user7@shop.jp")
    assert "user_id:u-7" in profile["identifiers"]


def test_deadletter_retry_re_maps_webhook_bodies(tmp_path: Path) -> None:
    settings = Settings(tmp_path)
    with Engine.open(settings) as engine:
        deadletters.add(
            engine.con,
            received_at=datetime(2026, 5, 1, tzinfo=UTC),
            source="erp",
            endpoint="webhook:orders",
            reason="was unmappable",
            body=orjson.dumps(ORDER),
        )
        deadletters.add(
            engine.con,
            received_at=datetime(2026, 5, 1, tzinfo=UTC),
            source="web",
            endpoint="form:contact",
            reason="no identity",
            body=b"email=a%40b.jp",
        )
    report = cli(tmp_path, "deadletter", "retry")
    assert report["retried"] == 1 and report["events"] >= 1 and report["still_failing"] == 1
    [pending] = cli(tmp_path, "deadletter", "list")
    assert pending["endpoint"] == "form:contact" and "cannot be re-run" in pending["reason"]
