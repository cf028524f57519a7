"""``cdp segment …`` driven as a person would: every command, with and without --json."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.demo.generate import GenerateConfig, generate

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).parents[2] / "docs" / "segments" / "examples"
REPEATERS = """
name: tokyo_or_osaka_repeaters
description: Repeat buyers in Tokyo or Osaka.
params: {min_orders: 2}
rules:
  all:
    - trait: {field: region, op: in, value: [東京都, 大阪府]}
    - metric: {field: orders_count, op: gte, value: $min_orders}
"""


def cdp(data_dir: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(data_dir), *args])


def as_json(data_dir: Path, *args: str) -> Any:
    result = cdp(data_dir, "--json", *args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def sql(data_dir: Path, query: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = as_json(data_dir, "sql", query)
    return rows


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("segcli")
    events = root / "events.jsonl"
    generate(events, GenerateConfig(seed=3, customers=200))
    result = cdp(root / "data", "ingest", str(events))
    assert result.exit_code == 0, result.output
    return root / "data"


@pytest.fixture
def definition(tmp_path: Path) -> Path:
    path = tmp_path / "repeaters.yaml"
    path.write_text(REPEATERS, encoding="utf-8")
    return path


def expected(data_dir: Path, min_orders: int = 2) -> list[str]:
    rows = sql(
        data_dir,
        "SELECT customer_id FROM profiles WHERE region IN ('東京都', '大阪府') "
        f"AND orders_count >= {min_orders} ORDER BY customer_id",
    )
    return [r["customer_id"] for r in rows]


def test_validate_save_list_explain_run_delete(
    data_dir: Path, definition: Path, tmp_path: Path
) -> None:
    valid = as_json(data_dir, "segment", "validate", str(definition))
    assert valid["valid"] is True and valid["kind"] == "saved" and valid["checked_against_data"]
    assert "valid" in cdp(data_dir, "segment", "validate", str(definition)).output

    saved = as_json(data_dir, "segment", "save", str(definition))
    assert Path(saved["path"]).exists()
    again = cdp(data_dir, "segment", "save", str(definition))
    assert again.exit_code == 2 and "--replace" in again.output
    assert cdp(data_dir, "segment", "save", "--replace", str(definition)).exit_code == 0

    listed = {i["name"]: i for i in as_json(data_dir, "segment", "list")}
    assert listed["tokyo_or_osaka_repeaters"]["kind"] == "saved"
    assert listed["hot_leads"]["kind"] == "builtin"
    assert "saved" in cdp(data_dir, "segment", "list").output

    explained = as_json(
        data_dir, "segment", "explain", "tokyo_or_osaka_repeaters", "--param", "min_orders=3"
    )
    assert "東京都" not in explained["sql"] and "$p0" in explained["sql"]
    assert 3 in explained["values"].values() and explained["params"] == {"min_orders": 3}
    shown = cdp(data_dir, "segment", "explain", str(definition))
    assert shown.exit_code == 0 and "SELECT p.customer_id" in shown.output
    builtin = as_json(data_dir, "segment", "explain", "lapsed_repeaters")
    assert builtin["kind"] == "builtin" and builtin["values"] == {"lapsed_days": 90}

    members = expected(data_dir)
    assert members, "the data set has repeaters in Tokyo or Osaka"
    ran = as_json(data_dir, "segment", "run", "tokyo_or_osaka_repeaters", "--limit", "2")
    assert ran["count"] == len(members) and ran["members"] == members[:2]
    every = as_json(data_dir, "segment", "run", str(definition), "--all")
    assert every["members"] == members
    three = as_json(
        data_dir, "segment", "run", "tokyo_or_osaka_repeaters", "--param", "min_orders=3", "--all"
    )
    assert three["members"] == expected(data_dir, 3)
    out = tmp_path / "members.csv"
    text = cdp(
        data_dir, "segment", "run", "tokyo_or_osaka_repeaters", "--out", str(out), "--limit", "0"
    )
    assert text.exit_code == 0 and f"members: {len(members)}" in text.output
    with out.open(encoding="utf-8") as handle:
        assert [r["customer_id"] for r in csv.DictReader(handle)] == members

    broken = data_dir / "segments" / "broken.yaml"
    broken.write_text(
        "name: broken\nrules: {trait: {field: nope, op: eq, value: 1}}\n", encoding="utf-8"
    )
    listed = {i["name"]: i for i in as_json(data_dir, "segment", "list")}
    assert (
        listed["broken"]["kind"] == "invalid"
        and "rules.trait.field" in listed["broken"]["description"]
    )
    assert listed["tokyo_or_osaka_repeaters"]["kind"] == "saved"
    assert as_json(data_dir, "segment", "delete", "broken") == {"deleted": "broken"}

    assert as_json(data_dir, "segment", "delete", "tokyo_or_osaka_repeaters") == {
        "deleted": "tokyo_or_osaka_repeaters"
    }
    gone = cdp(data_dir, "segment", "run", "tokyo_or_osaka_repeaters")
    assert gone.exit_code == 2 and "no segment named" in gone.output
    assert cdp(data_dir, "segment", "delete", "hot_leads").exit_code == 2


def test_errors_point_at_the_rule(data_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\nrules:\n  all:\n    - trait: {field: region, op: eq, value: x}\n"
        "    - event: {name: Order Completed, within_days: 0}\n",
        encoding="utf-8",
    )
    result = cdp(data_dir, "segment", "validate", str(bad))
    assert result.exit_code == 2
    assert "rules.all[1].event.within_days: must be > 0" in result.output
    sneaky = tmp_path / "sneaky.yaml"
    sneaky.write_text(
        "name: sneaky\nsql: SELECT * FROM read_csv('/etc/passwd')\n", encoding="utf-8"
    )
    refused = cdp(data_dir, "segment", "save", str(sneaky))
    assert refused.exit_code == 2 and "read_csv" in refused.output
    missing = cdp(data_dir, "segment", "run", "--param", "nope=1", "hot_leads")
    assert missing.exit_code == 2 and "no parameter 'nope'" in missing.output
    no_file = cdp(data_dir, "segment", "validate", str(tmp_path / "absent.yaml"))
    assert no_file.exit_code == 2 and "cannot read" in no_file.output


def test_record_history_and_refresh(data_dir: Path, definition: Path) -> None:
    as_json(data_dir, "segment", "save", "--replace", str(definition))
    members = expected(data_dir)
    first = as_json(data_dir, "segment", "run", "tokyo_or_osaka_repeaters", "--record")
    assert first["recorded"]["entered"] == len(members) and first["recorded"]["left"] == 0
    narrower = expected(data_dir, 3)
    second = as_json(
        data_dir,
        "segment",
        "run",
        "tokyo_or_osaka_repeaters",
        "--record",
        "--param",
        "min_orders=3",
    )
    assert second["recorded"]["entered"] == 0
    assert second["recorded"]["left"] == len(members) - len(narrower)

    shown = as_json(data_dir, "segment", "history", "tokyo_or_osaka_repeaters")
    assert [(r["members"], r["entered"], r["left"]) for r in shown["runs"]] == [
        (len(members), len(members), 0),
        (len(narrower), 0, len(members) - len(narrower)),
    ]
    assert shown["runs"][1]["params"] == {"min_orders": 3} and shown["runs"][0]["log_as_of"]
    leaver = sorted(set(members) - set(narrower))[0]
    spells = as_json(
        data_dir, "segment", "history", "tokyo_or_osaka_repeaters", "--customer", leaver
    )
    assert [(s["entered_run"], s["left_run"]) for s in spells["spells"]] == [
        (shown["runs"][0]["run_id"], shown["runs"][1]["run_id"])
    ]
    text = cdp(data_dir, "segment", "history", "tokyo_or_osaka_repeaters", "--customer", leaver)
    assert text.exit_code == 0 and "runs of tokyo_or_osaka_repeaters" in text.output

    refreshed = as_json(data_dir, "segment", "refresh", "--all")
    names = [r["name"] for r in refreshed]
    assert "tokyo_or_osaka_repeaters" in names and "hot_leads" in names
    back = next(r for r in refreshed if r["name"] == "tokyo_or_osaka_repeaters")
    assert back["entered"] == len(members) - len(narrower) and back["left"] == 0
    assert cdp(data_dir, "segment", "refresh").exit_code == 2
    from_file = cdp(data_dir, "segment", "run", "--record", str(definition))
    assert from_file.exit_code == 2 and "save the file first" in from_file.output


def test_fields_lists_the_whitelist(data_dir: Path) -> None:
    fields = {f["field"]: f["kind"] for f in as_json(data_dir, "segment", "fields")}
    assert fields["region"] == "text" and fields["rfm_segment"] == "text"
    assert fields["revenue"] == "number" and fields["products_bought"] == "list"
    assert fields["consent_ads"] == "bool" and fields["birthday"] == "date"


@pytest.mark.parametrize("path", sorted(EXAMPLES.iterdir()), ids=lambda p: p.name)
def test_every_example_runs_from_the_command_line(data_dir: Path, path: Path) -> None:
    result = as_json(data_dir, "segment", "run", str(path), "--limit", "0")
    assert result["count"] >= 0 and result["members"] == []
