"""What the console's browser tests share (``test_console_browser``,
``test_console_builder``): one served shop and signing in as a person does.

- ``console_server`` (one per test session and xdist worker): ``cdp serve``
  (a subprocess) of a generated shop, 300 customers and one console user per
  role (``tests.integration.console.shop.make_shop``, as the integration
  tests' shop). The CLI reads it beside the server (through the server's own
  connection), so expected numbers can be taken while it runs.
- :func:`sign_in`: with the keyboard, landing on the page asked for.
- :func:`no_csp_or_script_errors` and :func:`only_loopback`: what every test
  checks at its end (a CSP violation is a SEVERE line of the browser's log;
  Chromium resolves no host but loopback, so any other origin shows in the
  page's requests).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import requested_urls
from tests.integration.console.shop import PASSWORDS, make_shop
from tests.loopback import ServeProcess, start_cdp_serve

USERS = PASSWORDS
"""Role → (user name, password)."""


@pytest.fixture(scope="session")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """``cdp serve`` of a generated shop (300 customers) with one user per role."""
    settings = make_shop(tmp_path_factory.mktemp("console-browser") / "data", seed=5, customers=300)
    server = start_cdp_serve(settings.data_dir)
    try:
        yield server
    finally:
        server.stop()


def wait(browser: Any, seconds: float = 15) -> WebDriverWait[Any]:
    """A wait of ``seconds`` on ``browser``."""
    return WebDriverWait(browser, seconds)


def sign_in(browser: Any, shop: ServeProcess, role: str, next_path: str = "/console/") -> None:
    """Open ``next_path``, get the sign-in page, sign in with the keyboard as a
    person would (type, Tab, type, Enter) and land back on ``next_path``."""
    name, password = USERS[role]
    browser.get(f"{shop.url}{next_path}")
    wait(browser).until(ec.presence_of_element_located((By.ID, "user")))
    assert urlsplit(browser.current_url).path == "/console/login"
    field = browser.find_element(By.ID, "user")
    field.send_keys(name)
    field.send_keys(Keys.TAB)
    browser.switch_to.active_element.send_keys(password + Keys.ENTER)
    wait(browser).until(ec.presence_of_element_located((By.ID, "signout")))
    assert urlsplit(browser.current_url).path == next_path


def no_csp_or_script_errors(browser: Any) -> None:
    """No SEVERE line in the browser's log (CSP violations, script errors)."""
    severe = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    # A 403 page the test asked for is logged as a failed resource: not an error of the page.
    severe = [m for m in severe if "403 (Forbidden)" not in m]
    assert severe == [], severe


def only_loopback(browser: Any, shop: ServeProcess) -> None:
    """Every request of the browser went to the served console."""
    requested = requested_urls(browser)
    outside = [u for u in requested if not u.startswith(shop.url)]
    assert requested and outside == [], outside
