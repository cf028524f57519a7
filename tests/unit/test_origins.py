"""Origins as sources store them (cdp.origins) and which paths CORS covers (cdp.cors)."""

from __future__ import annotations

import pytest

from cdp.errors import ConfigError
from cdp.http import cors
from cdp.services.origins import Grant, grant, normalize


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("https://shop.example.jp", "https://shop.example.jp"),
        (" HTTPS://Shop.Example.JP/ ", "https://shop.example.jp"),
        ("https://shop.example.jp:443", "https://shop.example.jp"),
        ("http://shop.example.jp:80", "http://shop.example.jp"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("https://shop.example.jp:8443", "https://shop.example.jp:8443"),
        ("http://[::1]:3000", "http://[::1]:3000"),
        ("https://お茶.jp", "https://xn--t8jy01w.jp"),  # as browsers send it: punycode
        ("*", "*"),
    ],
)
def test_origins_are_stored_as_browsers_send_them(typed: str, stored: str) -> None:
    assert normalize(typed) == stored


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("shop.example.jp", "scheme must be http or https"),
        ("ftp://shop.example.jp", "scheme must be http or https"),
        ("https://", "host is missing"),
        ("https://shop.example.jp/checkout", "must not have a path"),
        ("https://shop.example.jp?a=1", "must not have a path, query"),
        ("https://user@shop.example.jp", "must not contain a user name"),
        ("https://shop.example.jp:99999", "out of range"),
        ("https://*.example.jp", "wildcard host names are not supported"),
        ("https://shop example.jp", "is not a valid name"),
    ],
)
def test_a_wrong_origin_is_refused_saying_why(typed: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=reason) as refused:
        normalize(typed)
    assert repr(typed) in str(refused.value)


def test_a_named_origin_beats_the_wildcard_and_nothing_is_implied() -> None:
    assert grant(["https://a.jp", "*"], "https://a.jp") is Grant.EXPLICIT
    assert grant(["*"], "https://b.jp") is Grant.WILDCARD
    assert grant(["https://a.jp"], "https://b.jp") is None
    assert grant([], "https://a.jp") is None
    # The header is compared verbatim: a browser never sends another spelling.
    assert grant(["https://a.jp"], "https://a.jp/") is None


@pytest.mark.parametrize(
    "path",
    [
        "/v1/track",
        "/v1/batch",
        "/v1/import",
        "/v1/t",
        "/v1/p",
        "/v1/i",
        "/v1/g",
        "/v1/a",
        "/v1/s",
        "/v1/b",
        "/com.snowplowanalytics.snowplow/tp2",
        "/i",
    ],
)
def test_browser_routes_are_covered(path: str) -> None:
    assert cors.is_browser_path(path)


@pytest.mark.parametrize(
    "path",
    ["/v1/profiles/email:a@b.jp", "/v1/segments", "/v1/bulk", "/v1/webhooks/orders", "/health"],
)
def test_server_side_routes_get_no_cors(path: str) -> None:
    assert not cors.is_browser_path(path)
