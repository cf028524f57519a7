"""``cdp tokens`` and the read API of a real ``cdp serve`` process, as an operator uses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from tests.factories import at_days as _at
from tests.factories import raw_identify, raw_order, raw_page
from tests.loopback import start_cdp_serve

pytestmark = pytest.mark.e2e


def run(data_dir: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(data_dir), *args])


def cli(data_dir: Path, *args: str) -> Any:
    result = run(data_dir, "--json", *args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_tokens_add_list_revoke(tmp_path: Path) -> None:
    created = cli(tmp_path, "tokens", "add", "crm", "--scope", "profiles:read")
    assert created["token"].startswith("rt_") and created["scopes"] == ["profiles:read"]
    stored = (tmp_path / "tokens.json").read_text()
    assert created["token"] not in stored
    assert oct((tmp_path / "tokens.json").stat().st_mode & 0o777) == "0o600"
    both = cli(
        tmp_path, "tokens", "add", "bi", "--scope", "segments:read", "--scope", "profiles:read"
    )
    assert both["scopes"] == ["profiles:read", "segments:read"]
    listed = cli(tmp_path, "tokens", "list")
    assert [(t["name"], t["active"]) for t in listed] == [("crm", True), ("bi", True)]
    assert "token" not in str(listed[0].keys() - {"name"})
    cli(tmp_path, "tokens", "revoke", "crm")
    assert [t["active"] for t in cli(tmp_path, "tokens", "list")] == [False, True]
    for args, message in (
        (("tokens", "add", "x", "--scope", "profiles:write"), "unknown scope 'profiles:write'"),
        (("tokens", "add", "x"), "needs at least one --scope"),
        (("tokens", "add", "bi", "--scope", "profiles:read"), "exists already"),
        (("tokens", "add", "Bad Name", "--scope", "profiles:read"), "must be 1-63 lower-case"),
        (("tokens", "revoke", "nobody"), "no read token named 'nobody'"),
    ):
        result = run(tmp_path, *args)
        assert result.exit_code == 2 and message in result.output, result.output
    assert "crm" in run(tmp_path, "tokens", "list").output


def test_serve_answers_lookups_like_cdp_profile_and_honours_revocation(tmp_path: Path) -> None:
    events = [
        raw_page("/", anonymous_id="anon-1", at=_at(1)),
        raw_identify(anonymous_id="anon-1", traits={"email": "Hanako@Shop.jp"}, at=_at(2)),
        raw_identify(
            user_id="u-1", traits={"email": "hanako@shop.jp", "phone": "090-1234-5678"}, at=_at(3)
        ),
        raw_order("o-1", 1200, user_id="u-1", at=_at(4)),
    ]
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(orjson.dumps(e) for e in events))
    assert run(tmp_path, "ingest", str(source)).exit_code == 0
    token = cli(tmp_path, "tokens", "add", "crm", "--scope", "profiles:read")["token"]
    log = tmp_path / "serve.log"
    server = start_cdp_serve(tmp_path, log_path=log)
    url = server.url
    headers = {"authorization": f"Bearer {token}"}
    try:
        answers = {
            text: httpx.get(f"{url}/v1/profiles/{text}", headers=headers, timeout=10)
            for text in ("email:HANAKO%40shop.jp", "phone:%2B819012345678", "anonymous_id:anon-1")
        }
        assert all(a.status_code == 200 for a in answers.values()), answers
        bodies = [a.json() for a in answers.values()]
        assert len({b["customer_id"] for b in bodies}) == 1
        run(tmp_path, "tokens", "revoke", "crm")  # while the server runs
        refused = httpx.get(f"{url}/v1/profiles/user_id:u-1", headers=headers, timeout=10)
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]
    finally:
        server.stop()
    profile = cli(tmp_path, "profile", "email:hanako@shop.jp")
    api = {k: v for k, v in bodies[0].items() if k not in {"segments", "freshness"}}
    assert api == profile
    audit = [line for line in log.read_text().splitlines() if " audit " in line]
    assert len(audit) == 4 and "token=crm" in audit[0] and "status=401" in audit[-1]
    assert not any("hanako" in line.lower() or "8190" in line for line in audit)
