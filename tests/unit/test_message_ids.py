"""Message ids, time bounds and the string contract at the door (no I/O).

Issue #12: identical events without a messageId must not collapse at HTTP
doors, identical lines of one file are distinct events while re-importing a
file adds nothing, dead-letter retries are idempotent, future-dated events are
refused, and spec strings are not coerced.
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from cdp.services import collector, deadletters
from cdp.services.ingest import ContentIds, to_record
from cdp.services.message_ids import SERVER_PREFIX, form_seed, server_message_id
from schemas import EventValidationError, decode, stamp
from schemas.stamp import content_message_id, lacks_message_id
from schemas.time_bounds import MAX_AHEAD, check_event_times, moves_clock

NOW = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
VIEWED = {"userId": "F9", "event": "Product Viewed", "properties": {"product_id": "TEA-STARTER"}}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- ids at HTTP doors ----------------------------------------------------------


def test_identical_items_without_ids_become_distinct_events() -> None:
    items = [{"type": "track", **VIEWED} for _ in range(3)]
    records = collector.to_records(items, NOW, "web")
    ids = [r.event.message_id for r in records]
    assert len(set(ids)) == 3
    assert all(i.startswith(SERVER_PREFIX) for i in ids)
    # The same body sent again is yet another event.
    again = collector.to_records([{"type": "track", **VIEWED}], NOW, "web")
    assert again[0].event.message_id not in ids


def test_a_producers_message_id_is_kept() -> None:
    items = [{"type": "track", "messageId": "m-1", **VIEWED}]
    assert collector.to_records(items, NOW, "web")[0].event.message_id == "m-1"


@pytest.mark.parametrize("missing", [None, ""])
def test_null_and_empty_message_ids_count_as_missing(missing: Any) -> None:
    assert lacks_message_id({"messageId": missing})
    records = collector.to_records([{"type": "track", "messageId": missing, **VIEWED}], NOW, "w")
    assert records[0].event.message_id.startswith(SERVER_PREFIX)
    assert not lacks_message_id({"messageId": 0})  # a number is the producer's: validated


def test_server_ids_and_form_seeds_are_unique() -> None:
    assert len({server_message_id() for _ in range(1000)}) == 1000
    assert len({form_seed() for _ in range(1000)}) == 1000


# --- ids of file lines ----------------------------------------------------------


def test_file_ids_hash_content_and_occurrence() -> None:
    raw = {"type": "track", **VIEWED, "timestamp": "2026-01-01T00:00:00Z"}
    other = {**raw, "userId": "F10"}
    first, second = content_message_id(raw), content_message_id(raw, 2)
    assert first != second and content_message_id(raw, 1) == first
    assert content_message_id(dict(raw), 2) == second  # the same content again: the same id

    def ids_of(lines: list[dict[str, Any]]) -> list[str]:
        content_ids = ContentIds()  # one per file
        return [
            to_record(orjson.dumps(line), NOW, "f", content_ids=content_ids).event.message_id
            for line in lines
        ]

    once = ids_of([raw, other, raw, raw])
    assert once == [first, content_message_id(other), second, content_message_id(raw, 3)]
    # Re-imported in another order, the file gives the same set of ids.
    assert sorted(ids_of([raw, raw, other, raw])) == sorted(once)
    # A line that has a messageId keeps it and counts for nothing.
    named = ContentIds()
    assert (
        to_record({**raw, "messageId": "m-7"}, NOW, "f", content_ids=named).event.message_id
        == "m-7"
    )
    assert to_record(raw, NOW, "f", content_ids=named).event.message_id == first


# --- dead-letter retries --------------------------------------------------------


def _letter(letter_id: int, body: bytes) -> deadletters.DeadLetter:
    return deadletters.DeadLetter(letter_id, NOW, "web", "batch", "why", body, "pending")


def test_retry_ids_derive_from_the_letter_and_the_item_index() -> None:
    body = orjson.dumps({"batch": [{"type": "track", **VIEWED}, {"type": "track", **VIEWED}]})
    items, _ = collector.parse("batch", body)

    def ids_of(letter: deadletters.DeadLetter) -> list[str]:
        ids = deadletters.retry_message_ids(letter)
        return [
            r.event.message_id
            for r in collector.to_records(
                items, letter.received_at, "web", server_received_at=True, message_ids=ids
            )
        ]

    once, twice = ids_of(_letter(4, body)), ids_of(_letter(4, body))
    assert once == twice and len(set(once)) == 2
    assert all(i.startswith("dl-4-") for i in once)
    assert not set(ids_of(_letter(5, body))) & set(once)


# --- time bounds ----------------------------------------------------------------


def _event(timestamp: datetime, received_at: datetime) -> Any:
    return decode(
        stamp(
            {"type": "page", "anonymousId": "a", "messageId": "m"}
            | {"timestamp": _iso(timestamp), "receivedAt": _iso(received_at)},
            received_at,
        )
    )


def test_an_event_may_be_dated_at_most_24_hours_after_its_receipt() -> None:
    check_event_times(_event(NOW + MAX_AHEAD, NOW), NOW)
    with pytest.raises(EventValidationError) as caught:
        check_event_times(_event(NOW + MAX_AHEAD + timedelta(microseconds=1), NOW), NOW)
    assert [p.path for p in caught.value.problems] == ["timestamp"]
    assert "after receivedAt" in str(caught.value)


def test_an_import_may_not_claim_to_be_received_in_the_future() -> None:
    later = NOW + MAX_AHEAD + timedelta(seconds=1)
    with pytest.raises(EventValidationError) as caught:
        check_event_times(_event(later, later), NOW)
    assert [p.path for p in caught.value.problems] == ["receivedAt"]
    check_event_times(_event(NOW + MAX_AHEAD, NOW + MAX_AHEAD), NOW)


def test_events_far_in_the_past_are_accepted() -> None:
    long_ago = datetime(1999, 1, 1, tzinfo=UTC)
    check_event_times(_event(long_ago, long_ago), NOW)
    check_event_times(_event(long_ago, NOW), NOW)


def test_2099_at_the_collector_is_refused_naming_the_field() -> None:
    item = {"type": "track", **VIEWED, "timestamp": "2099-01-01T00:00:00Z"}
    with pytest.raises(collector.RequestRejected) as caught:
        collector.to_records([item], NOW, "web", single=True, server_received_at=True)
    assert [(p.index, p.field) for p in caught.value.problems] == [(None, "timestamp")]
    assert caught.value.status == 400


def test_a_fast_client_clock_is_corrected_not_refused() -> None:
    # The device clock is a year ahead, but it says so through sentAt.
    ahead = NOW + timedelta(days=365)
    item = {
        "type": "track",
        **VIEWED,
        "originalTimestamp": _iso(ahead - timedelta(seconds=5)),
        "sentAt": _iso(ahead),
    }
    records = collector.to_records([item], NOW, "web", server_received_at=True)
    assert records[0].event.timestamp == NOW - timedelta(seconds=5)


def test_moves_clock_is_the_same_bound() -> None:
    assert moves_clock(NOW + MAX_AHEAD, NOW)
    assert not moves_clock(NOW + MAX_AHEAD + timedelta(microseconds=1), NOW)
    assert moves_clock(NOW - timedelta(days=9000), NOW)


# --- strings stay strings -------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "body", "field"),
    [
        ("track", {"userId": "u", "event": 42}, "event"),
        ("track", {"userId": 123, "event": "Clicked"}, "userId"),
        ("page", {"anonymousId": 1.5}, "anonymousId"),
        ("page", {"anonymousId": "a", "name": 7}, "name"),
        ("screen", {"anonymousId": "a", "name": False}, "name"),
        ("track", {"userId": "u", "event": "Clicked", "messageId": 99}, "messageId"),
        ("group", {"userId": "u", "groupId": 5}, "groupId"),
        ("alias", {"userId": "u", "previousId": 6}, "previousId"),
        ("track", {"userId": "u\x00v", "event": "Clicked"}, "userId"),
        ("track", {"userId": "u", "event": "Clicked\x00"}, "event"),
        ("page", {"anonymousId": "a", "name": "Home\x00"}, "name"),
        ("track", {"userId": "u", "event": "Clicked", "messageId": "m\x00"}, "messageId"),
    ],
)
def test_spec_strings_are_a_400_naming_the_field(
    endpoint: str, body: dict[str, Any], field: str
) -> None:
    items, _ = collector.parse(endpoint, orjson.dumps(body))
    with pytest.raises(collector.RequestRejected) as caught:
        collector.to_records(items, NOW, "web", single=True, server_received_at=True)
    assert [p.field for p in caught.value.problems] == [field]
    assert caught.value.status == 400


def test_a_type_that_is_not_a_string_is_named() -> None:
    items, _ = collector.parse("batch", orjson.dumps({"batch": [{"type": 1, "userId": "u"}]}))
    with pytest.raises(collector.RequestRejected) as caught:
        collector.to_records(items, NOW, "web")
    assert [(p.index, p.field) for p in caught.value.problems] == [(0, "type")]


# --- gzip -----------------------------------------------------------------------


def test_gzip_with_trailing_junk_is_refused() -> None:
    body = b'{"userId": "u", "event": "Clicked"}'
    assert collector.decompress(gzip.compress(body), "gzip") == body
    # Several gzip members are one valid body (RFC 1952).
    assert collector.decompress(gzip.compress(body[:9]) + gzip.compress(body[9:]), "gzip") == body
    for junk in (b"junk", b"\x00", b"\n"):
        with pytest.raises(collector.RequestRejected, match="trailing data") as caught:
            collector.decompress(gzip.compress(body) + junk, "gzip")
        assert caught.value.status == 400
    with pytest.raises(collector.RequestRejected, match="truncated"):
        collector.decompress(gzip.compress(body)[:-4], "gzip")
