"""Bulk import from files into a real data directory: readers + ingest + engine.

Each test writes a file the way a producer would, ingests it through
``connectors.sources.files.read_items`` and ``cdp.services.ingest.ingest`` into an
``Engine`` on a DuckDB file, and checks what the report says and what the log
durably holds afterwards (read back through a freshly opened engine). The
``settings`` and ``engine`` fixtures (a data directory under ``tmp_path``) come
from ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdp.config import Settings
from cdp.errors import InputFileError
from cdp.runtime.engine import Engine
from cdp.services.ingest import IngestReport, ingest
from connectors.sources.files import read_items
from schemas import MAX_EVENT_BYTES, AnyEvent
from tests.factories import T0, raw_identify, raw_order, raw_page, raw_track

pytestmark = pytest.mark.integration

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def run(engine: Engine, path: Path, received_at: datetime = RECEIVED) -> IngestReport:
    return ingest(read_items(path), engine, source=path.name, received_at=received_at)


def stored(settings: Settings) -> dict[str, AnyEvent]:
    """Every stored event by messageId, read through a newly opened engine."""
    with Engine.open(settings) as engine:
        return {s.event.message_id: s.event for b in engine.log.read() for s in b}


def errors_by_location(report: IngestReport) -> dict[str, str]:
    return {e.location: e.message for e in report.errors}


def write_jsonl(path: Path, lines: Sequence[bytes | str]) -> Path:
    data = b"\n".join(line.encode() if isinstance(line, str) else line for line in lines)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(data + b"\n"))
    else:
        path.write_bytes(data + b"\n")
    return path


# ----------------------------------------------------------------------- JSONL
def jsonl_with_bad_lines() -> tuple[list[bytes | str], dict[int, str]]:
    """Good and bad lines, and for each bad line number the text its error must hold."""
    wrong_type = raw_track("Button Clicked", user_id="u5", message_id="j-5")
    wrong_type["properties"] = ["not", "an", "object"]
    bad_price = raw_order(
        "o-8",
        300,
        user_id="u8",
        message_id="j-8",
        products=[
            {"product_id": "p-1", "price": 100},
            {"product_id": "p-2", "price": "cheap"},
        ],
    )
    too_large = raw_track("Note", {"text": "x" * MAX_EVENT_BYTES}, user_id="u7", message_id="j-7")
    lines: list[bytes | str] = [
        orjson.dumps(raw_order("o-1", 1200, user_id="u1", message_id="j-1")),
        "",  # blank lines are skipped, yet they count for line numbers
        '{"type": "track", "event": "Broken",',
        orjson.dumps(raw_track("Button Clicked", message_id="j-4")),
        orjson.dumps(wrong_type),
        orjson.dumps(
            raw_identify(user_id="u6", traits={"email": "u6@example.jp"}, message_id="j-6")
        ),
        orjson.dumps(too_large),
        orjson.dumps(bad_price),
        "   ",
        orjson.dumps(raw_page("/sale", anonymous_id="a10", message_id="j-10")),
    ]
    expected = {
        3: "not valid JSON",
        4: "userId or anonymousId",
        5: "properties: Input should be a valid dictionary",
        7: f"over the {MAX_EVENT_BYTES}-byte limit",
        8: "properties.products[1].price: ",
    }
    return lines, expected


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_jsonl_rejects_bad_lines_by_line_number_and_keeps_the_good_ones(
    tmp_path: Path, settings: Settings, engine: Engine, name: str
) -> None:
    lines, expected = jsonl_with_bad_lines()
    path = write_jsonl(tmp_path / name, lines)

    report = run(engine, path)

    assert (report.read, report.accepted, report.duplicates, report.rejected) == (8, 3, 0, 5)
    errors = errors_by_location(report)
    assert sorted(errors) == sorted(f"{name}:{n}" for n in expected)
    for number, text in expected.items():
        assert text in errors[f"{name}:{number}"], errors[f"{name}:{number}"]
    assert "'j-8'" in errors[f"{name}:8"]  # the message names the event too

    engine.close()
    events = stored(settings)
    assert sorted(events) == ["j-1", "j-10", "j-6"]
    assert events["j-1"].properties.order_id == "o-1"  # type: ignore[attr-defined]


def test_jsonl_rerun_stores_nothing_new_and_counts_duplicates(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    lines, _ = jsonl_with_bad_lines()
    path = write_jsonl(tmp_path / "events.jsonl", lines)
    run(engine, path)

    again = run(engine, path, received_at=RECEIVED + timedelta(days=1))

    assert (again.read, again.accepted, again.duplicates, again.rejected) == (8, 0, 3, 5)
    assert engine.log.high_water() == 3
    engine.close()
    assert len(stored(settings)) == 3


def test_lines_without_message_id_get_a_deterministic_one(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    """A content hash stands in for a missing messageId: re-importing the same
    lines (another day, another file name) adds nothing."""
    raws = [
        raw_track("Button Clicked", {"n": n}, user_id=f"u{n}", at=T0 + timedelta(hours=n))
        for n in range(3)
    ]
    for raw in raws:
        del raw["messageId"]
    first_file = write_jsonl(tmp_path / "no-ids.jsonl", [orjson.dumps(r) for r in raws])
    copy = write_jsonl(tmp_path / "copy.jsonl.gz", [orjson.dumps(r) for r in reversed(raws)])

    first = run(engine, first_file)
    second = run(engine, first_file, received_at=RECEIVED + timedelta(days=3))
    third = run(engine, copy)

    assert (first.accepted, first.duplicates) == (3, 0)
    assert (second.accepted, second.duplicates) == (0, 3)
    assert (third.accepted, third.duplicates) == (0, 3)
    engine.close()
    events = stored(settings)
    assert len(events) == 3
    assert all(mid.startswith("auto-") for mid in events)
    assert sorted(e.user_id or "" for e in events.values()) == ["u0", "u1", "u2"]


@pytest.mark.parametrize("blank", [None, ""])
def test_null_or_empty_message_id_is_replaced_in_the_stored_payload(
    tmp_path: Path, settings: Settings, engine: Engine, blank: str | None
) -> None:
    """A present-but-blank messageId gets the content hash like a missing one,
    and the stored payload must carry it: otherwise the accepted event cannot
    be read back (the log would be unreadable from that offset on)."""
    raw = raw_track("Button Clicked", user_id="u1", message_id="placeholder")
    raw["messageId"] = blank
    path = write_jsonl(tmp_path / "blank-ids.jsonl", [orjson.dumps(raw)])

    report = run(engine, path)
    assert (report.accepted, report.rejected) == (1, 0), report.errors
    engine.close()

    events = stored(settings)
    assert len(events) == 1
    assert next(iter(events)).startswith("auto-")
    assert run_again_is_duplicate(settings, path)


def run_again_is_duplicate(settings: Settings, path: Path) -> bool:
    with Engine.open(settings) as engine:
        report = run(engine, path)
    return (report.accepted, report.duplicates) == (0, 1)


# ------------------------------------------------------------------ timestamps
def test_timestamp_is_corrected_for_client_clock_skew(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    """timestamp = receivedAt - (sentAt - originalTimestamp), the Segment way."""
    skewed = {"originalTimestamp": "2026-02-01T10:00:00Z", "sentAt": "2026-02-01T10:00:05Z"}
    lines = []
    for mid, extra in {
        "skew": skewed,
        "skew-own-received": {**skewed, "receivedAt": "2026-02-20T08:00:00Z"},
        "explicit": {**skewed, "timestamp": "2026-01-15T00:00:00+09:00"},
        "original-only": {"originalTimestamp": "2026-02-01T10:00:00+09:00"},
        "nothing": {},
    }.items():
        raw = raw_track("Button Clicked", user_id="u1", message_id=mid)
        del raw["timestamp"], raw["receivedAt"]
        lines.append(orjson.dumps({**raw, **extra}))
    report = run(engine, write_jsonl(tmp_path / "skew.jsonl", lines))
    assert (report.accepted, report.rejected) == (5, 0), report.errors
    engine.close()

    events = stored(settings)
    expected = {
        "skew": RECEIVED - timedelta(seconds=5),
        "skew-own-received": datetime(2026, 2, 20, 7, 59, 55, tzinfo=UTC),
        "explicit": datetime(2026, 1, 14, 15, 0, tzinfo=UTC),
        "original-only": datetime(2026, 2, 1, 1, 0, tzinfo=UTC),
        "nothing": RECEIVED,
    }
    assert {mid: events[mid].timestamp for mid in expected} == expected
    assert events["skew"].received_at == RECEIVED
    with Engine.open(settings) as reopened:
        columns = dict(
            reopened.con.execute("SELECT message_id, timestamp FROM event_log").fetchall()
        )
    assert columns == expected


# ------------------------------------------------------------------------- CSV
def write_csv(path: Path, header: list[str], rows: list[dict[str, str]]) -> Path:
    """A CSV file with ``header``; a column a row does not name is an empty cell."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header, restval="")
        writer.writeheader()
        writer.writerows(rows)
    return path


CSV_HEADER = [
    "type",
    "event",
    "messageId",
    "userId",
    "anonymousId",
    "timestamp",
    "properties.order_id",
    "properties.revenue",
    "traits.email",
    "traits.firstName",
    "context.campaign.source",
    "context.campaign.name",
    "properties",
]


def test_csv_dotted_columns_and_json_cells_become_nested_events(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    page_props = {"path": "/sale", "url": "https://shop.example.jp/sale", "tags": ["a", "b"]}
    order = {"type": "track", "event": "Order Completed"}
    rows = [
        {  # line 2
            **order,
            "messageId": "c-1",
            "userId": "u1",
            "timestamp": "2026-01-05T10:00:00Z",
            "properties.order_id": "o-1",
            "properties.revenue": "1200",
            "context.campaign.source": "line",
            "context.campaign.name": "spring",
        },
        {  # line 3
            "type": "identify",
            "messageId": "c-2",
            "userId": "u2",
            "timestamp": "2026-01-05T11:00:00Z",
            "traits.email": "hanako@example.jp",
            "traits.firstName": "Hanako",
        },
        {  # lines 4-5: a quoted JSON cell spanning two physical lines
            "type": "page",
            "messageId": "c-3",
            "anonymousId": "a1",
            "timestamp": "2026-01-05T12:00:00Z",
            "context.campaign.source": "instagram",
            "properties": orjson.dumps(page_props).decode().replace(",", ",\n", 1),
        },
        {  # line 6: bad email
            "type": "identify",
            "messageId": "c-4",
            "userId": "u4",
            "timestamp": "2026-01-05T13:00:00Z",
            "traits.email": "not-an-email",
        },
        {  # line 7: negative revenue
            **order,
            "messageId": "c-5",
            "userId": "u5",
            "timestamp": "2026-01-05T14:00:00Z",
            "properties.order_id": "o-5",
            "properties.revenue": "-3",
        },
    ]
    path = write_csv(tmp_path / "events.csv", CSV_HEADER, rows)
    assert "\n" in rows[2]["properties"]

    report = run(engine, path)

    assert (report.read, report.accepted, report.rejected) == (5, 3, 2)
    errors = errors_by_location(report)
    assert sorted(errors) == ["events.csv:6", "events.csv:7"]
    assert "traits.email: " in errors["events.csv:6"]
    assert "properties.revenue: " in errors["events.csv:7"]

    engine.close()
    events: dict[str, Any] = stored(settings)
    assert sorted(events) == ["c-1", "c-2", "c-3"]
    order = events["c-1"]
    assert (order.properties.order_id, order.properties.revenue) == ("o-1", Decimal(1200))
    assert (order.context.campaign.source, order.context.campaign.name) == ("line", "spring")
    assert order.timestamp == datetime(2026, 1, 5, 10, tzinfo=UTC)
    assert (events["c-2"].traits.email, events["c-2"].traits.first_name) == (
        "hanako@example.jp",
        "Hanako",
    )
    assert events["c-3"].properties == page_props
    assert events["c-3"].context.campaign.source == "instagram"
    assert events["c-3"].anonymous_id == "a1"


def test_csv_json_cell_and_dotted_columns_of_one_object_are_merged(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    """``properties.order_id`` and a ``properties`` JSON cell in one row both count,
    whatever the column order (the cell must not silently replace the dotted keys)."""
    products = [{"product_id": "p-1", "price": 1200, "quantity": 1}]
    path = write_csv(
        tmp_path / "orders.csv",
        ["type", "event", "messageId", "userId", "properties.order_id", "properties"],
        [
            {
                "type": "track",
                "event": "Order Completed",
                "messageId": "m-1",
                "userId": "u1",
                "properties.order_id": "o-1",
                "properties": orjson.dumps({"revenue": 1200, "products": products}).decode(),
            }
        ],
    )

    report = run(engine, path)

    assert (report.accepted, report.rejected) == (1, 0), report.errors
    engine.close()
    order: Any = stored(settings)["m-1"]
    assert (order.properties.order_id, order.properties.revenue) == ("o-1", Decimal(1200))


# --------------------------------------------------------------------- Parquet
def test_parquet_with_struct_and_timestamp_columns(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    moments = [T0 + timedelta(hours=h) for h in range(4)]
    table = pa.table(
        {
            "type": ["track", "identify", "track", "page"],
            "event": ["Order Completed", None, "Order Completed", None],
            "messageId": ["q-1", "q-2", "q-3", "q-4"],
            "userId": ["u1", "u2", "u3", None],
            "anonymousId": [None, "a2", None, "a4"],
            "timestamp": pa.array(moments, pa.timestamp("us", tz="UTC")),
            "properties": pa.array(
                [
                    {"order_id": "o-1", "revenue": 1200.5, "path": None},
                    None,
                    {"order_id": "o-3", "revenue": -1.0, "path": None},
                    {"order_id": None, "revenue": None, "path": "/top"},
                ]
            ),
            "traits": pa.array([None, {"email": "p2@example.jp", "age": 41}, None, None]),
            "context": [orjson.dumps({"campaign": {"source": "x"}}).decode(), None, None, None],
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)

    report = run(engine, path)

    assert (report.read, report.accepted, report.rejected) == (4, 3, 1)
    assert [e.location for e in report.errors] == ["events.parquet:row 3"]
    assert "properties.revenue: " in report.errors[0].message
    engine.close()
    events: dict[str, Any] = stored(settings)
    assert sorted(events) == ["q-1", "q-2", "q-4"]
    assert events["q-1"].properties.revenue == Decimal("1200.5")
    assert events["q-1"].context.campaign.source == "x"
    assert (events["q-2"].traits.email, events["q-2"].traits.age) == ("p2@example.jp", 41)
    assert events["q-4"].properties["path"] == "/top"
    assert [events[m].timestamp for m in ("q-1", "q-2", "q-4")] == [
        moments[0],
        moments[1],
        moments[3],
    ]


def test_parquet_null_struct_fields_count_as_absent(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    """A struct column has every field for every row; a null field is a field the
    event did not have, so the contract's default applies (currency → JPY)."""
    table = pa.table(
        {
            "type": ["track", "track"],
            "event": ["Order Completed", "Order Completed"],
            "messageId": ["q-1", "q-2"],
            "userId": ["u1", "u2"],
            "timestamp": pa.array([T0, T0], pa.timestamp("us", tz="UTC")),
            "properties": [
                {"order_id": "o-1", "revenue": 10.0, "currency": "USD"},
                {"order_id": "o-2", "revenue": 20.0, "currency": None},
            ],
        }
    )
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path)

    report = run(engine, path)

    assert (report.accepted, report.rejected) == (2, 0), report.errors
    engine.close()
    currencies = {m: e.properties.currency for m, e in stored(settings).items()}  # type: ignore[attr-defined]
    assert currencies == {"q-1": "USD", "q-2": "JPY"}


def test_parquet_timestamp_without_time_zone_is_read_as_utc(
    tmp_path: Path, settings: Settings, engine: Engine
) -> None:
    """pandas and pyarrow write naive timestamps by default; like ISO strings
    without an offset elsewhere in the platform, they mean UTC."""
    table = pa.table(
        {
            "type": ["track"],
            "event": ["Button Clicked"],
            "messageId": ["q-1"],
            "userId": ["u1"],
            "timestamp": pa.array([datetime(2026, 1, 1, 9, 30)], pa.timestamp("us")),
        }
    )
    path = tmp_path / "naive.parquet"
    pq.write_table(table, path)

    report = run(engine, path)

    assert (report.accepted, report.rejected) == (1, 0), report.errors
    engine.close()
    assert stored(settings)["q-1"].timestamp == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("events.txt", b"{}", "unknown file type .txt"),
        ("events", b"{}", "unknown file type (none)"),
        ("events.parquet.gz", b"{}", "unknown file type .parquet.gz"),
        ("missing.jsonl", None, "no such file"),
        ("missing.csv.gz", None, "no such file"),
        ("broken.jsonl.gz", b"not gzip at all", "read failed"),
        ("broken.parquet", b"not parquet", "not a readable Parquet file"),
    ],
)
def test_unreadable_files_raise_input_file_error_naming_the_path(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(InputFileError) as raised:
        list(read_items(path))

    assert str(path) in str(raised.value)
    assert expected in str(raised.value)
