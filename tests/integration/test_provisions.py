"""APPI provision records: written by every export, kept three years, redacted on erasure.

The records live in real files under a temporary data directory; exports run
through the real CLI over a real DuckDB file (``tests.fakes.audience.Shop``).
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.config import Settings
from cdp.services.privacy import files, provisions
from cdp.services.privacy.suppressions import SuppressionList
from tests.fakes.audience import SEGMENT, Shop, sha

pytestmark = pytest.mark.integration


def cdp(settings: Settings, *args: str) -> Any:
    result = CliRunner().invoke(app, ["--data-dir", str(settings.data_dir), *args])
    assert result.exit_code == 0, result.output
    return result


def provide(data_dir: Path, people: list[str], at: datetime, **fields: Any) -> provisions.Provision:
    values: dict[str, Any] = {
        "kind": "sync",
        "platform": "meta",
        "recipient": "meta-main",
        "account": "meta:123",
        "segment": "vip",
        "items": ["EMAIL", "PHONE"],
        "consent": "ads",
    }
    values.update(fields)
    return provisions.record(data_dir, customer_ids=people, now=at, **values)


def all_bytes(data_dir: Path) -> bytes:
    folder = provisions.folder(data_dir)
    return b"".join(p.read_bytes() for p in sorted(folder.glob("*.jsonl")))


def test_a_record_names_people_by_token_only_in_a_private_month_file(settings: Settings) -> None:
    data_dir = settings.data_dir
    at = datetime(2026, 5, 3, 9, 30, tzinfo=UTC)
    made = provide(data_dir, ["cust-1", "cust-2"], at, removed_ids=["cust-3"], reference="p1")
    path = provisions.folder(data_dir) / "2026-05.jsonl"
    assert files.mode_of(path) == 0o600
    raw = path.read_bytes()
    assert b"cust-1" not in raw and b"cust-3" not in raw  # never the customer id itself
    secret = files.pepper(data_dir)
    assert made.people == tuple(files.token(secret, f"customer:{c}") for c in ("cust-1", "cust-2"))
    stored = orjson.loads(raw)
    assert stored["at"] == "2026-05-03T09:30:00Z"
    assert (stored["platform"], stored["recipient"], stored["account"]) == (
        "meta",
        "meta-main",
        "meta:123",
    )
    assert stored["items"] == ["EMAIL", "PHONE"] and stored["consent"] == "ads"
    assert provisions.read(data_dir) == [made]


def test_since_and_provided_to_find_the_records(settings: Settings) -> None:
    data_dir = settings.data_dir
    old = provide(data_dir, ["a", "b"], datetime(2026, 1, 31, 23, 0, tzinfo=UTC))
    new = provide(data_dir, ["b"], datetime(2026, 2, 1, 0, 0, tzinfo=UTC), kind="export")
    withdrawn = provide(data_dir, [], datetime(2026, 3, 1, tzinfo=UTC), removed_ids=["a"])
    assert provisions.read(data_dir, datetime(2026, 2, 1, tzinfo=UTC)) == [new, withdrawn]
    assert provisions.provided_to(data_dir, "a") == [old, withdrawn]
    assert provisions.provided_to(data_dir, "b") == [old, new]
    assert provisions.provided_to(data_dir, "nobody") == []


def test_redact_replaces_the_erased_person_and_keeps_the_record(settings: Settings) -> None:
    data_dir = settings.data_dir
    provide(data_dir, ["gone", "stays"], datetime(2026, 4, 1, tzinfo=UTC))
    provide(data_dir, ["stays"], datetime(2026, 5, 1, tzinfo=UTC), removed_ids=["gone"])
    provide(data_dir, ["other"], datetime(2026, 6, 1, tzinfo=UTC))
    untouched = (provisions.folder(data_dir) / "2026-06.jsonl").stat().st_ino
    token = provisions.customer_token(files.pepper(data_dir), "gone")
    assert token.encode() in all_bytes(data_dir)

    assert provisions.redact(data_dir, ["gone"], "req-7") == 2
    assert token.encode() not in all_bytes(data_dir)
    records = provisions.read(data_dir)
    assert records[0].people[0] == "erased:req-7" and len(records[0].people) == 2
    assert records[1].removed == ("erased:req-7",)
    assert provisions.provided_to(data_dir, "gone") == []
    assert len(provisions.provided_to(data_dir, "stays")) == 2
    # a file without the person is not rewritten
    assert (provisions.folder(data_dir) / "2026-06.jsonl").stat().st_ino == untouched
    assert provisions.redact(data_dir, ["gone"], "req-7") == 0  # idempotent


def test_prune_keeps_every_month_younger_than_three_years(settings: Settings) -> None:
    data_dir = settings.data_dir
    for month in (datetime(2023, 4, 30, 23, 59, tzinfo=UTC), datetime(2023, 5, 1, tzinfo=UTC)):
        provide(data_dir, ["x"], month)
    folder = provisions.folder(data_dir)
    (folder / "notes.txt").write_text("not a record file")
    # April 2023's last record is three years old on 2026-05-01, not a second before.
    assert provisions.prune(data_dir, datetime(2026, 4, 30, 23, 59, 59, tzinfo=UTC)) == []
    assert provisions.prune(data_dir, datetime(2026, 5, 1, tzinfo=UTC)) == [
        folder / "2023-04.jsonl"
    ]
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "2023-05.jsonl",
        "notes.txt",
    ]
    assert provisions.expires(2023, 12) == datetime(2027, 1, 1, tzinfo=UTC)


def test_cdp_export_records_the_file_and_leaves_out_suppressed_people(
    settings: Settings, tmp_path: Path
) -> None:
    shop = Shop(settings)
    users = shop.add(4)
    ids = shop.customer_ids()
    SuppressionList.load(settings.data_dir).add(
        [f"email:{shop.customers[users[0]]['email']}"], "r1"
    )
    out = tmp_path / "meta.csv"
    result = cdp(
        settings, "--json", "export", SEGMENT, "--to", "meta_csv", "--out", str(out),
        "--recipient", "Meta ad account 42",
    )  # fmt: skip
    summary = orjson.loads(result.stdout)
    assert summary["exported"] == 3 and summary["excluded"]["suppressed"] == 1
    assert sha(shop.customers[users[0]]["email"]) not in out.read_text()

    [record] = provisions.read(settings.data_dir)
    assert (record.kind, record.platform, record.recipient) == (
        "export",
        "meta_csv",
        "Meta ad account 42",
    )
    assert record.account == str(out.resolve()) and record.consent == "ads"
    assert "email" in record.items and len(record.people) == 3
    assert provisions.provided_to(settings.data_dir, ids[users[1]]) == [record]
    assert provisions.provided_to(settings.data_dir, ids[users[0]]) == []


def test_cdp_privacy_records_lists_and_writes_csv(settings: Settings, tmp_path: Path) -> None:
    data_dir = settings.data_dir
    provide(data_dir, ["a", "b"], datetime(2025, 12, 1, tzinfo=UTC))
    recent = provide(data_dir, ["c"], datetime(2026, 2, 1, tzinfo=UTC), platform="line")
    listed = orjson.loads(
        cdp(settings, "--json", "privacy", "records", "--since", "2026-01-01").stdout
    )
    assert [r["id"] for r in listed] == [recent.id] and listed[0]["people_count"] == 1

    table = cdp(settings, "privacy", "records").stdout
    assert "APPI Art. 29" in table and "meta" in table and "line" in table

    out = tmp_path / "records.csv"
    cdp(settings, "privacy", "records", "--csv", str(out))
    rows = list(csv.DictReader(out.read_text(encoding="utf-8").splitlines()))
    assert [r["people_count"] for r in rows] == ["2", "1"]
    assert rows[0]["people"].split() == list(provisions.read(data_dir)[0].people)
    assert rows[1]["platform"] == "line" and rows[1]["items"] == "EMAIL PHONE"

    bad = CliRunner().invoke(
        app, ["--data-dir", str(data_dir), "privacy", "records", "--since", "soon"]
    )
    assert bad.exit_code != 0
