"""What the webhook sources share: purity, contract versions, signatures, field readers.

Per-platform tests live in ``test_webhooks_<platform>.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cdp.errors import UnmappableError
from connectors.sources import webhooks
from connectors.sources.webhooks import (
    WRITTEN_VERSIONS,
    Skipped,
    amount,
    iso,
    iso_from_millis,
    iso_from_text,
    line,
    meta,
    need,
    need_id,
    need_list,
    optional_text,
    person_traits,
    shopify,
    track,
    within,
    x,
)
from schemas import SCHEMA_VERSIONS, decode, stamp

PACKAGE = Path(webhooks.__file__).parent
NOT_PURE = {
    "os", "io", "time", "socket", "pathlib", "subprocess", "threading", "asyncio", "random",
    "httpx", "requests", "urllib", "duckdb", "kafka", "faust", "logging",
}  # fmt: skip


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_webhook_modules_do_no_io_and_read_no_clock(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & NOT_PURE, f"{path.name} imports {sorted(imported & NOT_PURE)}"
    assert "now(" not in source and "today(" not in source


def test_the_shapes_written_are_the_current_contract_versions() -> None:
    # If a contract's version goes up, these sources still write the old shape
    # (upcast on read); this test is the reminder to move them to the new one.
    assert {tag: SCHEMA_VERSIONS[tag] for tag in WRITTEN_VERSIONS} == WRITTEN_VERSIONS


def test_a_typed_track_carries_its_schema_version_and_a_generic_one_none() -> None:
    typed = track("Order Refunded", "m1", {"order_id": "o1"}, timestamp=None, user_id="u1")
    generic = track("LINE Postback", "m2", {}, timestamp=None, anonymous_id="a")
    assert typed["schemaVersion"] == 1
    assert "schemaVersion" not in generic
    received = datetime(2026, 1, 1, tzinfo=UTC)
    assert decode(stamp(typed, received)).timestamp == received


SIGNERS: list[tuple[Callable[[bytes, str], str], Callable[[bytes, str | None, str], None]]] = [
    (shopify.signature, shopify.verify),
    (line.signature, line.verify),
    (meta.signature, meta.verify),
    (x.signature, x.verify),
]


@pytest.mark.parametrize(("sign", "verify"), SIGNERS, ids=["shopify", "line", "meta", "x"])
def test_each_scheme_verifies_its_own_signature_over_any_bytes(
    sign: Callable[[bytes, str], str], verify: Callable[[bytes, str | None, str], None]
) -> None:
    for body in (b"", b"\x00\xff binary", "日本語 🍵".encode()):
        verify(body, sign(body, "s3cret"), "s3cret")


def test_skipped_reads_as_location_and_reason() -> None:
    assert str(Skipped("events[3]", "no mapping", {})) == "events[3]: no mapping"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3740", "3740"), ("199.00", "199.00"), (1200, "1200"), (0.1, "0.1"), ("0", "0")],
)
def test_amounts_are_exact_decimal_text(value: Any, expected: str) -> None:
    assert amount(value, "total") == expected


@pytest.mark.parametrize("value", [True, None, "1,000", "-1", "Infinity", "NaN", [1], {}])
def test_non_amounts_are_refused_naming_the_path(value: Any) -> None:
    with pytest.raises(UnmappableError, match=r"^total must be"):
        amount(value, "total")


def test_epoch_milliseconds_become_utc_iso_timestamps() -> None:
    assert iso_from_millis(1462629479859, "t") == "2016-05-07T13:57:59.859Z"
    assert iso_from_millis("1516403560557", "t") == "2018-01-19T23:12:40.557Z"
    for bad in (0, -1, True, 1.5, "12.5", "", 10**17, None):
        with pytest.raises(UnmappableError, match=r"^t must be epoch milliseconds"):
            iso_from_millis(bad, "t")


def test_text_times_need_an_offset_and_come_out_in_utc() -> None:
    assert iso_from_text("2026-01-15T10:30:00+09:00", "at") == "2026-01-15T01:30:00.000Z"
    assert iso_from_text("2026-01-15T01:30:00Z", "at") == "2026-01-15T01:30:00.000Z"
    with pytest.raises(UnmappableError, match="has no UTC offset"):
        iso_from_text("2026-01-15T10:30:00", "at")
    # found by the collector fuzz test: a valid local time that is year 0 in UTC
    with pytest.raises(UnmappableError, match=r"placed_at .* outside years 1-9999"):
        iso_from_text("0001-01-01T00:00:00+05:00", "placed_at")
    with pytest.raises(UnmappableError, match="outside years 1-9999"):
        iso_from_text("9999-12-31T23:00:00-05:00", "at")
    jst = timezone(timedelta(hours=9))
    assert iso(datetime(2026, 1, 1, 9, 0, 0, 123456, tzinfo=jst)) == "2026-01-01T00:00:00.123Z"


def test_readers_name_the_path_and_within_prefixes_it() -> None:
    data = {"a": {"b": "", "n": 5, "t": "  ", "l": (1,)}}
    with pytest.raises(UnmappableError, match=r"^a\.b is missing$"):
        need(data, "a.b")
    assert need_id(data, "a.n") == "5"
    assert optional_text(data, "a.t") is None
    with pytest.raises(UnmappableError, match=r"^a\.n must be a string"):
        optional_text(data, "a.n")
    with pytest.raises(UnmappableError, match=r"^a\.l is not a list \(tuple\)$"):
        need_list(data, "a.l")
    with pytest.raises(UnmappableError, match=r"^items\[2\]\.a\.b is missing$"), within("items[2]"):
        need(data, "a.b")


def test_person_traits_keep_only_what_the_contract_accepts() -> None:
    assert person_traits("hanako@example.jp", "090-1234-5678", "花子", None) == {
        "email": "hanako@example.jp",
        "phone": "090-1234-5678",
        "first_name": "花子",
    }
    assert person_traits("hanako", "12", None, "山田") == {"last_name": "山田"}
