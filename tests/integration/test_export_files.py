"""File destinations write exactly what the platforms read: headers, encoding, schema."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdp.services.query import AUDIENCE_COLUMNS, Audience
from connectors.destinations import registry
from connectors.destinations.accounting import Written
from connectors.destinations.csv_file import write_csv

pytestmark = pytest.mark.integration


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def person(i: int, **overrides: object) -> tuple[object, ...]:
    values: dict[str, object] = {
        "customer_id": f"cus_{i:05d}",
        "email": f"p{i}@example.jp",
        "phone": f"+8190{i:08d}",
        "last_name": "山田",
        "first_name": "花子",
        "region": "東京都",
        "country": "JP",
        "line_user_id": f"U{i:032x}",
        "lifecycle_stage": "customer",
        "lead_score_now": 1.5,
        "gender": "female",
        "birthday": date(1985, 4, 3),
        "city": "渋谷区",
        "postal_code": "150-0002",
        "first_name_kana": "ハナコ",
        "last_name_kana": "ヤマダ",
        "x_user_id": str(1000 + i),
    }
    values.update(overrides)
    return tuple(values[c] for c in AUDIENCE_COLUMNS)


def audience(n: int) -> Audience:
    rows = [person(i) for i in range(n)]
    rows.append(person(n, email=None, phone=None, line_user_id=None, x_user_id=None))
    return Audience("seg", "ads", len(rows), 0, AUDIENCE_COLUMNS, rows)


def read_csv(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # UTF-8 without BOM (Google: ASCII or UTF-8)
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.reader(handle))


def write(name: str, tmp_path: Path, aud: Audience, **options: str) -> tuple[Path, int]:
    path, written = write_full(name, tmp_path, aud, **options)
    return path, written.records


def write_full(name: str, tmp_path: Path, aud: Audience, **options: str) -> tuple[Path, Written]:
    destination = registry.get(name)
    path = tmp_path / f"out{destination.extension}"
    written = destination.write(path, aud, destination.resolve_options(options))
    # Every consenting member is in the file or left out for a stated reason.
    assert written.exported + sum(written.excluded.values()) == len(aud.rows), name
    return path, written


def test_google_ads_csv_round_trip(tmp_path: Path) -> None:
    path, count = write("google_ads_csv", tmp_path, audience(3))
    rows = read_csv(path)
    assert rows[0] == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]
    # The last person has only an address: still matchable by name + country + zip.
    assert count == len(rows) - 1 == 4
    assert rows[1] == [
        sha("p0@example.jp"),
        sha("+819000000000"),
        sha("花子"),
        sha("山田"),
        "JP",
        "1500002",
    ]
    path, _ = write("google_ads_csv", tmp_path, audience(1), hashed="false")
    assert read_csv(path)[1] == ["p0@example.jp", "+819000000000", "花子", "山田", "JP", "1500002"]


def test_google_ads_json_operations(tmp_path: Path) -> None:
    path, count = write("google_ads_json", tmp_path, audience(2))
    body = orjson.loads(path.read_bytes())
    assert count == len(body["operations"]) == 3
    first = body["operations"][0]["create"]["userIdentifiers"]
    assert first[0] == {"hashedEmail": sha("p0@example.jp")}
    assert first[2]["addressInfo"]["postalCode"] == "1500002"


def test_meta_json_is_batched_payloads(tmp_path: Path) -> None:
    path, count = write("meta_json", tmp_path, audience(10_050))
    batches = orjson.loads(path.read_bytes())
    assert [len(b["data"]) for b in batches] == [10_000, 51]
    assert count == 10_051
    assert batches[0]["schema"][-1] == "EXTERN_ID" and batches[0]["data"][0][-1] == "cus_00000"


def test_meta_csv_headers_and_no_extern_id(tmp_path: Path) -> None:
    path, count = write("meta_csv", tmp_path, audience(2))
    rows = read_csv(path)
    assert rows[0] == ["email", "phone", "fn", "ln", "gen", "doby", "ct", "st", "zip", "country"]
    assert count == 3 and all(len(r) == 10 for r in rows)
    assert rows[1][:2] == [sha("p0@example.jp"), sha("819000000000")]
    assert "cus_00000" not in path.read_text(encoding="utf-8")


def test_line_files_have_no_header(tmp_path: Path) -> None:
    path, count = write("line_audience", tmp_path, audience(3))
    assert path.read_text(encoding="utf-8").splitlines() == [f"U{i:032x}" for i in range(3)]
    assert count == 3
    path, _ = write("line_ads", tmp_path, audience(2), identifier="phone")
    assert path.read_text(encoding="utf-8").splitlines() == [
        sha("819000000000"),
        sha("819000000001"),
    ]


def test_x_and_tiktok_files(tmp_path: Path) -> None:
    path, _ = write("x_csv", tmp_path, audience(2), identifier="user_id")
    assert path.read_text(encoding="utf-8").splitlines() == [sha("1000"), sha("1001")]
    path, count = write("tiktok_csv", tmp_path, audience(2))
    rows = read_csv(path)
    assert rows[0] == ["Email_SHA256", "Phone_SHA256"] and count == 2
    assert rows[2] == [sha("p1@example.jp"), sha("819000000001")]


def test_csv_and_parquet_keep_every_column(tmp_path: Path) -> None:
    aud = audience(3)
    path, count = write("csv", tmp_path, aud)
    rows = read_csv(path)
    assert rows[0] == list(AUDIENCE_COLUMNS) and count == 4
    assert rows[1][AUDIENCE_COLUMNS.index("last_name")] == "山田"
    path, count = write("parquet", tmp_path, aud)
    table = pq.read_table(path)
    assert table.schema.names == list(AUDIENCE_COLUMNS) and count == table.num_rows == 4
    assert table.schema.field("birthday").type == pa.date32()
    assert table.schema.field("lead_score_now").type == pa.float64()
    assert table.schema.field("customer_id").type == pa.string()
    assert table.column("birthday")[0].as_py() == date(1985, 4, 3)
    assert table.column("email").to_pylist()[-1] is None


def test_a_failed_write_leaves_the_old_file(tmp_path: Path) -> None:
    path, _ = write("csv", tmp_path, audience(1))
    before = path.read_bytes()

    def rows_then_crash() -> Iterator[tuple[str, ...]]:
        yield ("cus_x", "x@example.jp")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        write_csv(path, ["customer_id", "email"], rows_then_crash())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left


@pytest.mark.parametrize(
    ("name", "options", "reason"),
    [
        ("google_ads_csv", {}, None),  # the last person still has a full address
        ("google_ads_json", {}, None),
        ("meta_csv", {}, None),  # and both names
        ("meta_json", {}, None),
        ("line_audience", {}, "no_line_user_id"),
        ("line_ads", {"identifier": "email"}, "no_email"),
        ("line_ads", {"identifier": "phone"}, "no_phone"),
        ("x_csv", {"identifier": "email"}, "no_email"),
        ("x_csv", {"identifier": "user_id"}, "no_x_user_id"),
        ("tiktok_csv", {}, "no_email_or_phone"),
        ("csv", {}, None),
        ("parquet", {}, None),
    ],
)
def test_members_without_a_usable_identifier_are_counted(
    tmp_path: Path, name: str, options: dict[str, str], reason: str | None
) -> None:
    aud = audience(3)  # three complete people and one with a name and address only
    _, written = write_full(name, tmp_path, aud, **options)
    assert written.exported == (4 if reason is None else 3)
    assert written.excluded == ({} if reason is None else {reason: 1})


def test_shared_identifiers_are_written_once_but_every_member_counts(tmp_path: Path) -> None:
    same = f"U{7:032x}"
    rows = [person(1, line_user_id=same), person(2, line_user_id=same), person(3)]
    rows.append(person(4, line_user_id="U123"))  # not LINE's form: LINE refuses the request
    aud = Audience("seg", "line", 4, 0, AUDIENCE_COLUMNS, rows)
    path, written = write_full("line_audience", tmp_path, aud)
    assert path.read_text(encoding="utf-8").splitlines() == [same, f"U{3:032x}"]
    assert (written.records, written.exported) == (2, 3)
    assert written.excluded == {"invalid_line_user_id": 1}
