"""The audit log: a hash chain over real day files, concurrent writers, the
``cdp audit`` command and the CLI commands that record (tokens, sources, export).

The read API's lines are checked over HTTP in test_read_api.py and, with a real
``cdp serve`` subprocess, in test_no_pii_in_logs.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.config import Settings
from cdp.services.privacy import audit, files
from tests.fakes.audience import SEGMENT, Shop

pytestmark = pytest.mark.integration


def cdp(settings: Settings, *args: str, status: int = 0) -> Any:
    result = CliRunner().invoke(app, ["--data-dir", str(settings.data_dir), *args])
    assert result.exit_code == status, result.output
    return result


def day_files(data_dir: Path) -> list[Path]:
    return sorted(audit.directory(data_dir).glob("*.jsonl"))


def test_the_chain_verifies_and_any_edit_breaks_it(tmp_path: Path) -> None:
    for n in range(4):
        audit.record(tmp_path, "cli:ops", "token.add", f"token:t{n}", {"n": n})
    log = audit.AuditLog(tmp_path)
    log.record("crm", "profile.lookup", log.subject("email:a@b.jp"), {"status": 200})
    log.close()
    whole = audit.verify(tmp_path)
    assert whole.ok and whole.lines == 5 and whole.files == 1
    [path] = day_files(tmp_path)
    assert files.mode_of(path) == 0o600
    original = path.read_bytes()
    lines = original.splitlines(keepends=True)

    path.write_bytes(original.replace(b"token:t1", b"token:tX"))  # an edited line
    assert [p.split(":")[1] for p in audit.verify(tmp_path).problems] == ["3"]
    path.write_bytes(b"".join(lines[:2] + lines[3:]))  # a removed line
    assert [p.split(":")[1] for p in audit.verify(tmp_path).problems] == ["3"]
    path.write_bytes(b"".join([lines[1], lines[0], *lines[2:]]))  # reordered
    assert len(audit.verify(tmp_path).problems) == 3
    path.write_bytes(original)
    assert audit.verify(tmp_path) == whole


def test_the_chain_runs_across_day_files_and_a_lost_day_is_seen(tmp_path: Path) -> None:
    audit.record(tmp_path, "cli:ops", "source.add", "source:web")
    [first] = day_files(tmp_path)
    old = first.rename(first.with_name("2020-01-01.jsonl"))
    audit.record(tmp_path, "cli:ops", "source.revoke", "source:web")
    assert [p.name for p in day_files(tmp_path)] == ["2020-01-01.jsonl", first.name]
    assert audit.verify(tmp_path).ok
    assert [e.action for e in audit.entries(tmp_path)] == ["source.add", "source.revoke"]
    old.unlink()
    [problem] = audit.verify(tmp_path).problems
    assert problem.startswith(f"{first.name}:1: chain broken")


def test_a_torn_line_is_reported_once_and_appends_go_on(tmp_path: Path) -> None:
    audit.record(tmp_path, "cli:ops", "token.add", "token:a")
    [path] = day_files(tmp_path)
    with path.open("ab") as f:
        f.write(b'{"at": "2026-01-')  # a crash in the middle of a write
    audit.record(tmp_path, "cli:ops", "token.add", "token:b")
    [problem] = audit.verify(tmp_path).problems
    assert problem.startswith(f"{path.name}:2: not an audit line")
    assert [e.target for e in audit.entries(tmp_path)] == ["token:a", "token:b"]


def test_concurrent_writers_keep_one_chain_and_each_ones_order(tmp_path: Path) -> None:
    log = audit.AuditLog(tmp_path, interval=0.005)

    def buffered(name: str) -> None:
        for n in range(150):
            log.record(name, "profile.lookup", "email:?", {"n": n})

    def durable() -> None:
        for n in range(40):
            audit.record(tmp_path, "cli:ops", "token.add", "token:x", {"n": n})

    threads = [threading.Thread(target=buffered, args=(f"t{i}",)) for i in range(3)]
    threads.append(threading.Thread(target=durable))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    result = audit.verify(tmp_path)
    assert result.ok and result.lines == 3 * 150 + 40
    found = audit.entries(tmp_path)
    for actor in ("t0", "t1", "t2", "cli:ops"):
        assert [e.details["n"] for e in found if e.actor == actor] == list(
            range(40 if actor == "cli:ops" else 150)
        )


def test_filters_since_action_and_limit(tmp_path: Path) -> None:
    now = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert audit.since_of("7d", now) == now - timedelta(days=7)
    assert audit.since_of("90m", now) == now - timedelta(minutes=90)
    assert audit.since_of("2026-03-01") == datetime(2026, 3, 1, tzinfo=UTC)
    assert audit.since_of("2026-03-01T09:00:00+09:00") == datetime(2026, 3, 1, tzinfo=UTC)
    with pytest.raises(ValueError, match="duration"):
        audit.since_of("last week")
    for action in ("token.add", "segment.read", "token.revoke", "export"):
        audit.record(tmp_path, "cli:ops", action, "x")
    assert [e.action for e in audit.entries(tmp_path, action="token")] == [
        "token.add",
        "token.revoke",
    ]
    assert [e.action for e in audit.entries(tmp_path, limit=2)] == ["token.revoke", "export"]
    assert audit.entries(tmp_path, since=datetime.now(UTC) + timedelta(minutes=1)) == []


def test_a_subject_is_a_peppered_token_of_the_normalised_identifier(tmp_path: Path) -> None:
    secret = files.pepper(tmp_path)
    one = audit.subject(secret, "email:Hanako.Y@Example.JP")
    assert one == audit.subject(secret, "email:hanako.y@example.jp")
    assert one == f"email:{files.token(secret, 'email:hanako.y@example.jp')}"
    assert "hanako" not in one.lower()
    assert audit.subject(secret, "cus_42") == f"customer:{files.token(secret, 'customer:cus_42')}"
    assert audit.subject(secret, "phone:not a phone 090") == "phone:?"
    assert audit.subject(secret, "who knows what@x") == "?"
    assert one != audit.subject(files.pepper(tmp_path / "other"), "email:hanako.y@example.jp")


def test_token_and_source_changes_and_exports_are_recorded(
    settings: Settings, tmp_path: Path
) -> None:
    secret = orjson.loads(
        cdp(settings, "--json", "tokens", "add", "crm", "--scope", "profiles:read").stdout
    )["token"]
    key = orjson.loads(cdp(settings, "--json", "sources", "add", "web").stdout)["write_key"]
    cdp(settings, "sources", "origins", "web", "--add", "https://shop.example.jp")
    cdp(settings, "sources", "revoke", "web")
    cdp(settings, "tokens", "revoke", "crm")
    Shop(settings).add(3)
    out = tmp_path / "audience.csv"
    cdp(settings, "export", SEGMENT, "--to", "meta_csv", "--out", str(out))

    found = orjson.loads(cdp(settings, "--json", "audit", "--since", "1h").stdout)
    assert [(e["action"], e["target"]) for e in found] == [
        ("token.add", "token:crm"),
        ("source.add", "source:web"),
        ("source.origins", "source:web"),
        ("source.revoke", "source:web"),
        ("token.revoke", "token:crm"),
        ("export", f"segment:{SEGMENT}"),
    ]
    assert {e["actor"] for e in found} == {audit.cli_actor()}
    assert audit.cli_actor().startswith("cli:")
    assert found[0]["details"] == {"scopes": ["profiles:read"]}
    assert found[-1]["details"]["destination"] == "meta_csv"
    assert found[-1]["details"]["exported"] == 3
    written = b"".join(p.read_bytes() for p in day_files(settings.data_dir))
    assert secret.encode() not in written and key.encode() not in written  # never a secret

    table = cdp(settings, "audit", "--action", "source").stdout
    assert "source.origins" in table and "token.add" not in table
    assert "intact" in cdp(settings, "audit", "--verify").stdout
    [path] = day_files(settings.data_dir)
    path.write_bytes(path.read_bytes().replace(b"token:crm", b"token:crn", 1))
    broken = orjson.loads(cdp(settings, "--json", "audit", "--verify", status=1).stdout)
    assert not broken["ok"] and broken["lines"] == 6 and len(broken["problems"]) == 1
