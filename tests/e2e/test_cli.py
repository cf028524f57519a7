"""The ``cdp`` command line, driven as a person would (typer's CliRunner)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from tests.factories import raw_identify, raw_order, raw_page

pytestmark = pytest.mark.e2e


def cdp(data_dir: Path, *args: str) -> Any:
    result = CliRunner().invoke(app, ["--data-dir", str(data_dir), *args])
    return result


def as_json(data_dir: Path, *args: str) -> Any:
    result = cdp(data_dir, "--json", *args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    result = cdp(data_dir, "demo", "--fresh", "--customers", "150")
    assert result.exit_code == 0, result.output
    assert "rebuilt state is identical" in result.output
    return data_dir


def test_demo_shows_every_job(demo_dir: Path) -> None:
    summary = as_json(demo_dir, "demo", "--customers", "150")  # re-run: nothing new stored
    assert summary["ingest"]["accepted"] == 0
    assert summary["ingest"]["duplicates"] == summary["events"]
    assert summary["replay"]["verified"] is True
    assert summary["customers"] > 100
    assert set(summary["segments"]) >= {"hot_leads", "lapsed_repeaters", "a_buyers_without_b"}
    assert summary["lookup"]["profile"]["email"]
    assert Path(summary["export"]["file"]).exists()


def test_profile_lookup_by_any_identifier(demo_dir: Path) -> None:
    row = as_json(
        demo_dir,
        "sql",
        "SELECT email, customer_id FROM profiles "
        "WHERE email IS NOT NULL AND line_user_id IS NOT NULL LIMIT 1",
    )[0]
    by_email = as_json(demo_dir, "profile", f"email:{row['email'].upper()}")
    assert by_email["customer_id"] == row["customer_id"]
    line_id = next(i for i in by_email["identifiers"] if i.startswith("line:"))
    assert as_json(demo_dir, "profile", line_id)["customer_id"] == row["customer_id"]
    text = cdp(demo_dir, "profile", f"email:{row['email']}")
    assert text.exit_code == 0
    assert row["customer_id"] in text.output and "stage" in text.output


def test_unknown_profile_is_a_clear_error(demo_dir: Path) -> None:
    result = cdp(demo_dir, "profile", "email:nobody@nowhere.jp")
    assert result.exit_code == 2
    assert "no customer has identifier 'email:nobody@nowhere.jp'" in result.output


def test_segment_list_and_run(demo_dir: Path) -> None:
    names = {s["name"] for s in as_json(demo_dir, "segment", "list")}
    assert "lapsed_repeaters" in names
    run = as_json(demo_dir, "segment", "run", "lapsed_repeaters", "--param", "lapsed_days=30")
    assert run["params"]["lapsed_days"] == 30
    assert run["count"] >= len(run["members"])
    missing = cdp(demo_dir, "segment", "run", "nope")
    assert missing.exit_code == 2 and "known: " in missing.output


def test_export_writes_consenting_members_only(demo_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audience.csv"
    summary = as_json(
        demo_dir,
        "export",
        "lapsed_repeaters",
        "--format",
        "csv",
        "--out",
        str(out),
        "--param",
        "lapsed_days=30",
    )
    with out.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == summary["rows"] == summary["members"] - summary["excluded_without_consent"]
    consenting = {
        r["customer_id"]
        for r in as_json(demo_dir, "sql", "SELECT customer_id FROM profiles WHERE consent_ads")
    }
    assert {r["customer_id"] for r in rows} <= consenting
    bad = cdp(demo_dir, "export", "lapsed_repeaters", "--format", "xml", "--out", str(out))
    assert bad.exit_code != 0 and "not supported" in bad.output


def test_sql_is_read_only(demo_dir: Path) -> None:
    result = cdp(demo_dir, "sql", "DROP TABLE event_log")
    assert result.exit_code == 2
    assert "read-only" in result.output
    assert as_json(demo_dir, "sql", "SELECT count(*) AS n FROM event_log")[0]["n"] > 0


def test_replay_verify_and_as_of(demo_dir: Path) -> None:
    report = as_json(demo_dir, "replay", "--verify")
    assert report["verified"] is True and report["differences"] == []
    as_of = as_json(demo_dir, "replay", "--as-of", "2026-03-01")
    assert 0 < as_of["events"] < report["events"]
    status = as_json(demo_dir, "status")
    assert status["projected_to_offset"] == status["events"]


def test_ingest_reports_bad_lines_and_keeps_good_ones(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    good = [
        raw_page("/", anonymous_id="a1"),
        raw_identify(user_id="u1", traits={"email": "a@b.jp"}),
        raw_order("o1", 100, user_id="u1"),
    ]
    lines = [
        orjson.dumps(good[0]),
        b"{not json",
        orjson.dumps(good[1]),
        orjson.dumps({**good[2], "userId": None}),
        orjson.dumps(good[2]),
    ]
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")
    first = cdp(data_dir, "ingest", str(source))
    assert first.exit_code == 1
    assert "events.jsonl:2" in first.output and "not valid JSON" in first.output
    assert "events.jsonl:4" in first.output and "needs userId or anonymousId" in first.output
    again = as_json_any(data_dir, "ingest", str(source))
    assert again["accepted"] == 0 and again["duplicates"] == 3 and again["rejected"] == 2
    assert as_json(data_dir, "status")["events"] == 3


def as_json_any(data_dir: Path, *args: str) -> Any:
    result = cdp(data_dir, "--json", *args)
    return orjson.loads(result.stdout)


def test_missing_data_is_a_clear_error(tmp_path: Path) -> None:
    result = cdp(tmp_path / "empty", "segment", "run", "hot_leads")
    assert result.exit_code == 2
    assert "run `cdp ingest` or `cdp demo` first" in result.output
    missing = cdp(tmp_path / "d", "ingest", str(tmp_path / "nope.jsonl"))
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_generate_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first = as_json(tmp_path, "generate", str(a), "--customers", "20", "--seed", "7")
    as_json(tmp_path, "generate", str(b), "--customers", "20", "--seed", "7")
    assert a.read_bytes() == b.read_bytes()
    assert first["events"] == len(a.read_bytes().splitlines())
