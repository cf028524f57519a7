"""Fixtures of the console tests: a generated shop served on loopback, signed in.

- ``console_shop`` (one per test session and xdist worker): a data directory
  holding a generated shop (``CUSTOMERS`` customers, the demo generator) and
  three console users, one per role (``PASSWORDS``; ``shop.make_shop``, which
  the browser tests' shop is made with too).
- ``console_url``: ``create_app`` of that directory under uvicorn on a free
  loopback port (one per module).
- ``sign_in(role)``: an ``httpx.Client`` on ``console_url`` signed in as that
  role's user (its ``csrf`` attribute is the session's form token).

Tests that write (save a segment, add a user) use names of their own, so they
do not disturb each other on the shared directory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from cdp.config import Settings
from cdp.http.app import create_app
from tests.integration.console.shop import PASSWORDS, make_shop
from tests.loopback import serve_app

__all__ = ["PASSWORDS", "SignedIn", "sign_in_as"]

CUSTOMERS = 400
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture(scope="session")
def console_shop(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A data directory with a generated shop and one console user per role."""
    return make_shop(tmp_path_factory.mktemp("console") / "data", seed=7, customers=CUSTOMERS)


@pytest.fixture(scope="module")
def console_url(console_shop: Settings) -> Iterator[str]:
    """The console of ``console_shop`` served on loopback."""
    yield from serve_app(create_app(console_shop))


class SignedIn(httpx.Client):
    """An HTTP client with a console session (``csrf``: the session's form token)."""

    csrf: str


def sign_in_as(base_url: str, name: str, password: str) -> SignedIn:
    """Sign in through the form as a browser does; the client keeps the cookie."""
    client = SignedIn(base_url=base_url, follow_redirects=False, timeout=30)
    form = client.get("/console/login")
    token = CSRF.search(form.text)
    assert token, form.text
    answer = client.post(
        "/console/login", data={"csrf": token.group(1), "user": name, "password": password}
    )
    assert answer.status_code == 303, answer.text
    home = client.get(answer.headers["location"])  # every page's sign-out form has the token
    match = CSRF.search(home.text)
    assert match, home.text
    client.csrf = match.group(1)
    return client


@pytest.fixture
def sign_in(console_url: str) -> Iterator[Callable[[str], SignedIn]]:
    """``sign_in("admin"|"marketer"|"viewer")``: a signed-in client of that role."""
    clients: list[SignedIn] = []

    def make(role: str) -> SignedIn:
        name, password = PASSWORDS[role]
        client = sign_in_as(console_url, name, password)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def data_dir_of(settings: Settings) -> Path:
    """The shop's directory (for tests that compare with the CLI)."""
    return settings.data_dir
