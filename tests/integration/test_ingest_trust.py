"""Ingestion you can trust (issue #12, items 1-3), on real HTTP and a real data directory.

- the same body sent N times to an HTTP door is N events; two identical lines
  of one file are two events, and re-importing the file adds nothing
  (JSONL, CSV, Parquet, ``/v1/bulk``); a dead-letter retry cut short and run
  again stores nothing twice;
- a future-dated event is refused with the field named and dead-lettered, and
  one stored anyway (as an older version accepted it) moves neither the log
  clock nor any built-in segment;
- ids and names that are not strings, NULs and gzip with trailing junk are 400s.
"""

from __future__ import annotations

import gzip
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdp.cli.collect import _rebuild
from cdp.demo.generate import GenerateConfig, generate
from cdp.ports.log import Record
from cdp.read import lookup
from cdp.runtime.clock import AS_OF_SQL, COUNTS_SQL
from cdp.runtime.engine import Engine
from cdp.services import deadletters, segments
from cdp.services.ingest import ingest, to_record
from connectors.sources.files import read_items
from schemas import EventValidationError, decode, dumps, stamp
from schemas.time_bounds import MAX_AHEAD, moves_clock
from tests.integration.test_collector import Service
from tests.integration.test_webhook_routes import forms_service  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration

VIEWED = {"userId": "F9", "event": "Product Viewed", "properties": {"product_id": "TEA-STARTER"}}
N = 3


def letters(service: Service) -> list[deadletters.DeadLetter]:
    return service.engine_call(lambda e: deadletters.select(e.con))


# --- 1. no silent collapse --------------------------------------------------------


def test_the_same_body_sent_n_times_is_n_events(service: Service) -> None:
    batch = {"batch": [{"type": "track", **VIEWED}, {"type": "track", **VIEWED}]}
    with service.client() as client:
        for _ in range(N):
            assert client.post("/v1/track", json=VIEWED).json() == {"success": True}
            assert client.post("/v1/batch", json=batch).json() == {"success": True}
    rows = service.stored()
    assert len(rows) == N + 2 * N
    assert len({r[0] for r in rows}) == len(rows)
    assert all(r[0].startswith("srv-") for r in rows)


def test_two_form_posts_are_two_submissions(forms_service: Service) -> None:  # noqa: F811
    fields = {"email": "a@shop.jp", "ajs_anonymous_id": "anon-1", "agree_mail": "on"}
    with httpx.Client(base_url=forms_service.url) as client:
        for _ in range(2):
            answer = client.post("/v1/forms/newsletter", data=fields, follow_redirects=False)
            assert answer.status_code == 303
    events = [orjson.loads(r[5]).get("event") for r in forms_service.stored()]
    assert events.count("Form Submitted") == 2


def _lines(tmp_path: Path) -> Path:
    path = tmp_path / "views.jsonl"
    line = orjson.dumps({"type": "track", **VIEWED, "timestamp": "2026-05-01T00:00:00Z"})
    other = orjson.dumps(
        {"type": "page", "anonymousId": "a-1", "timestamp": "2026-05-01T00:00:00Z"}
    )
    path.write_bytes(b"\n".join([line, line, other, b"", line]) + b"\n")
    return path


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "views.csv"
    row = "track,F9,Product Viewed,TEA-STARTER,2026-05-01T00:00:00Z"
    path.write_text(
        "type,userId,event,properties.product_id,timestamp\n" + f"{row}\n{row}\n{row}\n",
        encoding="utf-8",
    )
    return path


def _parquet(tmp_path: Path) -> Path:
    path = tmp_path / "views.parquet"
    table = pa.table(
        {
            "type": ["track"] * 3,
            "userId": ["F9"] * 3,
            "event": ["Product Viewed"] * 3,
            "properties": [{"product_id": "TEA-STARTER"}] * 3,
            "timestamp": pa.array(
                [datetime(2026, 5, 1, tzinfo=UTC)] * 3, pa.timestamp("us", tz="UTC")
            ),
        }
    )
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize(("make", "events"), [(_lines, 4), (_csv, 3), (_parquet, 3)])
def test_identical_lines_of_a_file_are_distinct_and_a_reimport_adds_nothing(
    tmp_path: Path, engine: Engine, make: Any, events: int
) -> None:
    path = make(tmp_path)
    first = ingest(read_items(path), engine, source="file")
    assert (first.accepted, first.rejected) == (events, 0), first.errors
    copy = tmp_path / "copy" / path.name.replace("views", "renamed")
    copy.parent.mkdir()
    shutil.copy(path, copy)
    for again in (path, copy):  # the same file, under its own name or another
        report = ingest(read_items(again), engine, source="file")
        assert (report.accepted, report.duplicates) == (0, events)
    assert engine.con.execute("SELECT count(*) FROM event_log").fetchone() == (events,)


def test_bulk_resend_adds_nothing_and_matches_cdp_ingest(service: Service, tmp_path: Path) -> None:
    path = _lines(tmp_path)
    with service.client() as client:
        for _ in range(2):
            answer = client.post("/v1/bulk", content=path.read_bytes())
            assert answer.status_code == 200, answer.text
    assert len(service.stored()) == 4
    # The same file through `cdp ingest`'s path gives the same ids: nothing new.
    report = service.engine_call(lambda e: ingest(read_items(path), e))
    assert (report.accepted, report.duplicates) == (0, 4)


def test_a_dead_letter_retry_cut_short_and_run_again_stores_once(engine: Engine) -> None:
    body = orjson.dumps({"batch": [{"type": "track", **VIEWED}, {"type": "track", **VIEWED}]})
    deadletters.add(
        engine.con,
        received_at=datetime(2026, 5, 1, tzinfo=UTC),
        source="web",
        endpoint="batch",
        reason="was rejected",
        body=body,
    )

    class Crash(Exception):
        pass

    def append_then_crash(records: list[Record]) -> None:
        engine.append(records)
        raise Crash  # before the letter is marked retried

    now = datetime.now(UTC)
    with pytest.raises(Crash):
        deadletters.retry(engine.con, append_then_crash, _rebuild, now)
    report = deadletters.retry(engine.con, engine.append, _rebuild, now)
    assert (report.retried, report.events) == (1, 2)
    ids = [r[0] for r in engine.con.execute("SELECT message_id FROM event_log").fetchall()]
    assert len(ids) == 2 and len(set(ids)) == 2


# --- 2. a bounded clock -------------------------------------------------------------


def test_a_2099_event_is_refused_named_and_dead_lettered(service: Service) -> None:
    late = {**VIEWED, "timestamp": "2099-01-01T00:00:00Z"}
    with service.client() as client:
        answer = client.post("/v1/track", json=late)
        items = [{"type": "track", **VIEWED}, {"type": "track", **late}]
        batch = client.post("/v1/batch", json={"batch": items})
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == ["timestamp"]
    assert batch.status_code == 400
    assert [(e["index"], e["field"]) for e in batch.json()["errors"]] == [(1, "timestamp")]
    assert service.stored() == []  # all or nothing
    reasons = [letter.reason for letter in letters(service)]
    assert len(reasons) == 2 and all("timestamp" in r and "2099" in r for r in reasons)


def test_a_file_line_dated_2099_is_reported_by_line(tmp_path: Path, engine: Engine) -> None:
    path = tmp_path / "import.jsonl"
    good = {"type": "page", "anonymousId": "a", "timestamp": "2020-01-01T00:00:00Z"}
    future = {"type": "page", "anonymousId": "a", "timestamp": "2099-01-01T00:00:00Z"}
    received = {**good, "receivedAt": "2099-01-01T00:00:00Z", "timestamp": "2099-01-01T00:00:00Z"}
    path.write_bytes(b"\n".join(orjson.dumps(r) for r in (good, future, received)) + b"\n")
    report = ingest(read_items(path), engine)
    assert (report.accepted, report.rejected) == (1, 2)  # the 2020 one: history is welcome
    assert [str(e).split(" ")[0] for e in report.errors] == ["import.jsonl:2:", "import.jsonl:3:"]
    assert "timestamp: 2099-01-01T00:00:00Z is" in str(report.errors[0])
    assert "receivedAt: 2099-01-01T00:00:00Z is" in str(report.errors[1])


def _state(engine: Engine) -> tuple[Any, dict[str, int]]:
    con = engine.con
    clock = con.execute("SELECT as_of FROM log_clock").fetchone()
    counts = {name: segments.run(con, name).count for name in segments.BUILTIN}
    return clock, counts


def test_a_stored_2099_event_moves_neither_the_clock_nor_any_segment(
    tmp_path: Path, engine: Engine
) -> None:
    shop = tmp_path / "shop.jsonl"
    generate(shop, GenerateConfig(seed=1, customers=200))
    report = ingest(read_items(shop), engine)
    assert report.rejected == 0, report.errors[:3]  # generated data is within the bounds
    engine.checkpoint()
    clock, counts = _state(engine)
    assert clock[0] is not None and sum(counts.values()) > 0
    raw = {
        "type": "page",
        "anonymousId": "time-traveller",
        "messageId": "wild-1",
        "timestamp": "2099-01-01T00:00:00Z",
    }
    with pytest.raises(EventValidationError, match="timestamp"):
        to_record(raw, datetime.now(UTC), "web")  # the door refuses it now...
    stamped = stamp(raw, datetime.now(UTC))  # ...but an older version stored it
    assert engine.append([Record(decode(stamped), dumps(stamped), "web")]).appended == 1
    engine.checkpoint()
    assert _state(engine) == (clock, counts)
    # The lookup service's incremental clock has the same definition.
    assert lookup.LogClock().read(engine.con) == clock[0]
    days = engine.con.execute(
        "SELECT days_since_last_seen FROM profiles p JOIN identities i USING (customer_id) "
        "WHERE i.identifier = 'anonymous_id:time-traveller'"
    ).fetchone()
    assert days is not None and days[0] < 0  # its own profile says what it was told


# --- 3. strings stay strings -----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"userId": "u", "event": 42}, "event"),
        ({"userId": 123, "event": "Clicked"}, "userId"),
        ({"anonymousId": "a\x00b", "event": "Clicked"}, "anonymousId"),
    ],
)
def test_non_string_ids_and_nuls_are_a_400_naming_the_field(
    service: Service, body: dict[str, Any], field: str
) -> None:
    with service.client() as client:
        answer = client.post("/v1/track", json=body)
    assert answer.status_code == 400
    assert [e["field"] for e in answer.json()["errors"]] == [field]
    assert service.stored() == []
    assert field in letters(service)[0].reason


def test_gzip_with_trailing_junk_is_a_400(service: Service) -> None:
    body = gzip.compress(orjson.dumps(VIEWED)) + b"trailing junk"
    with service.client() as client:
        answer = client.post(
            "/v1/track",
            content=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
    assert answer.status_code == 400
    assert "after the end of its gzip stream" in answer.json()["error"]
    assert service.stored() == []


def test_the_clock_sql_is_the_python_bound() -> None:
    """``cdp.runtime.clock`` (SQL) and ``schemas.time_bounds.moves_clock`` agree at the edge."""
    received = datetime(2026, 5, 1, tzinfo=UTC)
    gaps = [timedelta(days=-400), timedelta(0), MAX_AHEAD, MAX_AHEAD + timedelta(microseconds=1)]
    gaps += [timedelta(days=3), timedelta(days=30000)]
    con = duckdb.connect()
    con.execute("CREATE TABLE event_log (timestamp TIMESTAMPTZ, received_at TIMESTAMPTZ)")
    for gap in gaps:
        con.execute("INSERT INTO event_log VALUES (?, ?)", [received + gap, received])
    rows = con.execute(f"SELECT timestamp, {COUNTS_SQL} FROM event_log").fetchall()
    assert [counts for _, counts in rows] == [moves_clock(received + g, received) for g in gaps]
    assert [counts for _, counts in rows] == [True, True, True, False, False, False]
    (as_of,) = con.execute(f"SELECT {AS_OF_SQL} FROM event_log").fetchall()[0]
    assert as_of == received + MAX_AHEAD
