"""``/docs`` and ``/redoc`` render in a real headless Chromium that can reach no
host but the loopback servers (the ``browser`` fixture), from a real ``cdp serve``.

The pages are opened as ``http://localhost:PORT``: the fixture's resolver rules
leave only the name ``localhost`` reachable."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import CdpServer


def resources(browser: Any) -> list[str]:
    """Every URL the page fetched (the Resource Timing entries)."""
    return list(
        browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    )


def local(server: CdpServer) -> str:
    return server.url.replace("127.0.0.1", "localhost")


def assert_only_from(server: CdpServer, urls: list[str]) -> None:
    origin = urlsplit(local(server))
    for url in urls:
        parts = urlsplit(url)
        assert (parts.scheme, parts.netloc) == (origin.scheme, origin.netloc), url


def test_swagger_ui_renders_the_operations_offline(browser: Any, serve_cdp: CdpServer) -> None:
    browser.get(f"{local(serve_cdp)}/docs")
    WebDriverWait(browser, 30).until(
        lambda b: b.execute_script("return document.querySelectorAll('.opblock').length") > 10
    )
    text = browser.execute_script("return document.body.innerText")
    assert "cdp collector" in text and "/v1/batch" in text and "/v1/profiles/" in text
    fetched = resources(browser)
    assert any(u.endswith("/openapi.json") for u in fetched), fetched
    assert_only_from(serve_cdp, fetched)
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []


def test_redoc_renders_offline(browser: Any, serve_cdp: CdpServer) -> None:
    browser.get(f"{local(serve_cdp)}/redoc")
    WebDriverWait(browser, 30).until(
        lambda b: "/v1/batch" in b.execute_script("return document.body.innerText")
    )
    # ReDoc's bundle always asks Redocly's CDN for its logo: the page's
    # Content-Security-Policy must have blocked it before any network use.
    blocked = [
        e["message"]
        for e in browser.get_log("browser")
        if "Content Security Policy" in e["message"] and "blocked" in e["message"]
    ]
    fetched = []
    for name, status in browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus])"
    ):
        if urlsplit(name).hostname != "localhost":
            assert status == 0 and any(name in m for m in blocked), (name, blocked)
        else:
            fetched.append(name)
    assert any(u.endswith("/docs/assets/redoc.standalone.js") for u in fetched), fetched
    assert_only_from(serve_cdp, fetched)
