"""``cdp analytics ...``: every command as JSON and as CSV, on a small generated shop."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("analytics-cli") / "data"
    events = iter_events(GenerateConfig(seed=5, customers=400))
    with Engine.open(Settings(path)) as engine:
        assert ingest(((str(i), e) for i, e in enumerate(events)), engine).rejected == 0
    return path


def cdp(data_dir: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(data_dir), *args])


COMMANDS = [
    (["rfm"], "rfm_segment"),
    (["rfm", "--customers", "--limit", "5"], "rfm_segment"),
    (["rfm", "--grid"], "rfm_segment"),
    (["ltv", "--period", "quarter"], "ltv"),
    (["retention", "--period", "month", "--tz", "UTC"], "retention"),
    (["next-purchase", "--limit", "10"], "predicted_at"),
    (["next-purchase", "--backtest"], "mae_days"),
    (["sequences", "--within-days", "90", "--min-support", "0.005"], "lift"),
    (["sequences", "--product", "TEA-STARTER", "--then", "MATCHA-BULK-500"], "days_from"),
    (["email-ab"], "open_rate"),
    (["funnel"], "conversion"),
]


@pytest.mark.parametrize(("args", "column"), COMMANDS, ids=[" ".join(a) for a, _ in COMMANDS])
def test_json_and_csv_agree(data_dir: Path, tmp_path: Path, args: list[str], column: str) -> None:
    out = tmp_path / "out.csv"
    result = cdp(data_dir, "--json", "analytics", *args, "--csv", str(out))
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert column in report["columns"]
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == report["columns"]
    assert len(rows) - 1 == len(report["rows"]) > 0
    first = report["rows"][0]
    for name, cell in zip(rows[0], rows[1], strict=True):
        value = first[name]
        assert cell == ("" if value is None else str(value).replace("T", " ")) or cell == str(
            value
        ), (name, cell, value)


def test_tables_for_people(data_dir: Path) -> None:
    for args, _ in COMMANDS:
        result = cdp(data_dir, "analytics", *args)
        assert result.exit_code == 0, result.output
        assert "as_of" in result.output or "campaigns" in result.output


def test_limits_and_filters(data_dir: Path) -> None:
    rows = orjson.loads(
        cdp(data_dir, "--json", "analytics", "rfm", "--customers", "--limit", "3").stdout
    )["rows"]
    assert len(rows) == 3
    overdue = orjson.loads(
        cdp(data_dir, "--json", "analytics", "next-purchase", "--overdue").stdout
    )
    assert all(row["overdue"] for row in overdue["rows"])
    campaigns = orjson.loads(cdp(data_dir, "--json", "analytics", "email-ab").stdout)["rows"]
    one = campaigns[0]["campaign_id"]
    only = orjson.loads(cdp(data_dir, "--json", "analytics", "email-ab", "--campaign", one).stdout)
    assert {row["campaign_id"] for row in only["rows"]} == {one}


def test_bad_options_exit_2_with_a_clear_message(data_dir: Path) -> None:
    result = cdp(data_dir, "analytics", "ltv", "--period", "fortnight")
    assert result.exit_code == 2
    assert "fortnight" in result.output
    result = cdp(data_dir, "analytics", "email-ab", "--campaign", "nope")
    assert result.exit_code == 2 and "nope" in result.output
    result = cdp(data_dir, "analytics", "sequences", "--then", "MATCHA-BULK-500")
    assert result.exit_code == 2 and "--product" in result.output
    result = cdp(data_dir.parent / "empty", "analytics", "funnel")
    assert result.exit_code == 2 and "no data" in result.output
