"""Snowplow trackers sending to the collector over real HTTP on loopback.

The official ``snowplow-tracker`` Python package (POST tp2 and the GET pixel)
sends to the real app under uvicorn; the events are read back from the log
and the identity graph. Hand-made requests cover retries, unknown app ids and
dead letters; the source registry's app ids are checked on disk.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from snowplow_tracker import (
    Emitter,
    PageView,
    SelfDescribing,
    SelfDescribingJson,
    StructuredEvent,
    Subject,
    Tracker,
)
from typer.testing import CliRunner

from cdp.cli import app as cli_app
from cdp.config import Settings
from cdp.errors import AuthError, ConfigError
from cdp.http.app import create_app
from cdp.http.snowplow import PIXEL_GIF, POST_PATH
from cdp.runtime.engine import Engine
from cdp.runtime.writer import GroupCommitWriter
from cdp.services import deadletters
from cdp.services.sources import SourceRegistry
from tests.loopback import serve_app

pytestmark = pytest.mark.integration

APP_ID = "shop-web"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


@dataclass
class Service:
    url: str
    port: int
    writer: GroupCommitWriter

    def call(self, fn: Any) -> Any:
        return self.writer.call(fn).result(timeout=10)

    def events(self) -> list[dict[str, Any]]:
        rows = self.call(
            lambda e: e.con.execute(
                'SELECT source, payload FROM event_log ORDER BY "offset"'
            ).fetchall()
        )
        return [{**orjson.loads(payload), "_source": source} for source, payload in rows]

    def dead_letters(self) -> list[tuple[str, str, str]]:
        return self.call(
            lambda e: e.con.execute(
                "SELECT source, endpoint, reason FROM dead_letters ORDER BY id"
            ).fetchall()
        )

    def customers(self) -> dict[str, str]:
        """identifier → customer id, after a checkpoint of the projections."""

        def read(engine: Engine) -> list[tuple[str, str]]:
            engine.checkpoint()
            return engine.con.execute(
                "SELECT identifier, customer_id FROM identity_graph WHERE identifier <> ''"
            ).fetchall()

        return dict(self.call(read))


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    settings = Settings(tmp_path / "data")
    registry = SourceRegistry(settings.data_dir)
    registry.add("web", snowplow_app_ids=[APP_ID])
    registry.add("app", snowplow_app_ids=["shop-ios"])
    writer = GroupCommitWriter(lambda: Engine.open(settings), checkpoint_every=3600)
    writer.start()
    try:
        for url in serve_app(create_app(settings, writer)):
            yield Service(url, int(url.rsplit(":", 1)[1]), writer)
    finally:
        writer.stop()


def tracker_for(service: Service, method: str, subject: Subject, failures: list[Any]) -> Tracker:
    emitter = Emitter(
        "127.0.0.1",
        protocol="http",
        port=service.port,
        method=method,  # type: ignore[arg-type]
        batch_size=50,
        on_failure=lambda sent, failed: failures.append(failed),
    )
    return Tracker("sp", emitter, subject=subject, app_id=APP_ID, encode_base64=True)


def test_the_official_python_tracker_lands_every_event_type(service: Service) -> None:
    failures: list[Any] = []
    subject = Subject().set_domain_user_id("duid-7f3a").set_network_user_id("nuid-1")
    tracker = tracker_for(service, "post", subject, failures)
    click = SelfDescribingJson(LINK_CLICK, {"targetUrl": "https://shop.example.jp/sale"})
    web_page = SelfDescribingJson(WEB_PAGE, {"id": "pv-0001"})
    ids = [
        tracker.track(PageView(page_url="https://shop.example.jp/?utm_source=news", page_title="Top")),
        tracker.track(StructuredEvent(category="video", action="Video Played", value=12.5)),
        tracker.track(SelfDescribing(click, context=[web_page])),
    ]  # fmt: skip
    subject.set_user_id("U-100")  # the visitor logs in: uid joins the browser's duid
    with warnings.catch_warnings():  # the classic ecommerce API is deprecated upstream
        warnings.simplefilter("ignore", DeprecationWarning)
        tracker.track_ecommerce_transaction(
            order_id="A-1",
            total_value=3480.5,
            currency="JPY",
            items=[{"sku": "TEA-01", "price": 1200, "quantity": 2, "name": "Matcha"}],
        )
    tracker.flush()
    assert failures == []

    events = service.events()
    kinds = [(e["type"], e.get("event")) for e in events]
    assert kinds == [
        ("page", None),
        ("track", "Video Played"),
        ("track", "link_click"),
        ("track", "Order Completed"),
        ("track", "Order Item Purchased"),
    ]
    assert [e["messageId"] for e in events[:3]] == ids
    assert {e["_source"] for e in events} == {"web"}
    page, played, clicked, order, line = events
    assert page["anonymousId"] == "duid-7f3a" and "userId" not in page
    assert page["context"]["campaign"] == {"source": "news"}
    assert page["context"]["snowplow"]["networkUserId"] == "nuid-1"
    assert played["properties"] == {"category": "video", "value": 12.5}
    assert clicked["properties"] == {"targetUrl": "https://shop.example.jp/sale"}
    assert clicked["context"]["snowplow"]["contexts"] == [
        {"schema": WEB_PAGE, "data": {"id": "pv-0001"}}
    ]
    assert (order["userId"], order["anonymousId"]) == ("U-100", "duid-7f3a")
    assert order["properties"]["order_id"] == "A-1"
    assert order["properties"]["revenue"] == "3480.5"
    assert line["properties"]["product_id"] == "TEA-01"
    assert line["properties"]["quantity"] == 2
    # Device clock correction: sentAt and originalTimestamp came from stm and dtm.
    assert all("sentAt" in e and "originalTimestamp" in e for e in events)

    customers = service.customers()
    assert customers["anonymous_id:duid-7f3a"] == customers["user_id:U-100"]


def test_the_get_pixel_of_the_python_tracker(service: Service) -> None:
    failures: list[Any] = []
    subject = Subject().set_user_id("U-200")
    tracker = tracker_for(service, "get", subject, failures)
    first = tracker.track(StructuredEvent(category="email", action="Newsletter Opened"))
    second = tracker.track(PageView(page_url="https://shop.example.jp/cart"))
    tracker.flush()
    assert failures == []
    events = service.events()
    assert [(e["messageId"], e["type"], e["userId"]) for e in events] == [
        (first, "track", "U-200"),
        (second, "page", "U-200"),
    ]
    answer = httpx.get(
        f"{service.url}/i", params={"e": "pv", "aid": APP_ID, "duid": "d-9", "eid": "px-1"}
    )
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/gif"
    assert answer.content == PIXEL_GIF


def body(*items: dict[str, str]) -> bytes:
    return orjson.dumps({"schema": PAYLOAD_DATA, "data": list(items)})


def page_view(eid: str, aid: str = APP_ID, **extra: str) -> dict[str, str]:
    return {"e": "pv", "eid": eid, "aid": aid, "duid": "d-1", "url": "https://s.jp/", **extra}


def test_a_tracker_retry_is_stored_once(service: Service) -> None:
    request = body(page_view("e-1"), page_view("e-2"))
    for _ in range(3):
        assert httpx.post(service.url + POST_PATH, content=request).status_code == 200
    assert [e["messageId"] for e in service.events()] == ["e-1", "e-2"]


def test_each_event_belongs_to_the_source_of_its_app_id(service: Service) -> None:
    answer = httpx.post(
        service.url + POST_PATH, content=body(page_view("w-1"), page_view("i-1", "shop-ios"))
    )
    assert answer.status_code == 200, answer.text
    assert [(e["messageId"], e["_source"]) for e in service.events()] == [
        ("w-1", "web"),
        ("i-1", "app"),
    ]


@pytest.mark.parametrize(
    "request_body",
    [
        body(page_view("u-1", "stranger")),
        body(page_view("u-1"), page_view("u-2", "stranger")),  # one unknown app id spoils all
        body({**page_view("u-1"), "aid": ""}),
        b"not json at all",
        orjson.dumps({"schema": "nope", "data": [page_view("u-1", "stranger")]}),
    ],
    ids=["unknown", "mixed", "empty", "not-json", "bad-schema-unknown-aid"],
)
def test_unknown_app_ids_are_refused_and_nothing_is_kept(
    service: Service, request_body: bytes
) -> None:
    answer = httpx.post(service.url + POST_PATH, content=request_body)
    assert answer.status_code == 401
    assert answer.json()["success"] is False and answer.json()["error"]
    pixel = httpx.get(f"{service.url}/i", params={"e": "pv", "aid": "stranger", "duid": "d"})
    assert pixel.status_code == 401
    assert service.events() == [] and service.dead_letters() == []


def test_a_bad_payload_from_a_known_app_id_is_a_400_and_a_dead_letter(service: Service) -> None:
    bad = {**page_view("b-1"), "e": "se", "se_va": 5}
    answer = httpx.post(service.url + POST_PATH, content=body(page_view("ok-1"), bad))  # type: ignore[arg-type]
    assert answer.status_code == 400
    reply = answer.json()
    assert "data[1].se_va: must be a string" in reply["error"]
    assert {"field": "data[1].se_ca", "reason": "is required"} in reply["errors"]
    wrong_schema = orjson.dumps({"schema": "iglu:x/y/jsonschema/1-0-0", "data": [page_view("b-2")]})
    assert httpx.post(service.url + POST_PATH, content=wrong_schema).status_code == 400
    pixel = httpx.get(f"{service.url}/i", params={"e": "zz", "aid": APP_ID, "duid": "d"})
    assert pixel.status_code == 400 and "e: must be one of" in pixel.json()["error"]
    assert service.events() == []  # all or nothing: the good item was not kept either
    letters = service.dead_letters()
    assert [(source, endpoint) for source, endpoint, _ in letters] == [
        ("web", "snowplow:tp2"),
        ("web", "snowplow:tp2"),
        ("web", "snowplow:i"),
    ]
    assert "data[1].se_va" in letters[0][2] and letters[1][2].startswith("schema: must be")


def test_a_revoked_source_refuses_its_app_ids(service: Service, tmp_path: Path) -> None:
    SourceRegistry(tmp_path / "data").revoke("web")
    answer = httpx.post(service.url + POST_PATH, content=body(page_view("r-1")))
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]
    assert service.events() == []


# ----------------------------------------------------------------- registry
def test_app_ids_are_stored_unique_and_survive_a_revoke(tmp_path: Path) -> None:
    registry = SourceRegistry(tmp_path)
    registry.add("web", snowplow_app_ids=["a", "b", "a"])
    assert [s.snowplow_app_ids for s in registry.list()] == [("a", "b")]
    with pytest.raises(ConfigError, match="'b' belongs to source 'web' already"):
        registry.add("other", snowplow_app_ids=["b"])
    with pytest.raises(ConfigError, match="printable"):
        registry.add("other", snowplow_app_ids=["tab\there"])
    assert SourceRegistry(tmp_path).source_for_app_id("b") == "web"
    registry.revoke("web")
    assert SourceRegistry(tmp_path).list()[0].snowplow_app_ids == ("a", "b")
    with pytest.raises(AuthError, match="revoked"):
        registry.source_for_app_id("a")
    registry.add("web2", snowplow_app_ids=["a"])  # a revoked source's app id can move on
    assert registry.source_for_app_id("a") == "web2"
    with pytest.raises(AuthError, match="unknown Snowplow app id"):
        registry.source_for_app_id("zzz")


def test_a_sources_file_from_before_app_ids_still_loads(tmp_path: Path) -> None:
    old = {"sources": [{"name": "web", "key_hash": "ab" * 32, "created_at": "2026-01-01"}]}
    (tmp_path / "sources.json").write_bytes(orjson.dumps(old))
    [source] = SourceRegistry(tmp_path).list()
    assert source.snowplow_app_ids == ()
    with pytest.raises(AuthError, match="unknown"):
        SourceRegistry(tmp_path).source_for_app_id("web")


def test_sources_add_takes_snowplow_app_ids_on_the_command_line(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    result = CliRunner().invoke(
        cli_app,
        ["--data-dir", data, "--json", "sources", "add", "web",
         "--snowplow-app-id", "shop-web", "--snowplow-app-id", "shop-ios"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.output)["snowplow_app_ids"] == ["shop-web", "shop-ios"]
    assert SourceRegistry(tmp_path / "data").source_for_app_id("shop-ios") == "web"
    listed = CliRunner().invoke(cli_app, ["--data-dir", data, "--json", "sources", "list"])
    assert orjson.loads(listed.output)[0]["snowplow_app_ids"] == ["shop-web", "shop-ios"]


def test_a_page_may_send_only_for_the_app_ids_its_origin_is_allowed_for(
    service: Service, tmp_path: Path
) -> None:
    registry = SourceRegistry(tmp_path / "data")
    registry.set_origins("web", add=["https://shop.example.jp"])
    registry.set_origins("app", add=["https://other.example.jp"])
    allowed = {"origin": "https://shop.example.jp"}
    answer = httpx.post(service.url + POST_PATH, content=body(page_view("c-1")), headers=allowed)
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == "https://shop.example.jp"
    # other.example.jp is allowed for the "app" source only, not for shop-web's events.
    other = {"origin": "https://other.example.jp"}
    refused = httpx.post(service.url + POST_PATH, content=body(page_view("c-2")), headers=other)
    assert refused.status_code == 403 and "not allowed for source 'web'" in refused.json()["error"]
    pixel = httpx.get(f"{service.url}/i", params=page_view("c-3"), headers=other)
    assert pixel.status_code == 403
    assert [e["messageId"] for e in service.events()] == ["c-1"]
    assert service.dead_letters() == []


def test_deadletter_retry_reruns_snowplow_letters(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    received = datetime(2026, 12, 1, tzinfo=UTC)
    with Engine.open(settings) as engine:
        # As if an earlier version had refused these: now they map.
        for endpoint, letter in (
            ("snowplow:tp2", body(page_view("dl-1"), {**page_view("dl-2"), "e": "pp"})),
            ("snowplow:i", urlencode({**page_view("dl-3"), "eid": ""}).encode()),
            ("snowplow:tp2", body({**page_view("dl-4"), "e": "zz"})),  # still bad
        ):
            deadletters.add(
                engine.con, received_at=received, source="web", endpoint=endpoint,
                reason="earlier refusal", body=letter,
            )  # fmt: skip
    data = str(tmp_path / "data")
    for expected in ({"retried": 2, "events": 3, "still_failing": 1}, {"retried": 0, "events": 0, "still_failing": 1}):  # fmt: skip
        result = CliRunner().invoke(cli_app, ["--data-dir", data, "--json", "deadletter", "retry"])
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.output) == expected
    with Engine.open(settings) as engine:
        rows = engine.con.execute(
            'SELECT message_id, type, source FROM event_log ORDER BY "offset"'
        ).fetchall()
    assert [(r[1], r[2]) for r in rows] == [("page", "web"), ("track", "web"), ("page", "web")]
    assert [r[0] for r in rows[:2]] == ["dl-1", "dl-2"]
    assert rows[2][0].startswith("dl-")  # the pixel had no eid: a retry-stable id
