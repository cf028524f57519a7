"""Identity from the log's columns (``identity.apply_envelope``, used by the grouped
catch-up in ``cdp.runtime.grouped``) decides exactly what ``identity.apply`` decides.

An event is resolved from its columns only when ``envelope_only`` says it links
nothing beyond its envelope's ids; the grouped path decides "has context
traits" from the stored JSON text, so that test is bound here too.
"""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from projections import identity
from projections.identity.extract import LINKING_TAGS, envelope_keys
from schemas import EventValidationError, decode, dumps
from schemas.events import tag_of
from tests.factories import at_days, raw_identify, raw_page, raw_track

USERS = st.sampled_from(["u-1", "u-2", " u-1 ", "U-1", "null", "0"])
ANONS = st.sampled_from(["a-1", "a-2", "a-3", "undefined", ""])
EMAILS = st.sampled_from(["p1@example.jp", "P1@Example.jp", "test@example.com", "x"])


@st.composite
def raw_events(draw: st.DrawFn) -> dict[str, Any]:
    ids: dict[str, Any] = {}
    if draw(st.booleans()):
        ids["user_id"] = draw(USERS)
    if draw(st.integers(0, 3)) or not ids:
        ids["anonymous_id"] = draw(ANONS)
    if draw(st.booleans()):
        ids["context"] = {"traits": {"email": draw(EMAILS)}}
    at = at_days(draw(st.integers(0, 30)))
    kind = draw(st.sampled_from(["page", "track", "identify", "form", "message", "alias"]))
    if kind == "page":
        return raw_page("/", at=at, **ids)
    if kind == "track":
        return raw_track("Product Viewed", {"product_id": "p-1"}, at=at, **ids)
    if kind == "identify":
        return raw_identify(traits={"email": draw(EMAILS)}, at=at, **ids)
    if kind == "form":
        return raw_track(
            "Form Submitted", {"form_id": "f", "fields": {"email": "p1@example.jp"}}, at=at, **ids
        )
    if kind == "message":
        props = {"channel": "line", "channel_user_id": "U1", "text": "hi"}
        return raw_track("Message Received", props, at=at, **ids)
    return {**raw_identify(at=at, **ids), "type": "alias", "previousId": draw(ANONS) or "a-9"}


def test_the_linking_tags_are_the_linking_event_types() -> None:
    assert {
        "identify",
        "alias",
        "Form Submitted",
        "Message Received",
        "Message Sent",
    } == LINKING_TAGS


@settings(max_examples=300)
@given(history=st.lists(raw_events(), min_size=1, max_size=30))
@example(  # a page that merges two customers: rare in random logs
    history=[
        raw_page("/", anonymous_id="a-1"),
        raw_page("/", user_id="u-1"),
        raw_page("/", user_id="u-1", anonymous_id="a-1"),
    ]
)
def test_columns_decide_as_the_decoded_event(history: list[dict[str, Any]]) -> None:
    by_event, by_columns = identity.IdentityGraph(), identity.IdentityGraph()
    for offset, raw in enumerate(history):
        try:
            event = decode(raw)
        except EventValidationError:  # an id the door refuses: never in a log
            continue
        payload = dumps(raw)
        traits = b'"traits"' in payload
        assert traits or event.context.traits is None  # the grouped path's text test is safe
        expected = identity.apply(by_event, event, offset)
        tag = tag_of(event)
        assert tag is not None
        if identity.envelope_only(tag, traits):
            assert identity.identifiers_of(event) == envelope_keys(
                event.user_id, event.anonymous_id
            )
            got = identity.apply_envelope(
                by_columns,
                event.user_id,
                event.anonymous_id,
                event.message_id,
                event.timestamp,
                offset,
            )
        else:
            got = identity.apply(by_columns, event, offset)
        assert got == expected
    assert by_columns.to_rows() == by_event.to_rows()
