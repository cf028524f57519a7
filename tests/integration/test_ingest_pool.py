"""Ingest with validation in worker processes gives what the serial path gives.

``cdp.services.ingest.ingest`` validates large inputs in a
``cdp.services.validation_pool.ValidationPool``. The pool is only a way to use
more cores: the same input must leave byte-identical logs (every column of
every row, offsets included), identical reports, identical rejects handed to
``on_reject`` and identical progress, whether the items were validated here,
in workers from the first item, or in workers past the automatic threshold.
The input mixes what can differ: events with and without ``messageId``
(identical ones too, across chunk boundaries, so the occurrence count spans
chunks and processes), parse errors, contract errors, oversized lines, dates
too far ahead, and dict items (CSV rows) beside bytes.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from cdp.adapters.duckdb.log import DuckDBEventLog
from cdp.services.ingest import IngestReport, ingest
from cdp.services.validation_pool import CHUNK_ITEMS, ValidationPool, check_items
from schemas import MAX_EVENT_BYTES
from tests.factories import raw_identify, raw_order, raw_page, raw_track

pytestmark = pytest.mark.integration

RECEIVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
Item = tuple[str, bytes | dict[str, Any]]


def mixed_items(count: int) -> list[Item]:
    """``count`` items of every kind the door meets, deterministic."""
    items: list[Item] = []
    no_id = raw_track("Coupon Viewed", {"code": "SPRING"}, user_id="u-repeat")
    del no_id["messageId"]
    for n in range(count):
        kind = n % 11
        raw: dict[str, Any] | bytes
        if kind == 0:
            raw = raw_identify(user_id=f"u-{n % 97}", traits={"email": f"p{n % 97}@example.jp"})
        elif kind == 1:
            raw = raw_order(f"o-{n}", 1200.0 + n, user_id=f"u-{n % 97}")
        elif kind == 2:
            raw = raw_page(f"/p/{n}", anonymous_id=f"a-{n % 41}")
        elif kind == 3:  # identical items without messageId: occurrences count
            raw = copy.deepcopy(no_id)
        elif kind == 4:  # without messageId, distinct content
            raw = raw_track("Product Viewed", {"product_id": f"p-{n % 13}"}, user_id="u-1")
            del raw["messageId"]
        elif kind == 5 and n % 2:
            raw = b"{not json"
        elif kind == 6 and n % 3 == 0:
            raw = raw_track("Signed Up", user_id=123)  # contract error: number id
        elif kind == 7 and n % 5 == 0:
            raw = raw_track("Big", {"blob": "x" * MAX_EVENT_BYTES}, user_id="u-2")
        elif kind == 8 and n % 7 == 0:
            raw = raw_track("Future", user_id="u-3", timestamp="2030-01-01T00:00:00Z")
        else:
            raw = raw_track("Clicked", {"n": n}, user_id=f"u-{n % 53}")
        if n % 4 == 0 and isinstance(raw, dict):
            items.append((f"rows.csv:{n + 2}", raw))  # a dict item, as CSV rows are
        else:
            data = raw if isinstance(raw, bytes) else orjson.dumps(raw)
            items.append((f"events.jsonl:{n + 1}", data))
    return items


def run(tmp_path: Path, items: list[Item], workers: int | None) -> dict[str, Any]:
    """Ingest ``items`` into a fresh DuckDB log; everything observable about it."""
    path = tmp_path / f"log-{workers}-{len(list(tmp_path.iterdir()))}.duckdb"
    rejects: list[tuple[str, Any, str]] = []
    progress: list[int] = []
    with duckdb.connect(str(path)) as con:
        report: IngestReport = ingest(
            iter(copy.deepcopy(items)),
            DuckDBEventLog(con),
            source="pool-test",
            received_at=RECEIVED,
            batch_size=700,
            progress=progress.append,
            on_reject=lambda location, raw, reason: rejects.append((location, raw, reason)),
            workers=workers,
        )
        rows = con.execute('SELECT * FROM event_log ORDER BY "offset"').fetchall()
    return {
        "report": report.as_dict(),
        "rows": rows,
        "rejects": rejects,
        "progress": sum(progress),
    }


@pytest.fixture(scope="module")
def items() -> list[Item]:
    # Past two chunks, so repeats and batches straddle workers and chunk edges.
    return mixed_items(2 * CHUNK_ITEMS + 317)


@pytest.fixture(scope="module")
def serial(items: list[Item], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run(tmp_path_factory.mktemp("serial"), items, workers=1)


def test_the_input_exercises_every_outcome(serial: dict[str, Any], items: list[Item]) -> None:
    report = serial["report"]
    assert report["read"] == len(items)
    assert report["accepted"] > 0 and report["rejected"] > 0
    reasons = " ".join(reason for _, _, reason in serial["rejects"])
    for expected in ("not valid JSON", "must be a string", "bytes, over the", "timestamp: 2030"):
        assert expected in reasons
    auto_ids = [row[1] for row in serial["rows"] if row[1].startswith("auto-")]
    assert len(auto_ids) == len(set(auto_ids)) > CHUNK_ITEMS // 11


def test_pool_from_the_first_item_gives_the_serial_log(
    serial: dict[str, Any], items: list[Item], tmp_path: Path
) -> None:
    assert run(tmp_path, items, workers=2) == serial


def test_importing_again_adds_nothing_through_the_pool(items: list[Item], tmp_path: Path) -> None:
    path = tmp_path / "again.duckdb"
    with duckdb.connect(str(path)) as con:
        log = DuckDBEventLog(con)
        first = ingest(iter(items), log, received_at=RECEIVED, workers=2)
        again = ingest(iter(items), log, received_at=RECEIVED, workers=2)
    assert again.accepted == 0
    assert again.duplicates == first.accepted
    assert again.errors == first.errors


def test_outcomes_carry_bytes_and_messages_not_models() -> None:
    good = raw_page("/", user_id="u-1")
    no_id = raw_track("Clicked", user_id="u-1")
    del no_id["messageId"]
    outcomes = check_items([orjson.dumps(good), b"[1]", no_id], RECEIVED)
    assert outcomes[0] == orjson.dumps(good)  # stamping changed nothing: the producer's bytes
    assert outcomes[1] == "invalid event: <event>: an event must be a JSON object"
    first_id, stored = outcomes[2]  # type: ignore[misc]  # a tuple for an item without an id
    assert first_id.startswith("auto-")
    assert isinstance(stored, bytes) and orjson.loads(stored)["messageId"] == first_id


def test_the_pool_answers_in_chunk_order(items: list[Item]) -> None:
    chunks: Iterator[tuple[int, list[Any]]] = (
        (n, [raw for _, raw in items[n * 50 : (n + 1) * 50]]) for n in range(9)
    )
    with ValidationPool(2) as pool:
        answered = list(pool.check(chunks, RECEIVED))
    assert [tag for tag, _ in answered] == list(range(9))
    assert [len(outcomes) for _, outcomes in answered] == [50] * 9


def test_cdp_ingest_takes_the_number_of_workers(items: list[Item], tmp_path: Path) -> None:
    """``cdp ingest --workers 2`` validates on the pool and stores what ``--workers 1`` does."""
    from typer.testing import CliRunner  # noqa: PLC0415

    from cdp.cli import app  # noqa: PLC0415

    source = tmp_path / "events.jsonl"
    lines = [r if isinstance(r, bytes) else orjson.dumps(r) for _, r in items]
    source.write_bytes(b"\n".join(lines) + b"\n")
    stored = {}
    for workers in ("1", "2"):
        data = tmp_path / f"data-{workers}"
        result = CliRunner().invoke(
            app, ["--data-dir", str(data), "--json", "ingest", str(source), "--workers", workers]
        )
        assert result.exit_code in (0, 1), result.output  # 1: some lines are rejected
        report = orjson.loads(result.output)
        assert report["accepted"] > 0 and report["rejected"] > 0
        con = duckdb.connect(str(data / "cdp.duckdb"), read_only=True)
        stored[workers] = (
            report,
            con.execute(
                'SELECT * EXCLUDE (received_at) FROM event_log ORDER BY "offset"'
            ).fetchall(),
        )
        con.close()
    assert stored["1"] == stored["2"]
