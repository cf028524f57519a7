"""analytics.js (the real ``@segment/analytics-next`` bundle) in headless Chromium.

A shop page on one loopback origin sends to ``cdp serve`` on another, as a
shop's pages send to a collector on its own host: the browser preflights,
analytics.js posts to the short paths (``/v1/p``, ``/v1/i``, ``/v1/t``, and
``/v1/b`` when batching), the events land in the log with the browser's
anonymous id linked to the user on identify. A page on an origin no source
allows is refused by the browser's CORS check and nothing of it is stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import CdpServer, requested_urls

pytestmark = pytest.mark.browser

SITE = Path(__file__).parent  # the page and the vendored bundle, served as they are


def run_page(browser: Any, origin: str, server: CdpServer, key: str, mode: str) -> Any:
    """Open the test page on ``origin`` and wait for what its script reports."""
    api_host = server.url.removeprefix("http://") + "/v1"
    # The query makes each visit a new page load (a new fragment alone would not).
    page = f"{origin}/pages/segment.html?visit={mode}"
    browser.get(f"{page}#apiHost={api_host}&writeKey={key}&mode={mode}")
    result = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.testResult.then(done, (e) => done({fatal: String(e && e.stack || e)}));"
    )
    assert "fatal" not in result, result
    return result


def test_analytics_js_on_an_allowed_origin_reaches_the_log_and_others_are_refused(
    browser: Any, page_server: Callable[[Path], str], serve_cdp: CdpServer
) -> None:
    shop = page_server(SITE)
    elsewhere = page_server(SITE)  # another port: another origin
    key = serve_cdp.add_source("shop-web", origins=[shop])

    sent = run_page(browser, shop, serve_cdp, key, "standard")
    assert sent["errors"] == [] and sent["failed"] == [], sent
    assert sent["userId"] == "u-1"
    for probe in sent["probes"].values():  # the page could read the answers
        assert probe == {"status": 200, "body": '{"success":true}'}, sent["probes"]
    # One request per call, to the short paths, each answer readable by the page.
    assert sent["calls"] == [
        {"url": f"{serve_cdp.url}/v1/{path}", "status": 200} for path in ("p", "i", "t")
    ], sent["calls"]

    batched = run_page(browser, shop, serve_cdp, key, "batching")
    assert batched["errors"] == [] and batched["failed"] == [], batched
    assert batched["anonymousId"] == sent["anonymousId"]  # kept by the browser
    assert batched["calls"] == [{"url": f"{serve_cdp.url}/v1/b", "status": 200}], batched

    refused = run_page(browser, elsewhere, serve_cdp, key, "refused")
    for name, probe in refused["probes"].items():  # the browser's CORS check failed
        assert probe.get("error", "").startswith("TypeError"), (name, refused["probes"])
    assert refused["calls"] and all(  # analytics.js got network errors (and will retry)
        call.get("error", "").startswith("TypeError") for call in refused["calls"]
    ), refused["calls"]
    console = [entry["message"] for entry in browser.get_log("browser")]
    assert any(elsewhere in line and "CORS policy" in line for line in console), console
    # Nothing was fetched from anywhere but the three loopback servers (no CDN).
    requested = requested_urls(browser)
    assert requested and all(
        url.startswith((shop, elsewhere, serve_cdp.url)) for url in requested
    ), requested

    rows = serve_cdp.query(
        'SELECT type, event, anonymous_id, user_id, payload FROM events ORDER BY "offset"'
    )
    # page, identify, track and two probes from each of the two visits.
    assert Counter((r[0], r[1]) for r in rows) == {
        ("page", None): 2,
        ("identify", None): 2,
        ("track", "Product Viewed"): 2,
        ("track", "Probe"): 4,
    }
    assert all(elsewhere not in r[4] and "probe-refused" not in r[4] for r in rows)
    assert all(key not in r[4] for r in rows), "the write key was stored in an event"
    page = next(r for r in rows if r[0] == "page")
    assert page[2] == sent["anonymousId"] and page[3] is None
    linked = serve_cdp.query(
        "SELECT identifier, customer_id FROM identities WHERE identifier IN (?, ?)",
        [f"anonymous_id:{sent['anonymousId']}", "user_id:u-1"],
    )
    assert len(linked) == 2 and linked[0][1] == linked[1][1], linked
