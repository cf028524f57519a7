"""``/docs`` and ``/redoc`` of ``cdp serve`` work without internet (cdp/http/docs.py).

The pages may reference nothing outside the server, and every asset they
reference must be served by it with the right content type. (That the pages
also render, in a real Chromium that cannot reach any other host, is
``tests/browser/test_api_docs_browser.py``.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cdp.config import Settings
from cdp.http.app import create_app
from cdp.runtime.engine import Engine
from cdp.runtime.writer import GroupCommitWriter
from tests.loopback import serve_app

pytestmark = pytest.mark.integration

# Attributes and Swagger UI / ReDoc options that make the browser fetch a URL.
REFERENCES = re.compile(r"""(?:src|href|spec-url)\s*=\s*["']([^"']+)["']|url:\s*'([^']+)'""")
CONTENT_TYPES = {
    ".js": ("text/javascript", "application/javascript"),
    ".css": ("text/css",),
    ".png": ("image/png",),
    ".json": ("application/json",),
}


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = Settings(Path(tmp_path_factory.mktemp("docs")) / "data")
    writer: GroupCommitWriter[Engine] = GroupCommitWriter(lambda: Engine.open(settings))
    writer.start()
    try:
        yield from serve_app(create_app(settings, writer))
    finally:
        writer.stop()


def references(html: str) -> list[str]:
    return [a or b for a, b in REFERENCES.findall(html)]


@pytest.mark.parametrize(("page", "expected"), [("/docs", 3), ("/redoc", 2)])
def test_docs_pages_load_everything_from_the_server(url: str, page: str, expected: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        answer = client.get(page)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        # The browser itself is told to load and connect to this server only.
        policy = answer.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "connect-src 'self'" in policy
        assert "http" not in policy and "*" not in policy
        html = answer.text
        # No address outside the server at all (a CDN, Google Fonts, the validator).
        assert re.findall(r"https?://[^\s\"'<>]+", html) == []
        found = references(html)
        # the script, (the stylesheet,) the icon, the OpenAPI document
        assert len(found) == expected + 1, found
        for reference in found:
            assert reference.startswith("/") and not reference.startswith("//"), reference
            asset = client.get(reference)
            assert asset.status_code == 200, reference
            suffix = Path(reference).suffix
            content_type = asset.headers["content-type"].split(";")[0]
            assert content_type in CONTENT_TYPES[suffix], (reference, content_type)
            assert len(asset.content) > 0


def test_swagger_ui_is_told_not_to_call_the_online_validator(url: str) -> None:
    html = httpx.get(f"{url}/docs", timeout=10).text
    assert '"validatorUrl": null' in html


def test_the_bundled_assets_are_the_real_ones(url: str) -> None:
    with httpx.Client(base_url=url, timeout=10) as client:
        script = client.get("/docs/assets/swagger-ui-bundle.js").text
        assert "SwaggerUIBundle" in script and len(script) > 500_000
        assert "swagger-ui" in client.get("/docs/assets/swagger-ui.css").text
        assert "Redoc" in client.get("/docs/assets/redoc.standalone.js").text
