"""The real ``@snowplow/browser-tracker`` bundle in headless Chromium, sending to ``cdp serve``.

A shop page on one loopback origin runs the tracker with ``collectorUrl`` set
to ``cdp serve`` on another: page view, structured event and self-describing
event with a custom context go out as ``POST /com.snowplowanalytics.snowplow/tp2``
(preflighted: the tracker sends JSON with credentials), are acknowledged, and
land in the log with the tracker's event ids; the tracker's domain user id is
linked to the user id set after the page view. Run once with base64url
(the tracker's default) and once with plain JSON ``ue_pr``/``co``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.browser.conftest import CdpServer

pytestmark = pytest.mark.browser

SITE = Path(__file__).parent  # the page and the vendored bundle, served as they are
APP_ID = "tea-shop"


def run_page(browser: Any, origin: str, server: CdpServer, base64: bool) -> Any:
    """Open the Snowplow page on ``origin`` and wait for what its script reports."""
    fragment = f"collector={server.url}&appId={APP_ID}&base64={'yes' if base64 else 'no'}"
    browser.get(f"{origin}/pages/snowplow.html#{fragment}")
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.testResult.then(done, (e) => done({fatal: String(e && e.stack || e)}));"
    )
    assert "fatal" not in result, result
    return result


@pytest.mark.parametrize("base64", [True, False], ids=["base64url", "json"])
def test_the_browser_tracker_lands_page_view_struct_and_self_describing_events(
    browser: Any, page_server: Callable[[Path], str], serve_cdp: CdpServer, base64: bool
) -> None:
    shop = page_server(SITE)
    serve_cdp.add_source("shop-web", origins=[shop], snowplow_app_ids=[APP_ID])

    sent = run_page(browser, shop, serve_cdp, base64)
    # The tracker may batch: what matters is that all three were acknowledged.
    assert {a["kind"] for a in sent["answers"]} == {"success"}, sent
    assert sum(a["events"] for a in sent["answers"]) == 3, sent
    assert f"{serve_cdp.url}/com.snowplowanalytics.snowplow/tp2" in sent["resources"], sent
    duid = sent["domainUserId"]
    assert duid

    rows = serve_cdp.query(
        'SELECT type, event, anonymous_id, user_id, source, payload FROM events ORDER BY "offset"'
    )
    assert [(r[0], r[1]) for r in rows] == [
        ("page", None),
        ("track", "Video Played"),
        ("track", "link_click"),
    ]
    assert {r[4] for r in rows} == {"shop-web"}
    assert [(r[2], r[3]) for r in rows] == [(duid, None), (duid, "U-300"), (duid, "U-300")]
    page, played, clicked = (orjson.loads(r[5]) for r in rows)
    assert page["properties"]["title"] == "Matcha"
    assert page["properties"]["url"].startswith(f"{shop}/pages/snowplow.html")
    assert page["context"]["library"]["name"] == "snowplow"
    assert played["properties"] == {
        "category": "video",
        "label": "intro",
        "value": 12.5,
    }
    assert clicked["properties"] == {
        "targetUrl": "https://shop.example.jp/sale",
        "elementId": "sale",
    }
    schemas = [c["schema"] for c in clicked["context"]["snowplow"]["contexts"]]
    assert "iglu:com.example/campaign_banner/jsonschema/1-0-0" in schemas
    assert "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0" in schemas
    # Each event's id is the tracker's own event id (a UUID), so its retries dedup.
    assert all(len(event["messageId"]) == 36 for event in (page, played, clicked))

    linked = serve_cdp.query(
        "SELECT identifier, customer_id FROM identities WHERE identifier IN (?, ?)",
        [f"anonymous_id:{duid}", "user_id:U-300"],
    )
    assert len(linked) == 2 and linked[0][1] == linked[1][1], linked
