"""The Snowplow tracker protocol → Segment-spec events, on hand-made tp2 bodies.

Each mapped event is stamped and decoded through the platform's own contract
(``schemas.decode``), so "maps to a page" means the folds see a ``Page``.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
import pytest

from cdp.services import collector
from connectors.sources import snowplow
from connectors.sources.snowplow import PayloadRejected
from schemas import AnyEvent, OrderCompleted, decode, stamp
from schemas.envelope import Page, Screen, Track

RECEIVED = datetime(2026, 12, 5, 10, 0, tzinfo=UTC)
DTM = "1764928800000"  # 2025-12-05T10:00:00Z
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
BASE: dict[str, str] = {"aid": "shop", "p": "web", "tv": "js-4.10.1", "tna": "sp"}


def body(*items: Any, schema: str = PAYLOAD_DATA) -> bytes:
    return orjson.dumps({"schema": schema, "data": list(items)})


def item(
    e: str, eid: str = "9a1d2c4e-0000-4000-8000-000000000001", **fields: str
) -> dict[str, str]:
    return {**BASE, "e": e, "eid": eid, "duid": "duid-1", "dtm": DTM, **fields}


def mapped(*items: Any) -> list[dict[str, Any]]:
    return snowplow.to_events(snowplow.payload_items(body(*items)))


def decoded(raw: dict[str, Any]) -> AnyEvent:
    return decode(stamp(raw, RECEIVED))


def b64url(value: Any, padding: bool) -> str:
    text = base64.urlsafe_b64encode(orjson.dumps(value)).decode()
    return text if padding else text.rstrip("=")


def problems(*items: Any, schema: str = PAYLOAD_DATA) -> list[str]:
    with pytest.raises(PayloadRejected) as caught:
        snowplow.to_events(snowplow.payload_items(body(*items, schema=schema)))
    return [str(p) for p in caught.value.problems]


def test_page_view_is_a_segment_page_with_page_context_and_campaign() -> None:
    url = "https://shop.example.jp/tea/matcha?utm_source=news&utm_medium=email&utm_campaign=spring"
    [raw] = mapped(
        item("pv", url=url, page="Matcha", refr="https://www.google.com/", res="1920x1080")
    )
    event = decoded(raw)
    assert isinstance(event, Page)
    assert event.message_id == "9a1d2c4e-0000-4000-8000-000000000001"
    assert (event.user_id, event.anonymous_id) == (None, "duid-1")
    assert event.properties == {
        "url": url,
        "path": "/tea/matcha",
        "search": "?utm_source=news&utm_medium=email&utm_campaign=spring",
        "title": "Matcha",
        "referrer": "https://www.google.com/",
    }
    assert event.context.page is not None and event.context.page.path == "/tea/matcha"
    campaign = event.context.campaign
    assert campaign is not None
    assert (campaign.source, campaign.medium, campaign.name) == ("news", "email", "spring")
    assert event.context.library is not None
    assert (event.context.library.name, event.context.library.version) == ("snowplow", "js-4.10.1")
    extra = event.context.model_extra or {}
    assert extra["screen"] == {"width": 1920, "height": 1080}
    assert extra["snowplow"]["appId"] == "shop"
    assert extra["snowplow"]["platform"] == "web"


def test_page_ping_is_a_track_with_scroll_offsets() -> None:
    [raw] = mapped(item("pp", url="https://shop.example.jp/", pp_mix="0", pp_max="10", pp_miy="-5", pp_may="800"))  # fmt: skip
    event = decoded(raw)
    assert isinstance(event, Track) and event.event == "Page Pinged"
    assert event.properties["min_y_offset"] == -5
    assert event.properties["max_y_offset"] == 800
    assert event.properties["path"] == "/"


def test_structured_event_is_a_track_named_by_its_action() -> None:
    [raw] = mapped(
        item("se", se_ca="video", se_ac="Video Played", se_la="intro", se_pr="hd", se_va="12.5")
    )
    event = decoded(raw)
    assert isinstance(event, Track) and event.event == "Video Played"
    assert event.properties == {
        "category": "video",
        "label": "intro",
        "property": "hd",
        "value": 12.5,
    }
    [raw] = mapped(item("se", se_ca="c", se_ac="a", se_va="3"))
    assert raw["properties"]["value"] == 3 and isinstance(raw["properties"]["value"], int)


ENVELOPE = {
    "schema": UNSTRUCT,
    "data": {"schema": LINK_CLICK, "data": {"targetUrl": "https://x.jp"}},
}
ENTITIES = {"schema": CONTEXTS, "data": [{"schema": WEB_PAGE, "data": {"id": "page-view-01"}}]}


@pytest.mark.parametrize(
    ("event_fields", "context_fields"),
    [
        ({"ue_pr": orjson.dumps(ENVELOPE).decode()}, {"co": orjson.dumps(ENTITIES).decode()}),
        ({"ue_px": b64url(ENVELOPE, padding=True)}, {"cx": b64url(ENTITIES, padding=True)}),
        ({"ue_px": b64url(ENVELOPE, padding=False)}, {"cx": b64url(ENTITIES, padding=False)}),
    ],
    ids=["json", "base64url-padded", "base64url-unpadded"],
)
def test_self_describing_event_with_contexts_in_every_encoding(
    event_fields: dict[str, str], context_fields: dict[str, str]
) -> None:
    [raw] = mapped(item("ue", uid="U-1", **event_fields, **context_fields))
    event = decoded(raw)
    assert isinstance(event, Track) and event.event == "link_click"
    assert event.properties == {"targetUrl": "https://x.jp"}
    assert event.user_id == "U-1"
    sp = (event.context.model_extra or {})["snowplow"]
    assert sp["eventSchema"] == LINK_CLICK
    assert sp["contexts"] == [{"schema": WEB_PAGE, "data": {"id": "page-view-01"}}]


def test_padding_needed_by_the_unpadded_forms() -> None:
    # The test above only proves something if some encodings really lose padding.
    assert b64url(ENVELOPE, padding=True) != b64url(ENVELOPE, padding=False)
    assert b64url(ENTITIES, padding=True) != b64url(ENTITIES, padding=False)


def test_a_screen_view_schema_becomes_a_segment_screen() -> None:
    screen = {
        "schema": UNSTRUCT,
        "data": {
            "schema": "iglu:com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0",
            "data": {"name": "Cart", "id": "5d79770b-015b-4af8-8c91-b2ed6faf4b1e"},
        },
    }
    [raw] = mapped(item("ue", ue_px=b64url(screen, padding=False)))
    event = decoded(raw)
    assert isinstance(event, Screen) and event.name == "Cart"


def test_transaction_is_order_completed_and_items_are_their_own_events() -> None:
    tr = item("tr", eid="e-tr", uid="U-1", tr_id="A-1", tr_tt="3480.50", tr_tx="316", tr_sh="0", tr_cu="jpy", tr_af="web", tr_ci="Tokyo")  # fmt: skip
    ti = item("ti", eid="e-ti", uid="U-1", ti_id="A-1", ti_sk="TEA-01", ti_nm="Matcha", ti_ca="tea", ti_pr="1200", ti_qu="2", ti_cu="JPY")  # fmt: skip
    order, line = (decoded(raw) for raw in mapped(tr, ti))
    assert isinstance(order, OrderCompleted)
    props = order.properties
    assert (props.order_id, props.revenue, props.tax, props.shipping, props.currency) == (
        "A-1",
        Decimal("3480.50"),
        Decimal("316"),
        Decimal("0"),
        "JPY",
    )
    assert props.products == ()  # items arrive as their own events (module docstring)
    assert (props.model_extra or {})["city"] == "Tokyo"
    assert isinstance(line, Track) and line.event == "Order Item Purchased"
    assert line.properties == {
        "order_id": "A-1",
        "product_id": "TEA-01",
        "sku": "TEA-01",
        "name": "Matcha",
        "category": "tea",
        "price": "1200",
        "quantity": 2,
        "currency": "JPY",
    }
    assert (order.message_id, line.message_id) == ("e-tr", "e-ti")


def test_identity_uid_duid_and_network_user_id() -> None:
    [both, network_only, tracker_network] = mapped(
        item("pv", uid="U-9", nuid="n-1"),
        {**BASE, "e": "pv", "eid": "e2", "nuid": "n-2"},
        {**BASE, "e": "pv", "eid": "e3", "nuid": "n-3", "tnuid": "t-3"},
    )
    assert (both["userId"], both["anonymousId"]) == ("U-9", "duid-1")
    assert both["context"]["snowplow"]["networkUserId"] == "n-1"
    assert "userId" not in network_only and network_only["anonymousId"] == "n-2"
    assert tracker_network["anonymousId"] == "t-3"  # the tracker's own overrides the cookie's
    assert problems({**BASE, "e": "pv", "eid": "e4"}) == [
        "data[0].uid: an event needs uid, duid or a network user id (tnuid/nuid)"
    ]


def test_timestamps_become_the_segment_clock_correction() -> None:
    dtm = 1764928800000
    [raw] = mapped(item("pv", dtm=str(dtm), stm=str(dtm + 5000)))
    assert raw["originalTimestamp"] == "2025-12-05T10:00:00.000Z"
    assert raw["sentAt"] == "2025-12-05T10:00:05.000Z"
    # The device clock ran 5 s between creating and sending: the event happened
    # 5 s before the server received it, whatever the device clock said.
    assert decoded(raw).timestamp == RECEIVED - timedelta(seconds=5)
    [raw] = mapped(item("pv", ttm="1700000000123", stm=str(dtm + 5000)))
    assert decoded(raw).timestamp == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)


def test_an_event_without_eid_is_left_for_the_door_to_number() -> None:
    without = {k: v for k, v in item("pv").items() if k != "eid"}
    events = snowplow.to_events([without, without])
    assert all("messageId" not in e for e in events)
    # The door (cdp.collector.to_records) gives each its own id, as Segment does.
    first, second = collector.to_records(events, RECEIVED, "web", server_received_at=True)
    assert first.message_id != second.message_id


def test_unknown_parameters_are_kept_under_context_snowplow() -> None:
    [raw] = mapped(item("pv", cookie="1", cs="UTF-8", vp="800x600", f_pdf="1", vid="3", sid="s-1"))
    sp = raw["context"]["snowplow"]
    assert sp["params"] == {"cookie": "1", "cs": "UTF-8", "vp": "800x600", "f_pdf": "1"}
    assert (sp["sessionIndex"], sp["sessionId"]) == (3, "s-1")


# ------------------------------------------------------------------ errors
def test_non_string_values_are_refused_naming_each_field() -> None:
    bad: dict[str, Any] = {**item("se", se_ca="c", se_ac="a"), "se_va": 5, "dtm": 1764928800000}
    assert problems(item("pv"), bad) == [
        "data[1].dtm: must be a string (every tracker value is one), not int",
        "data[1].se_va: must be a string (every tracker value is one), not int",
    ]
    assert problems(item("pv", uid=None)) == [  # type: ignore[arg-type]
        "data[0].uid: must be a string (every tracker value is one), not null"
    ]


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"e": "xx"}, "data[0].e: must be one of pv, pp, se, ue, tr, ti, not 'xx'"),
        ({"e": ""}, "data[0].e: is required"),
        ({"aid": ""}, "data[0].aid: is required"),
        ({"e": "se", "se_ac": "a"}, "data[0].se_ca: is required"),
        ({"e": "se", "se_ca": "c"}, "data[0].se_ac: is required"),
        ({"e": "se", "se_ca": "c", "se_ac": "a", "se_va": "NaN"}, "data[0].se_va: must be a finite number, not 'NaN'"),
        ({"e": "tr", "tr_tt": "1"}, "data[0].tr_id: is required"),
        ({"e": "tr", "tr_id": "o"}, "data[0].tr_tt: is required"),
        ({"e": "tr", "tr_id": "o", "tr_tt": "-1"}, "data[0].tr_tt: must be a non-negative decimal number, not '-1'"),
        ({"e": "tr", "tr_id": "o", "tr_tt": "1.23456"}, "data[0].tr_tt: must have at most 14 digits before the point and 4 after it, not '1.23456'"),
        ({"e": "tr", "tr_id": "o", "tr_tt": "1", "tr_cu": "円"}, "data[0].tr_cu: must be a 3-letter ISO 4217 code, not '円'"),
        ({"e": "ti", "ti_id": "o", "ti_sk": "s", "ti_pr": "1"}, "data[0].ti_qu: is required"),
        ({"e": "ti", "ti_id": "o", "ti_sk": "s", "ti_pr": "1", "ti_qu": "0"}, "data[0].ti_qu: must be an integer of at least 1, not '0'"),
        ({"e": "ue"}, "data[0].ue_pr: a self-describing event needs ue_pr (JSON) or ue_px (base64url)"),
        ({"e": "ue", "ue_px": "%%%"}, "data[0].ue_px: is not base64url (RFC 4648 §5) encoded UTF-8 JSON"),
        ({"e": "ue", "ue_pr": "{"}, "data[0].ue_pr: is not valid JSON (unexpected end of data: line 1 column 2 (char 1))"),
        ({"dtm": "yesterday"}, "data[0].dtm: must be epoch milliseconds (digits), not 'yesterday'"),
        ({"stm": "999999999999999"}, "data[0].stm: 999999999999999 ms is after the year 9999"),
        ({"eid": "x" * 201}, "data[0].eid: must be at most 200 characters"),
    ],
)  # fmt: skip
def test_missing_and_malformed_fields_are_named(fields: dict[str, str], expected: str) -> None:
    assert problems({**item("pv"), **fields}) == [expected]


def test_unknown_schemas_are_refused_naming_where() -> None:
    with pytest.raises(PayloadRejected, match=r"^schema: must be iglu:.*payload_data"):
        snowplow.payload_items(body(item("pv"), schema=PAYLOAD_DATA.replace("1-0-4", "2-0-0")))
    wrong_envelope = {**ENVELOPE, "schema": "iglu:com.acme/unstruct_event/jsonschema/1-0-0"}
    assert problems(item("ue", ue_pr=orjson.dumps(wrong_envelope).decode())) == [
        "data[0].ue_pr.schema: must be "
        "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-N, "
        "not 'iglu:com.acme/unstruct_event/jsonschema/1-0-0'"
    ]
    not_iglu = {**ENVELOPE, "data": {"schema": "link_click", "data": {}}}
    assert problems(item("ue", ue_px=b64url(not_iglu, padding=False))) == [
        "data[0].ue_px.data.schema: must be an iglu: schema URI, not 'link_click'"
    ]
    wrong_contexts = {**ENTITIES, "schema": CONTEXTS.replace("1-0-1", "2-0-0")}
    [problem] = problems(item("pv", cx=b64url(wrong_contexts, padding=False)))
    assert problem.startswith("data[0].cx.schema: must be ")
    bad_entity = {"schema": CONTEXTS, "data": [{"schema": WEB_PAGE, "data": "x"}, 5]}
    assert problems(item("pv", co=orjson.dumps(bad_entity).decode())) == [
        "data[0].co.data[0].data: must be a JSON object",
        'data[0].co.data[1]: must be a self-describing JSON {"schema": ..., "data": ...}',
    ]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"not json", "body is not valid JSON"),
        (b"[]", "body must be a payload_data JSON object"),
        (orjson.dumps({"schema": PAYLOAD_DATA, "data": []}), "data: must be a non-empty list"),
        (orjson.dumps({"data": [{}]}), "schema: must be"),
    ],
)
def test_bodies_that_are_not_payload_data(raw: bytes, expected: str) -> None:
    with pytest.raises(PayloadRejected, match=expected):
        snowplow.payload_items(raw)


def test_every_bad_item_is_reported_at_once() -> None:
    assert problems(item("pv"), "pv", item("se")) == [
        "data[1]: an event must be a JSON object",
        "data[2].se_ca: is required",
        "data[2].se_ac: is required",
    ]


def test_app_ids_are_found_for_authentication_even_in_a_bad_body() -> None:
    items = [item("pv"), {**item("pv"), "aid": "other"}, {"aid": 5}, "x", item("pp")]
    assert snowplow.app_ids(items) == ["shop", "other"]
    bad_schema = body(item("pv"), schema="nope")
    assert snowplow.loose_app_ids(bad_schema) == ["shop"]
    assert snowplow.loose_app_ids(b"\xff") == []


# --------------------------------------------------------------------- GET
def test_the_pixel_querystring_maps_like_a_post_item() -> None:
    params = [("e", "se"), ("aid", "shop"), ("duid", "d"), ("se_ca", "email"), ("se_ac", "Opened"), ("eid", "px-1")]  # fmt: skip
    event = decoded(snowplow.query_event(params))
    assert isinstance(event, Track) and event.event == "Opened" and event.message_id == "px-1"
    with pytest.raises(PayloadRejected, match=r"^e: is given more than once$"):
        snowplow.query_event([*params, ("e", "pv")])
    with pytest.raises(PayloadRejected, match=r"^se_ac: is required$"):
        snowplow.query_event([p for p in params if p[0] != "se_ac"])
