"""CORS on the collector over real HTTP (uvicorn on loopback + httpx).

Preflights allowed and refused, the headers on 2xx and 4xx answers, the check
of a request's origin against the source of its write key, the analytics.js
short paths, and that routes servers call (bulk, read API) get no CORS.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cdp.config import Settings
from cdp.http.app import create_app
from cdp.runtime.engine import Engine
from cdp.runtime.writer import GroupCommitWriter
from cdp.services.sources import SourceRegistry
from tests.loopback import serve_app

pytestmark = pytest.mark.integration

SHOP = "https://shop.example.jp"
BLOG = "https://blog.example.jp"
EVIL = "https://evil.example.com"


@dataclass
class Collector:
    url: str
    keys: dict[str, str]
    registry: SourceRegistry
    writer: GroupCommitWriter[Any]

    def post(
        self,
        path: str,
        body: dict[str, Any],
        origin: str | None = None,
        key: str | None = "shop-web",
        **headers: str,
    ) -> httpx.Response:
        sent = {"content-type": "text/plain", **headers}  # what analytics.js sends
        if origin is not None:
            sent["origin"] = origin
        auth = httpx.BasicAuth(self.keys[key], "") if key else None
        return httpx.post(
            f"{self.url}{path}", content=orjson.dumps(body), headers=sent, auth=auth, timeout=10
        )

    def preflight(self, path: str, origin: str, method: str = "POST", headers: str = "") -> Any:
        sent = {"origin": origin, "access-control-request-method": method}
        if headers:
            sent["access-control-request-headers"] = headers
        return httpx.options(f"{self.url}{path}", headers=sent, timeout=10)

    def stored(self) -> list[tuple[str, str, str]]:
        rows = self.writer.call(
            lambda e: e.con.execute(
                'SELECT message_id, type, source, payload FROM event_log ORDER BY "offset"'
            ).fetchall()
        ).result(timeout=10)
        return [(r[0], r[1], r[2]) for r in rows]

    def payloads(self) -> list[dict[str, Any]]:
        rows = self.writer.call(
            lambda e: e.con.execute('SELECT payload FROM event_log ORDER BY "offset"').fetchall()
        ).result(timeout=10)
        return [orjson.loads(r[0]) for r in rows]

    def dead_letters(self) -> int:
        row = self.writer.call(
            lambda e: e.con.execute("SELECT count(*) FROM dead_letters").fetchone()
        ).result(timeout=10)
        return int(row[0])


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    settings = Settings(tmp_path / "data")
    registry = SourceRegistry(settings.data_dir)
    keys = {
        "shop-web": registry.add("shop-web", origins=[SHOP, "http://127.0.0.1:3000"]),
        "blog-web": registry.add("blog-web", origins=[BLOG]),
        "server": registry.add("server"),
    }
    writer: GroupCommitWriter[Any] = GroupCommitWriter(
        lambda: Engine.open(settings), checkpoint_every=0.2
    )
    writer.start()
    try:
        for url in serve_app(create_app(settings, writer)):
            yield Collector(url, keys, registry, writer)
    finally:
        writer.stop()


def track(message_id: str, **extra: Any) -> dict[str, Any]:
    return {"event": "Video Played", "anonymousId": "a-1", "messageId": message_id, **extra}


def vary(response: httpx.Response) -> set[str]:
    return {v.strip().lower() for v in ",".join(response.headers.get_list("vary")).split(",")}


def test_a_preflight_from_an_allowed_origin_is_answered(collector: Collector) -> None:
    answer = collector.preflight("/v1/t", SHOP, headers="authorization, content-type")
    assert answer.status_code == 204, answer.text
    assert answer.content == b""
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert set(answer.headers["access-control-allow-methods"].split(", ")) == {"GET", "POST"}
    allowed = {h.lower() for h in answer.headers["access-control-allow-headers"].split(", ")}
    assert {"content-type", "authorization", "content-encoding", "x-retry-count"} <= allowed
    assert int(answer.headers["access-control-max-age"]) > 0
    assert "origin" in vary(answer)


@pytest.mark.parametrize(
    ("path", "headers", "method", "reason"),
    [
        ("/v1/batch", "authorization", "POST", "is not allowed by any source"),
        ("/v1/t", "x-custom-header", "POST", "x-custom-header are not allowed"),
        ("/v1/t", "", "DELETE", "method 'DELETE' is not allowed"),
    ],
)
def test_a_preflight_that_asks_too_much_is_refused(
    collector: Collector, path: str, headers: str, method: str, reason: str
) -> None:
    origin = EVIL if "any source" in reason else SHOP
    answer = collector.preflight(path, origin, method=method, headers=headers)
    assert answer.status_code == 403
    body = answer.json()
    assert body["success"] is False and body["status"] == 403 and reason in body["error"]
    if origin == EVIL:  # nothing tells the browser this origin may read anything
        assert "access-control-allow-origin" not in answer.headers


def test_answers_to_an_allowed_origin_carry_cors_headers_whatever_the_status(
    collector: Collector,
) -> None:
    ok = collector.post("/v1/track", track("m-ok"), origin=SHOP)
    assert ok.status_code == 200, ok.text
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert ok.headers["access-control-allow-credentials"] == "true"
    assert "retry-after" in ok.headers["access-control-expose-headers"].lower()
    assert "origin" in vary(ok)

    bad = collector.post("/v1/track", {"event": "x"}, origin=SHOP)  # no identity: 400
    assert bad.status_code == 400
    assert bad.headers["access-control-allow-origin"] == SHOP
    assert bad.json()["errors"]

    unknown = collector.post("/v1/track", track("m-401"), origin=SHOP, key=None)
    assert unknown.status_code == 401
    assert unknown.headers["access-control-allow-origin"] == SHOP

    assert collector.stored() == [("m-ok", "track", "shop-web")]
    assert collector.dead_letters() == 1  # the 400, as for any authenticated bad request


def test_an_origin_of_another_source_is_refused_and_nothing_is_kept(
    collector: Collector,
) -> None:
    # The blog's pages may send, but not with the shop's key.
    answer = collector.post("/v1/track", track("m-blog"), origin=BLOG)
    assert answer.status_code == 403
    assert "not allowed for source 'shop-web'" in answer.json()["error"]
    assert answer.headers["access-control-allow-origin"] == BLOG  # the page can read why
    # A broken body from there is not kept as a dead letter either.
    broken = collector.post("/v1/track", {"event": 42}, origin=BLOG)
    assert broken.status_code == 403
    # A source without origins takes no browser requests at all.
    server_key = collector.post("/v1/track", track("m-srv"), origin=SHOP, key="server")
    assert server_key.status_code == 403
    assert collector.stored() == [] and collector.dead_letters() == 0


def test_a_request_from_an_origin_no_source_allows_never_reaches_a_route(
    collector: Collector,
) -> None:
    # A "simple" request (text/plain, key in the body) needs no preflight, so
    # the browser does send it: the collector refuses it itself.
    answer = collector.post(
        "/v1/t", {**track("m-evil"), "writeKey": collector.keys["shop-web"]}, origin=EVIL, key=None
    )
    assert answer.status_code == 403
    assert "access-control-allow-origin" not in answer.headers
    assert collector.stored() == [] and collector.dead_letters() == 0


def test_requests_without_origin_and_same_origin_requests_are_unaffected(
    collector: Collector,
) -> None:
    server_side = collector.post("/v1/track", track("m-srv"), key="server")
    assert server_side.status_code == 200, server_side.text
    assert "access-control-allow-origin" not in server_side.headers
    # A page served by the collector itself (e.g. /docs) is not cross-origin.
    same = collector.post("/v1/track", track("m-same"), origin=collector.url, key="server")
    assert same.status_code == 200, same.text
    assert [m for m, _, _ in collector.stored()] == ["m-srv", "m-same"]


def test_a_wildcard_allows_any_origin_without_credentials(collector: Collector) -> None:
    key = collector.registry.add("landing", origins=["*"])
    collector.keys["landing"] = key
    answer = collector.post("/v1/track", track("m-any"), origin=EVIL, key="landing")
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "access-control-allow-credentials" not in answer.headers
    preflight = collector.preflight("/v1/t", EVIL, headers="authorization")
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "*"
    # A named origin is still echoed with credentials.
    named = collector.preflight("/v1/t", SHOP, headers="authorization")
    assert named.headers["access-control-allow-origin"] == SHOP
    assert named.headers["access-control-allow-credentials"] == "true"


def test_origin_changes_and_revocations_apply_to_a_running_server(
    collector: Collector,
) -> None:
    collector.registry.set_origins("shop-web", add=[EVIL])
    assert collector.post("/v1/track", track("m-1"), origin=EVIL).status_code == 200
    collector.registry.set_origins("shop-web", remove=[EVIL])
    assert collector.post("/v1/track", track("m-2"), origin=EVIL).status_code == 403
    collector.registry.revoke("blog-web")  # a revoked source's origins allow nothing
    assert collector.preflight("/v1/t", BLOG).status_code == 403
    assert [m for m, _, _ in collector.stored()] == ["m-1"]


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        ("/v1/t", track("m-t"), "track"),
        ("/v1/p", {"anonymousId": "a-1", "messageId": "m-p", "name": "Home"}, "page"),
        ("/v1/i", {"userId": "u-1", "anonymousId": "a-1", "messageId": "m-i"}, "identify"),
        ("/v1/g", {"userId": "u-1", "groupId": "g-1", "messageId": "m-g"}, "group"),
        ("/v1/a", {"userId": "u-1", "previousId": "a-1", "messageId": "m-a"}, "alias"),
        ("/v1/s", {"anonymousId": "a-1", "messageId": "m-s", "name": "Cart"}, "screen"),
    ],
)
def test_analytics_js_short_paths_are_the_long_ones(
    collector: Collector, path: str, body: dict[str, Any], expected: str
) -> None:
    answer = collector.post(path, {**body, "type": expected}, origin=SHOP)
    assert answer.status_code == 200, answer.text
    assert answer.headers["access-control-allow-origin"] == SHOP
    assert collector.stored() == [(body["messageId"], expected, "shop-web")]
    mismatched = collector.post(path, {**body, "messageId": "m-x", "type": "nonsense"})
    assert mismatched.status_code == 400 and f"/v1/{expected}" in mismatched.json()["error"]


def test_an_analytics_js_batch_keeps_no_write_key(collector: Collector) -> None:
    # What the batching dispatcher posts to /b: the key at the top and in every item.
    key = collector.keys["shop-web"]
    batch = {
        "writeKey": key,
        "sentAt": "2026-05-01T00:00:01Z",
        "batch": [
            {**track("m-b1"), "type": "track", "writeKey": key, "_metadata": {"bundled": []}},
            {"type": "page", "anonymousId": "a-1", "messageId": "m-b2", "writeKey": key},
        ],
    }
    answer = collector.post("/v1/b", batch, origin="http://127.0.0.1:3000", key=None)
    assert answer.status_code == 200, answer.text
    assert [m for m, _, _ in collector.stored()] == ["m-b1", "m-b2"]
    assert all("writeKey" not in payload for payload in collector.payloads())


@pytest.mark.parametrize("path", ["/v1/bulk", "/v1/profiles/email:a%40b.jp", "/health"])
def test_routes_servers_call_get_no_cors(collector: Collector, path: str) -> None:
    answer = collector.preflight(path, SHOP)
    assert answer.status_code in (404, 405), answer.text
    assert "access-control-allow-origin" not in answer.headers


def test_snowplow_paths_are_covered_by_prefix(collector: Collector) -> None:
    # The Snowplow routes are another part's work; their CORS is path based.
    answer = collector.preflight(
        "/com.snowplowanalytics.snowplow/tp2", SHOP, headers="content-type"
    )
    assert answer.status_code == 204
    assert answer.headers["access-control-allow-origin"] == SHOP
    refused = collector.preflight("/com.snowplowanalytics.snowplow/tp2", EVIL)
    assert refused.status_code == 403
