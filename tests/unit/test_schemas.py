"""Event contracts: validation errors, limits, upcasting, stamping, JSON Schema files."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import (
    MAX_EVENT_BYTES,
    EventTooLargeError,
    EventValidationError,
    Identify,
    OrderCompleted,
    Page,
    Track,
    decode,
    decode_stored,
    dumps,
    loads,
    stamp,
)
from schemas.events import SCHEMA_VERSIONS, TYPED_EVENT_NAMES
from schemas.identifiers import normalise, parse_key
from schemas.jsonschema_files import DIRECTORY, render
from tests.factories import T0, raw_identify, raw_order, raw_page, raw_track

FIXTURES = Path(__file__).parent.parent / "fixtures"


def paths_of(error: EventValidationError) -> list[str]:
    return [p.path for p in error.problems]


def test_each_typed_event_name_decodes_to_its_model() -> None:
    for name, model in TYPED_EVENT_NAMES.items():
        assert model.model_fields["event"].annotation.__args__ == (name,)  # type: ignore[union-attr]
        assert SCHEMA_VERSIONS[name] >= 1
    event = decode(raw_order("o-1", 1200, user_id="u1"))
    assert isinstance(event, OrderCompleted)
    assert event.properties.revenue == Decimal("1200")
    assert isinstance(decode(raw_track("Wishlist Shared", {"x": 1}, user_id="u1")), Track)
    assert isinstance(decode(raw_page("/", anonymous_id="a1")), Page)


def test_error_names_the_nested_field_path_and_the_event() -> None:
    raw = raw_order(
        "o-1",
        1000,
        user_id="u1",
        message_id="m-bad",
        products=[{"product_id": "p1", "price": 1}, {"product_id": "p2", "price": "cheap"}],
    )
    with pytest.raises(EventValidationError) as caught:
        decode(raw)
    assert "properties.products[1].price" in paths_of(caught.value)
    assert "'m-bad'" in str(caught.value)


def test_an_event_needs_a_user_id_or_an_anonymous_id() -> None:
    with pytest.raises(EventValidationError, match="needs userId or anonymousId"):
        decode(raw_page("/"))


def test_unknown_type_is_named() -> None:
    with pytest.raises(EventValidationError) as caught:
        decode({**raw_page("/", anonymous_id="a"), "type": "pageview"})
    assert paths_of(caught.value) == ["type"]
    assert "'pageview'" in str(caught.value)


@pytest.mark.parametrize(
    ("field", "value", "raw"),
    [
        ("userId", 12345, raw_page("/", anonymous_id="a")),
        ("anonymousId", 1.5, raw_page("/", user_id="u")),
        ("messageId", 7, raw_page("/", anonymous_id="a")),
        ("name", 3, raw_page("/", anonymous_id="a")),
        ("event", 42, raw_track("x", user_id="u")),
        ("groupId", 9, {"type": "group", "userId": "u", "groupId": "g"}),
        ("previousId", 10, {"type": "alias", "userId": "u", "previousId": "p"}),
        ("type", 1, raw_page("/", anonymous_id="a")),
    ],
)
def test_spec_strings_are_not_coerced_from_numbers(field: str, value: Any, raw: dict) -> None:
    stamped = stamp({**raw, field: value}, T0, "m-1")
    with pytest.raises(EventValidationError) as caught:
        decode(stamped)
    assert paths_of(caught.value) == [field]
    if field != "type":
        assert "must be a string, not a number" in str(caught.value)


@pytest.mark.parametrize(
    "field", ["userId", "anonymousId", "messageId", "event", "name", "groupId", "previousId"]
)
def test_a_nul_character_in_ids_and_names_is_refused(field: str) -> None:
    raw = {
        "event": {**raw_track("Clicked", user_id="u")},
        "name": {**raw_page("/", user_id="u"), "name": "Home"},
        "groupId": {"type": "group", "userId": "u", "groupId": "g"},
        "previousId": {"type": "alias", "userId": "u", "previousId": "p"},
    }.get(field, raw_page("/", user_id="u", anonymous_id="a"))
    with pytest.raises(EventValidationError) as caught:
        decode(stamp({**raw, field: "bad\x00id"}, T0, "m-1"))
    assert paths_of(caught.value) == [field]
    assert "NUL" in str(caught.value)


def test_stored_events_of_the_former_lax_contract_still_decode() -> None:
    # Logs written before ids were strict may hold numbers or NULs: replay reads
    # them as they were read then (the stored bytes are never edited).
    stored = orjson.dumps(
        stamp({**raw_page("/", anonymous_id="a\x00b"), "userId": 12345, "name": 3}, T0, "m-9")
    )
    event = decode_stored(stored)
    assert (event.user_id, event.anonymous_id, event.name) == ("12345", "a\ufffdb", "3")
    with pytest.raises(EventValidationError, match="needs userId or anonymousId"):
        decode_stored(orjson.dumps(stamp(raw_page("/"), T0, "m-10")))


def test_size_limit_applies_to_parsing_and_storing() -> None:
    big = raw_track("Note", {"text": "x" * MAX_EVENT_BYTES}, user_id="u1")
    with pytest.raises(EventTooLargeError, match="over the 32768-byte limit"):
        loads(orjson.dumps(big))
    with pytest.raises(EventTooLargeError):
        dumps(big)


def test_not_json_and_not_an_object_are_clear_errors() -> None:
    with pytest.raises(EventValidationError, match="not valid JSON"):
        loads(b"{nope")
    with pytest.raises(EventValidationError, match="must be a JSON object"):
        loads(b"[1, 2]")


def test_placeholder_traits_are_absent_but_a_wrong_email_is_an_error() -> None:
    event = decode(raw_identify(user_id="u1", traits={"email": "undefined", "phone": ""}))
    assert isinstance(event, Identify)
    assert event.traits.email is None
    assert event.traits.phone is None
    with pytest.raises(EventValidationError) as caught:
        decode(raw_identify(user_id="u1", traits={"email": "hanako at example"}))
    assert paths_of(caught.value) == ["traits.email"]


def test_order_completed_v1_fixture_is_upcast_and_the_raw_is_not_edited() -> None:
    raw = orjson.loads((FIXTURES / "order_completed_v1.json").read_bytes())
    before = copy.deepcopy(raw)
    event = decode(raw)
    assert isinstance(event, OrderCompleted)
    assert event.schema_version == 2
    assert event.properties.order_id == "A-1001"
    assert event.properties.revenue == Decimal("5400")
    assert event.properties.products[0].product_id == "TEA-STARTER"
    assert raw == before  # stored events are never edited


def test_current_version_order_without_version_is_not_upcast() -> None:
    raw = raw_order("o-9", 300, user_id="u1")
    assert decode(raw).schema_version == SCHEMA_VERSIONS["Order Completed"] == 2


def test_unsupported_future_version_is_reported() -> None:
    raw = {**raw_order("o-9", 300, user_id="u1"), "schemaVersion": 0}
    with pytest.raises(EventValidationError, match="schemaVersion"):
        decode(raw)


def test_stamp_corrects_the_clock_skew_the_segment_way() -> None:
    received = datetime(2026, 5, 1, 12, 0, 10, tzinfo=UTC)
    raw = {
        "type": "page",
        "anonymousId": "a1",
        "messageId": "m1",
        "originalTimestamp": "2026-05-01T11:00:00Z",  # client clock one hour behind...
        "sentAt": "2026-05-01T11:00:05Z",  # ...sent five seconds after the event
    }
    stamped = stamp(raw, received)
    event = decode(stamped)
    assert event.timestamp == received - timedelta(seconds=5)
    assert event.received_at == received


def test_explicit_timestamp_is_kept_and_missing_message_id_is_a_content_hash() -> None:
    raw = {"type": "page", "anonymousId": "a1", "timestamp": "2025-01-01T00:00:00Z"}
    first = stamp(raw, datetime(2026, 1, 1, tzinfo=UTC))
    second = stamp(raw, datetime(2026, 2, 2, tzinfo=UTC))
    assert first["timestamp"] == "2025-01-01T00:00:00Z"
    assert first["messageId"] == second["messageId"]
    assert first["messageId"].startswith("auto-")
    other = stamp({**raw, "anonymousId": "a2"}, datetime(2026, 1, 1, tzinfo=UTC))
    assert other["messageId"] != first["messageId"]


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("email", "  Hanako@Example.JP ", "hanako@example.jp"),
        ("email", "test@example.com", None),
        ("email", "not-an-email", None),
        ("phone", "090-1234-5678", "+819012345678"),
        ("phone", "+81 90 1234 5678", "+819012345678"),
        ("phone", "１２", None),
        ("user_id", "null", None),
        ("user_id", " u1 ", "u1"),
        ("anonymous_id", "undefined", None),
    ],
)
def test_identifier_normalisation(kind: str, value: str, expected: str | None) -> None:
    assert normalise(kind, value) == expected


def test_parse_key_errors_name_the_problem() -> None:
    assert parse_key("Email: Hanako@Example.jp") == ("email", "hanako@example.jp")
    with pytest.raises(ValueError, match="kind:value"):
        parse_key("hanako@example.jp")
    with pytest.raises(ValueError, match="unknown identifier kind 'fax'"):
        parse_key("fax:123")
    with pytest.raises(ValueError, match="not a usable identifier"):
        parse_key("user_id:null")


def test_checked_in_json_schemas_are_current() -> None:
    rendered = render()
    on_disk = {p.name: p.read_bytes() for p in DIRECTORY.glob("*.schema.json")}
    stale = sorted(n for n in rendered.keys() | on_disk.keys() if rendered.get(n) != on_disk.get(n))
    assert not stale, f"run `python -m schemas.jsonschema_files`; stale: {stale}"


texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=100, deadline=None)
@given(
    # Ids are refused with a NUL (test_a_nul_character_in_ids_and_names_is_refused) and
    # with a lone surrogate (not text UTF-8 can carry, so no client can send one).
    user_id=st.text(
        st.characters(exclude_characters="\x00", exclude_categories=("Cs",)),
        min_size=1,
        max_size=30,
    ).filter(lambda s: s.strip() == s and s),
    revenue=st.decimals(min_value=0, max_value=10**9, places=2),
    quantity=st.integers(1, 50),
    name=texts,
    extra=st.dictionaries(st.sampled_from(["gift", "note", "channel"]), texts, max_size=3),
)
def test_serialise_then_parse_round_trips(
    user_id: str, revenue: Decimal, quantity: int, name: str, extra: dict[str, str]
) -> None:
    products = [{"product_id": "p1", "name": name, "price": str(revenue), "quantity": quantity}]
    raw = raw_order("o-1", float(revenue), user_id=user_id, products=products)
    raw["properties"].update(extra)
    raw["properties"]["revenue"] = str(revenue)
    event = decode(raw)
    wire = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    again = decode(loads(dumps(wire)))
    assert again == event
