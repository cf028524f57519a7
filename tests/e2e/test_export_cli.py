"""``cdp export --to DESTINATION`` end to end on a generated dataset.

The expected contents are computed independently: the consenting members come
from ``cdp sql`` over ``profiles`` and each platform's normal form is re-derived
here from its documentation, then hashed with ``hashlib``.
"""

from __future__ import annotations

import csv
import hashlib
import unicodedata
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.services.query import AUDIENCE_COLUMNS

pytestmark = pytest.mark.e2e
SEGMENT = ("lapsed_repeaters", "--param", "lapsed_days=30")


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cdp(data_dir: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(data_dir), *args])


def as_json(data_dir: Path, *args: str) -> Any:
    result = cdp(data_dir, "--json", *args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("export") / "data"
    result = cdp(data_dir, "demo", "--fresh", "--customers", "150")
    assert result.exit_code == 0, result.output
    return data_dir


@pytest.fixture(scope="module")
def members(demo_dir: Path) -> list[dict[str, Any]]:
    ids = as_json(demo_dir, "segment", "run", *SEGMENT, "--limit", "100000")["members"]
    assert ids, "the demo must put someone in the segment"
    quoted = ", ".join(f"'{i}'" for i in ids)
    return list(
        as_json(
            demo_dir,
            "sql",
            "SELECT customer_id, email, phone, first_name, last_name, postal_code, "
            # The LINE id a message set, else the smallest the identity graph holds
            # (docs/destinations.md: a friend who followed and never wrote).
            "consent_ads, consent_line, coalesce(line_user_id, (SELECT min(i.value) FROM "
            "identities i WHERE i.customer_id = p.customer_id AND i.kind = 'line')) "
            f"AS line_user_id FROM profiles p WHERE customer_id IN ({quoted})",
        )
    )


def digits_phone(raw: str) -> str:
    # Japanese numbers in the demo: national 0-prefixed, or +81 (full width sometimes).
    text = "".join(c for c in unicodedata.normalize("NFKC", raw) if c.isdigit() or c == "+")
    return text[1:] if text.startswith("+") else "81" + text.lstrip("0")


def google_email(raw: str) -> str:
    local, _, domain = raw.strip().lower().rpartition("@")
    return (
        f"{local.replace('.', '') if domain in ('gmail.com', 'googlemail.com') else local}@{domain}"
    )


def export(demo_dir: Path, tmp_path: Path, to: str, *extra: str) -> tuple[Path, Any]:
    out = tmp_path / f"{to}.out"
    summary = as_json(
        demo_dir, "export", SEGMENT[0], "--to", to, "--out", str(out), *SEGMENT[1:], *extra
    )
    return out, summary


def read_csv(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def test_consent_filter_and_plain_csv(
    demo_dir: Path, tmp_path: Path, members: list[dict[str, Any]]
) -> None:
    out, summary = export(demo_dir, tmp_path, "csv")
    rows = read_csv(out)
    assert rows[0] == list(AUDIENCE_COLUMNS)
    exported = {r[0] for r in rows[1:]}
    assert exported == {m["customer_id"] for m in members if m["consent_ads"]}
    assert (
        summary["excluded_without_consent"] == sum(1 for m in members if not m["consent_ads"]) > 0
    )
    # --format stays an alias of --to for compatibility.
    alias = as_json(
        demo_dir,
        "export",
        SEGMENT[0],
        "--format",
        "csv",
        "--out",
        str(tmp_path / "a.csv"),
        *SEGMENT[1:],
    )
    assert alias["rows"] == summary["rows"]


def test_google_ads_csv(demo_dir: Path, tmp_path: Path, members: list[dict[str, Any]]) -> None:
    out, summary = export(demo_dir, tmp_path, "google_ads_csv")
    rows = read_csv(out)
    assert rows[0] == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
    consenting = [m for m in members if m["consent_ads"]]
    assert {r[0] for r in rows[1:]} == {
        sha(google_email(m["email"])) for m in consenting if m["email"]
    }
    assert {r[1] for r in rows[1:]} - {""} == {
        sha("+" + digits_phone(m["phone"])) for m in consenting if m["phone"]
    }
    assert {r[3] for r in rows[1:]} - {""} == {
        sha(m["last_name"]) for m in consenting if m["last_name"]
    }
    assert {r[5] for r in rows[1:]} - {""} == {
        m["postal_code"].replace("-", "") for m in consenting if m["postal_code"]
    }
    refused = {
        sha(google_email(m["email"])) for m in members if not m["consent_ads"] and m["email"]
    }
    assert refused and not refused & {r[0] for r in rows[1:]}
    assert summary["rows"] == len(rows) - 1


def test_meta_json_and_csv(demo_dir: Path, tmp_path: Path, members: list[dict[str, Any]]) -> None:
    out, summary = export(demo_dir, tmp_path, "meta_json")
    batches = orjson.loads(out.read_bytes())
    assert len(batches) == 1 and batches[0]["schema"][0] == "EMAIL"
    data = batches[0]["data"]
    consenting = [m for m in members if m["consent_ads"]]
    assert {r[-1] for r in data} == {m["customer_id"] for m in consenting}
    by_id = {m["customer_id"]: m for m in consenting}
    for r in data:
        m = by_id[r[-1]]
        assert r[0] == (sha(m["email"].strip().lower()) if m["email"] else "")
        assert r[1] == (sha(digits_phone(m["phone"])) if m["phone"] else "")
        assert r[3] == (sha(m["last_name"]) if m["last_name"] else "")
    out, _ = export(demo_dir, tmp_path, "meta_csv")
    rows = read_csv(out)
    assert rows[0] == ["email", "phone", "fn", "ln", "gen", "doby", "ct", "st", "zip", "country"]
    assert sorted(rows[1:]) == sorted(r[:-1] for r in data)
    assert summary["rows"] == len(data)


def test_line_audience_uses_line_consent(
    demo_dir: Path, tmp_path: Path, members: list[dict[str, Any]]
) -> None:
    out, summary = export(demo_dir, tmp_path, "line_audience")
    assert summary["consent"] == "line"
    ids = out.read_text(encoding="utf-8").splitlines()
    assert set(ids) == {
        m["line_user_id"] for m in members if m["consent_line"] and m["line_user_id"]
    }
    out, _ = export(demo_dir, tmp_path, "line_ads", "--option", "identifier=phone")
    assert set(out.read_text(encoding="utf-8").splitlines()) == {
        sha(digits_phone(m["phone"])) for m in members if m["consent_ads"] and m["phone"]
    }


def test_x_tiktok_and_parquet(
    demo_dir: Path, tmp_path: Path, members: list[dict[str, Any]]
) -> None:
    consenting = [m for m in members if m["consent_ads"]]
    out, _ = export(demo_dir, tmp_path, "x_csv")
    assert set(out.read_text(encoding="utf-8").splitlines()) == {
        sha(m["email"].strip().lower()) for m in consenting if m["email"]
    }
    out, _ = export(demo_dir, tmp_path, "tiktok_csv")
    rows = read_csv(out)
    assert rows[0] == ["Email_SHA256", "Phone_SHA256"]
    assert {r[0] for r in rows[1:]} - {""} == {
        sha(m["email"].strip().lower()) for m in consenting if m["email"]
    }
    out, summary = export(demo_dir, tmp_path, "parquet")
    table = pq.read_table(out)
    assert table.schema.names == list(AUDIENCE_COLUMNS)
    assert set(table.column("customer_id").to_pylist()) == {m["customer_id"] for m in consenting}
    assert summary["rows"] == table.num_rows


def test_list_destinations_and_errors(demo_dir: Path, tmp_path: Path) -> None:
    listed = {d["name"] for d in as_json(demo_dir, "export", "--list-destinations")}
    assert {
        "google_ads_csv",
        "meta_json",
        "line_audience",
        "x_csv",
        "tiktok_csv",
        "parquet",
    } <= listed
    unknown = cdp(demo_dir, "export", SEGMENT[0], "--to", "myspace", "--out", str(tmp_path / "x"))
    assert unknown.exit_code == 2 and "'myspace' is not supported" in unknown.output
    bad_option = cdp(
        demo_dir,
        "export",
        SEGMENT[0],
        "--to",
        "x_csv",
        "--option",
        "identifier=phone",
        "--out",
        str(tmp_path / "x"),
    )
    assert bad_option.exit_code == 2 and "use one of email, user_id" in bad_option.output
    no_out = cdp(demo_dir, "export", SEGMENT[0], "--to", "meta_csv")
    assert no_out.exit_code == 2 and "--out" in no_out.output
