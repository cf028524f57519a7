"""Sign-in, sessions, CSRF and the doors of the console, over real HTTP.

Every console route needs a session: without one (or with a read token or a
write key instead) the answer is a redirect to the sign-in page and nothing is
shown or done. Sign-in is CSRF-protected by a double-submit cookie, forms of a
session by its token; repeated failures lock the user; an idle session ends.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterator

import httpx
import pytest

from cdp.config import Settings
from cdp.console.web import SECURITY_HEADERS
from cdp.http.app import create_app
from cdp.services.sources import SourceRegistry
from cdp.services.tokens import TokenRegistry
from cdp.services.users import UserStore
from tests.integration.console.conftest import CSRF, PASSWORDS, SignedIn, sign_in_as
from tests.integration.test_error_shapes import route_table
from tests.loopback import serve_app

pytestmark = pytest.mark.integration

EXTERNAL = re.compile(r"""(?:src|href|action)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


def console_routes(settings: Settings) -> list[tuple[str, str]]:
    """(method, path) of every console route, path parameters filled in."""
    found: list[tuple[str, str]] = []
    for path, methods in route_table(create_app(settings)):
        if methods is None or path == "/console/login":
            continue
        if not (path == "/" or path.startswith("/console")):
            continue
        concrete = re.sub(r"\{[^}]+\}", "x", path)
        found.extend((method, concrete) for method in sorted(methods - {"HEAD"}))
    return found


def test_every_console_route_needs_a_session_and_a_token_or_write_key_is_not_one(
    console_shop: Settings, console_url: str
) -> None:
    token = TokenRegistry(console_shop.data_dir).add(
        "console-probe", ["profiles:read", "segments:read", "privacy:write"]
    )
    key = SourceRegistry(console_shop.data_dir).add("console-probe-source")
    routes = console_routes(console_shop)
    assert len(routes) >= 4, routes
    with httpx.Client(base_url=console_url, follow_redirects=False, timeout=30) as client:
        for method, path in routes:
            for headers in (
                {},
                {"Authorization": f"Bearer {token}"},
                {"Authorization": f"Bearer {key}"},
            ):
                answer = client.request(method, path, headers=headers, data={"csrf": "x"})
                assert answer.status_code == 303, (method, path, answer.status_code)
                where = answer.headers["location"]
                if path == "/":
                    assert where == "/console/", where
                else:
                    assert where.startswith("/console/login?next="), (method, path, where)


def test_sign_in_page_is_self_contained_and_secured(console_url: str) -> None:
    with httpx.Client(base_url=console_url, timeout=30) as client:
        page = client.get("/console/login", headers={"Accept-Language": "ja,en;q=0.8"})
        assert page.status_code == 200
        assert 'lang="ja"' in page.text and "サインイン" in page.text
        assert not EXTERNAL.search(page.text), EXTERNAL.search(page.text)
        for name, value in SECURITY_HEADERS.items():
            assert page.headers[name] == value
        assert "default-src 'none'" in page.headers["content-security-policy"]
        english = client.get("/console/login", headers={"Accept-Language": "en-US,en"})
        assert 'lang="en"' in english.text and "Sign in" in english.text
        css = client.get("/console/static/console.css")
        assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_sign_in_without_the_form_s_token_is_refused(console_url: str) -> None:
    name, password = PASSWORDS["viewer"]
    with httpx.Client(base_url=console_url, follow_redirects=False, timeout=30) as client:
        # A cross-site form post carries no cookie of ours: refused before any password check.
        answer = client.post(
            "/console/login", data={"csrf": "x", "user": name, "password": password}
        )
        assert answer.status_code == 403
        assert "cdp_session" not in answer.headers.get("set-cookie", "")


def test_sign_in_sets_a_strict_cookie_and_sign_out_ends_the_session(
    console_url: str, sign_in: Callable[[str], SignedIn]
) -> None:
    name, password = PASSWORDS["viewer"]
    with httpx.Client(base_url=console_url, follow_redirects=False, timeout=30) as client:
        token = CSRF.search(client.get("/console/login").text)
        assert token
        answer = client.post(
            "/console/login",
            data={
                "csrf": token.group(1),
                "user": name,
                "password": password,
                "next": "//evil.example/",
            },
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/"  # no open redirect
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith("cdp_session=")
        )
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback; set behind TLS
    viewer = sign_in("viewer")
    assert viewer.get("/console/").status_code == 200
    # Sign-out needs the form token: a forged post leaves the session alive.
    assert viewer.post("/console/logout", data={"csrf": "forged"}).status_code == 403
    assert viewer.get("/console/").status_code == 200
    out = viewer.post("/console/logout", data={"csrf": viewer.csrf})
    assert out.status_code == 303 and out.headers["location"] == "/console/login?m=out"
    again = viewer.get("/console/")
    assert again.status_code == 303 and again.headers["location"].startswith("/console/login")


def test_wrong_passwords_lock_the_user_and_an_unlock_lets_them_in(
    console_shop: Settings, console_url: str
) -> None:
    users = UserStore(console_shop.data_dir)
    users.add("lock-probe", "viewer", "lock probe password")
    with httpx.Client(base_url=console_url, follow_redirects=False, timeout=30) as client:

        def attempt(password: str) -> httpx.Response:
            token = CSRF.search(client.get("/console/login").text)
            assert token
            return client.post(
                "/console/login",
                data={"csrf": token.group(1), "user": "lock-probe", "password": password},
            )

        for _ in range(5):
            wrong = attempt("not the password")
            assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
        locked = attempt("lock probe password")
        assert locked.status_code == 401 and "locked" in locked.text
        users.unlock("lock-probe")
        assert attempt("lock probe password").status_code == 303


def test_an_idle_session_ends_and_says_so(
    console_shop: Settings, console_url: str, sign_in: Callable[[str], SignedIn]
) -> None:
    viewer = sign_in("viewer")
    assert viewer.get("/console/").status_code == 200
    # Age every session of this user past the idle limit (30 minutes).
    with sqlite3.connect(console_shop.data_dir / "console" / "sessions.sqlite") as db:
        db.execute(
            "UPDATE sessions SET last_seen = last_seen - 3600 WHERE user = ?",
            (PASSWORDS["viewer"][0],),
        )
    ended = viewer.get("/console/customers")
    assert ended.status_code == 303
    assert ended.headers["location"] == "/console/login?next=/console/customers&m=expired"
    page = viewer.get(ended.headers["location"])
    assert "Your session ended" in page.text


def test_a_removed_user_s_session_ends_on_the_next_request(
    console_shop: Settings, console_url: str
) -> None:
    users = UserStore(console_shop.data_dir)
    users.add("leaver", "marketer", "leaver password 1")
    client = sign_in_as(console_url, "leaver", "leaver password 1")
    try:
        assert client.get("/console/").status_code == 200
        users.remove("leaver")
        assert client.get("/console/").status_code == 303
    finally:
        client.close()


@pytest.fixture
def fresh_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    settings = Settings(tmp_path_factory.mktemp("empty-console") / "data")
    for url in serve_app(create_app(settings)):
        yield settings, url


def test_a_directory_without_users_says_how_to_make_one(
    fresh_console: tuple[Settings, str],
) -> None:
    _, url = fresh_console
    page = httpx.get(f"{url}/console/login", timeout=30)
    assert "cdp users add NAME --role admin" in page.text
