"""``cdp sources add --origin``, ``cdp sources origins`` and ``sources list`` as an operator uses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app

pytestmark = pytest.mark.e2e


def run(data_dir: Path, *args: str, json: bool = True) -> Any:
    flags = ["--json"] if json else []
    return CliRunner().invoke(app, ["--data-dir", str(data_dir), *flags, *args])


def ok(data_dir: Path, *args: str) -> Any:
    result = run(data_dir, *args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def test_origins_are_given_changed_and_listed(tmp_path: Path) -> None:
    created = ok(
        tmp_path,
        "sources",
        "add",
        "shop-web",
        "--origin",
        "HTTPS://Shop.Example.jp/",
        "--origin",
        "http://localhost:3000",
    )
    assert created["origins"] == ["https://shop.example.jp", "http://localhost:3000"]
    changed = ok(
        tmp_path,
        "sources",
        "origins",
        "shop-web",
        "--add",
        "https://www.shop.example.jp",
        "--remove",
        "http://localhost:3000",
    )
    assert changed == {
        "name": "shop-web",
        "origins": ["https://shop.example.jp", "https://www.shop.example.jp"],
    }
    assert ok(tmp_path, "sources", "origins", "shop-web")["origins"] == changed["origins"]
    ok(tmp_path, "sources", "add", "server")
    listed = {s["name"]: s["origins"] for s in ok(tmp_path, "sources", "list")}
    assert listed == {"shop-web": changed["origins"], "server": []}
    shown = run(tmp_path, "sources", "list", json=False)
    assert shown.exit_code == 0 and "origins" in shown.stdout  # (cells wrap at 80 columns)
    # A revoked source keeps its origins on record (they allow nothing any more).
    ok(tmp_path, "sources", "revoke", "shop-web")
    assert ok(tmp_path, "sources", "list")[0]["origins"] == changed["origins"]


def test_a_wildcard_is_only_there_when_asked_for(tmp_path: Path) -> None:
    assert ok(tmp_path, "sources", "add", "landing")["origins"] == []
    assert ok(tmp_path, "sources", "origins", "landing", "--add", "*")["origins"] == ["*"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sources", "add", "web", "--origin", "shop.example.jp"), "scheme must be http or https"),
        (("sources", "origins", "web", "--add", "https://a.jp/path"), "must not have a path"),
        (("sources", "origins", "web", "--remove", "https://b.jp"), "does not allow origin"),
        (("sources", "origins", "nobody", "--add", "https://a.jp"), "no source named 'nobody'"),
    ],
)
def test_bad_origins_are_one_line_errors(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    ok(tmp_path, "sources", "add", "web", "--origin", "https://a.jp")
    result = run(tmp_path, *args, json=False)
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output
    # Nothing was half-applied.
    assert ok(tmp_path, "sources", "list")[0]["origins"] == ["https://a.jp"]


def test_a_sources_file_from_before_origins_still_loads(tmp_path: Path) -> None:
    old = {
        "sources": [
            {
                "name": "web",
                "key_hash": "0" * 64,
                "created_at": "2026-01-01T00:00:00+00:00",
                "revoked_at": None,
            }
        ]
    }
    (tmp_path / "sources.json").write_bytes(orjson.dumps(old))
    assert ok(tmp_path, "sources", "list")[0]["origins"] == []
    assert ok(tmp_path, "sources", "origins", "web", "--add", "https://a.jp")["origins"] == [
        "https://a.jp"
    ]
    saved = orjson.loads((tmp_path / "sources.json").read_bytes())["sources"][0]
    assert saved["key_hash"] == "0" * 64 and saved["origins"] == ["https://a.jp"]
