"""Exports take LINE / X ids from the identity graph, accept a definition file,
and account for every member of the segment in their summary.

The shop below is small and hand-made so that each member's fate is known in
advance: the expected ids and counts are written out here, not derived from
the code under test.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from cdp.services.query import audience_of
from cdp.services.segment_lang.catalog import definition_entry, execute
from cdp.services.segment_lang.parse import parse
from connectors.destinations.push.audience_sync import status
from tests.factories import T0, raw_identify, raw_order, raw_track
from tests.fakes.harness import running

pytestmark = pytest.mark.integration

LINE_TRAIT = "U" + "a1" * 16  # LINE's form: U + 32 hex digits
LINE_MESSAGE = "U" + "b2" * 16
LINE_BOTH_PROFILE = "U" + "c3" * 16
LINE_BOTH_TRAIT = "U" + "0d" * 16  # sorts first, but the profile's own id wins

EVERYONE = """
name: everyone
description: Everyone who ordered at least $min yen.
params: {min: 1}
rules:
  metric: {field: revenue, op: gte, value: $min}
"""


def consent(user: str, at: Any, **purposes: bool) -> tuple[str, dict[str, Any]]:
    body = raw_track("Consent Updated", {"consents": purposes}, user_id=user, at=at)
    return f"{user}-consent", body


def message(user: str, at: Any, line_id: str) -> tuple[str, dict[str, Any]]:
    props = {"channel": "line", "channel_user_id": line_id, "text": "こんにちは"}
    return f"{user}-msg", raw_track("Message Received", props, user_id=user, at=at)


@pytest.fixture
def shop(settings: Settings) -> Settings:
    """Eight customers, each with one known fate in a LINE / X export."""
    at = T0
    raws: list[tuple[str, Any]] = []

    def customer(user: str, traits: dict[str, Any], *extra: tuple[str, dict[str, Any]]) -> None:
        nonlocal at
        at += timedelta(hours=1)
        traits = {"email": f"{user}@example.jp", **traits}
        raws.append((f"{user}-id", raw_identify(user_id=user, traits=traits, at=at)))
        raws.append((f"{user}-order", raw_order(f"o-{user}", 3000, user_id=user, at=at)))
        raws.extend(extra)

    # LINE and X ids known only from identify traits: exported all the same.
    customer(
        "trait",
        {"line_user_id": LINE_TRAIT, "x_user_id": "143567"},
        consent("trait", at, line=True, ads=True),
    )
    # LINE id from a LINE message (the profile column): exported as before.
    customer(
        "message",
        {},
        consent("message", at, line=True, ads=True),
        message("message", at, LINE_MESSAGE),
    )
    # Both: the id of the profile (the account that messaged) is the one exported.
    customer(
        "both",
        {"line_user_id": LINE_BOTH_TRAIT},
        consent("both", at, line=True, ads=True),
        message("both", at + timedelta(minutes=5), LINE_BOTH_PROFILE),
    )
    # Consenting, but no LINE id at all (and no X id).
    customer("no_id", {}, consent("no_id", at, line=True, ads=True))
    # Consenting, with a value that is not a LINE user id (and an X @handle).
    customer(
        "bad_id",
        {"line_user_id": "yamada_hanako", "x_user_id": "@hanako"},
        consent("bad_id", at, line=True, ads=True),
    )
    # LINE consent withdrawn, and never stated: left out for consent.
    customer("refused", {"line_user_id": "U" + "e4" * 16}, consent("refused", at, line=False))
    customer("silent", {"line_user_id": "U" + "f5" * 16})
    # A consent trait on identify does not count: only Consent Updated does.
    customer("trait_consent", {"consent_line": True, "line_user_id": "U" + "16" * 16})

    with Engine.open(settings) as engine:
        assert ingest(raws, engine).rejected == 0
        engine.checkpoint()
    return settings


def cdp(settings: Settings, *args: str) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(settings.data_dir), *args])


def export_json(settings: Settings, *args: str) -> dict[str, Any]:
    result = cdp(settings, "--json", "export", *args)
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = orjson.loads(result.stdout)
    # The numbers add up: every member is exported or left out for one reason.
    assert summary["members"] == summary["exported"] + sum(summary["excluded"].values())
    assert summary["excluded"]["no_consent"] == summary["excluded_without_consent"]
    assert summary["consenting"] == summary["members"] - summary["excluded_without_consent"]
    return summary


@pytest.fixture
def definition(tmp_path: Path) -> Path:
    path = tmp_path / "everyone.yaml"
    path.write_text(EVERYONE, encoding="utf-8")
    return path


def test_line_and_x_ids_from_identify_traits_reach_the_audience(shop: Settings) -> None:
    entry = definition_entry(parse(EVERYONE, "yaml"))
    con = Engine.open_read_only(shop)
    try:
        found = audience_of(con, execute(con, entry.name, entry.compile()), "line")
    finally:
        con.close()
    by_user = {
        row[found.columns.index("email")].split("@")[0]: (
            row[found.columns.index("line_user_id")],
            row[found.columns.index("x_user_id")],
        )
        for row in found.rows
    }
    assert by_user == {
        "trait": (LINE_TRAIT, "143567"),
        "message": (LINE_MESSAGE, None),
        "both": (LINE_BOTH_PROFILE, None),
        "no_id": (None, None),
        "bad_id": ("yamada_hanako", "@hanako"),
    }
    assert (found.members, found.excluded_without_consent, len(found.rows)) == (8, 3, 5)


def test_line_audience_from_a_definition_file_accounts_for_every_member(
    shop: Settings, definition: Path, tmp_path: Path
) -> None:
    out = tmp_path / "line.txt"
    summary = export_json(shop, str(definition), "--to", "line_audience", "--out", str(out))
    assert sorted(out.read_text(encoding="utf-8").splitlines()) == sorted(
        [LINE_TRAIT, LINE_MESSAGE, LINE_BOTH_PROFILE]
    )
    assert summary["segment"] == "everyone" and summary["consent"] == "line"
    assert (summary["members"], summary["exported"], summary["rows"]) == (8, 3, 3)
    assert summary["excluded"] == {
        "no_consent": 3,  # refused, silent, and the identify trait that is no consent
        "invalid_line_user_id": 1,
        "no_line_user_id": 1,
    }
    # The same accounting in words for a person.
    text = cdp(shop, "export", str(definition), "--to", "line_audience", "--out", str(out))
    assert text.exit_code == 0, text.output
    words = " ".join(text.stdout.split())
    assert "exported 3 of 8 members of everyone" in words
    assert "3 no line consent" in words
    assert "1 consenting but no LINE user id" in words
    assert "1 LINE user id not in LINE's form" in words


def test_x_user_ids_from_traits_and_the_reasons_for_the_rest(
    shop: Settings, definition: Path, tmp_path: Path
) -> None:
    out = tmp_path / "x.csv"
    summary = export_json(
        shop, str(definition), "--to", "x_csv", "--option", "identifier=user_id", "--out", str(out)
    )
    # X Ads "Custom Audiences User Data": user ids as plain integers, SHA-256.
    assert out.read_text(encoding="utf-8").splitlines() == [hashlib.sha256(b"143567").hexdigest()]
    assert summary["excluded"] == {"no_consent": 3, "invalid_x_user_id": 1, "no_x_user_id": 3}


def test_every_file_destination_adds_up(shop: Settings, definition: Path, tmp_path: Path) -> None:
    for name in ("csv", "parquet", "google_ads_csv", "google_ads_json", "meta_csv", "meta_json"):
        out = tmp_path / f"{name}.out"
        summary = export_json(shop, str(definition), "--to", name, "--out", str(out))
        # Everyone consenting to ads has an e-mail, so every format keeps them all.
        assert (summary["exported"], summary["excluded"]) == (5, {"no_consent": 3}), name
    for name, option in (("line_ads", "identifier=phone"), ("tiktok_csv", None)):
        out = tmp_path / f"{name}.out"
        extra = ["--option", option] if option else []
        summary = export_json(shop, str(definition), "--to", name, "--out", str(out), *extra)
        expected = {"no_consent": 3, "no_phone": 5} if name == "line_ads" else {"no_consent": 3}
        assert summary["excluded"] == expected, name
    everyone = export_json(
        shop,
        "--param",
        "min=1",
        str(definition),
        "--to",
        "csv",
        "--consent",
        "none",
        "--out",
        str(tmp_path / "all.csv"),
    )
    assert (everyone["members"], everyone["exported"], everyone["excluded"]) == (
        8,
        8,
        {"no_consent": 0},
    )


def test_a_missing_definition_file_is_one_clear_error(shop: Settings, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = cdp(shop, "export", str(missing), "--to", "csv", "--out", str(tmp_path / "x.csv"))
    assert result.exit_code == 2
    assert f"cannot read {missing}" in result.output
    assert not (tmp_path / "x.csv").exists()


def test_line_push_sync_sends_trait_ids_and_accounts_for_every_member(
    shop: Settings, definition: Path
) -> None:
    saved = cdp(shop, "segment", "save", str(definition))
    assert saved.exit_code == 0, saved.output
    with running("line", shop.data_dir) as harness:
        harness.configure()
        # A definition file has no sync state of its own: it must be saved first.
        refused = cdp(shop, "export", str(definition), "--to", harness.name)
        assert refused.exit_code == 2
        assert "save the file first" in " ".join(refused.output.split())
        result = cdp(shop, "--json", "sync", "everyone", "--to", harness.name)
        assert result.exit_code == 0, result.output
        report = orjson.loads(result.stdout)
        group = status(shop.data_dir, harness.name, "everyone")["platform_state"][
            "audience_group_id"
        ]
        assert harness.fake.members(group) == {LINE_TRAIT, LINE_MESSAGE, LINE_BOTH_PROFILE}
        again = cdp(shop, "sync", "everyone", "--to", harness.name)
        assert again.exit_code == 0, again.output
        words = " ".join(again.stdout.split())
        assert "3 members of 8 in the segment (left out: 3 no line consent," in words
        assert "1 consenting but no LINE user id" in words
    assert (report["members"], report["segment_members"]) == (3, 8)
    assert report["excluded"] == {
        "no_consent": 3,
        "invalid_line_user_id": 1,
        "no_line_user_id": 1,
    }
