"""The console in Debian's headless Chromium: sign-in, search, roles, CSRF,
session expiry, sign-out, and every screen within its Content-Security-Policy.

One ``cdp serve`` (a subprocess) serves a generated shop for the session
(``tests.browser.console_shop``, shared with the builder's tests); each test
has a fresh browser. Chromium resolves no host but loopback, so a page
that tried to load anything from elsewhere would show in its requests; a CSP
violation (an inline script or style, another origin) shows as a SEVERE line of
the browser's console log, and every test checks there is none.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec

from cdp.config import Settings
from tests.browser.console_shop import (
    USERS,
    console_server,
    no_csp_or_script_errors,
    only_loopback,
    sign_in,
    wait,
)
from tests.integration.console.shop import cli_read
from tests.loopback import ServeProcess

pytestmark = pytest.mark.browser
__all__ = ["console_server"]  # the shared fixture: pytest finds it in this module


SCREENS = ("/console/", "/console/customers", "/console/segments", "/console/analytics",
           "/console/audiences", "/console/admin")  # fmt: skip


@pytest.fixture
def shop(console_server: ServeProcess) -> ServeProcess:
    """The served shop (shared with the builder's tests)."""
    return console_server


def test_every_screen_renders_in_both_languages_within_its_policy(
    browser: Any, shop: ServeProcess
) -> None:
    sign_in(browser, shop, "admin")
    for path in SCREENS:
        browser.get(f"{shop.url}{path}")
        heading = wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
        assert heading.text.strip(), path
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
    # The language switch (a form post) turns every screen Japanese.
    page = browser.find_element(By.TAG_NAME, "html")
    browser.find_element(By.CSS_SELECTOR, "form[action='/console/lang'] button").click()
    wait(browser).until(ec.staleness_of(page))  # the page that answers the post replaced it
    wait(browser).until(lambda b: b.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja")
    for path in SCREENS:
        browser.get(f"{shop.url}{path}")
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "ja"
        assert browser.find_element(By.LINK_TEXT, "顧客").is_displayed()
    no_csp_or_script_errors(browser)
    only_loopback(browser, shop)


def test_a_phone_sized_screen_has_no_sideways_scrolling_of_the_page(
    browser: Any, shop: ServeProcess
) -> None:
    browser.set_window_size(375, 812)
    sign_in(browser, shop, "viewer")
    for path in SCREENS[:4]:
        browser.get(f"{shop.url}{path}")
        wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
        overflow = browser.execute_script(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, (path, overflow)
    no_csp_or_script_errors(browser)


def test_find_a_customer_by_email_and_by_kana_name(browser: Any, shop: ServeProcess) -> None:
    profile = shop_customer(shop)
    sign_in(browser, shop, "viewer", "/console/customers")
    for query in (profile["email"].upper(), profile["kana"]):
        box = browser.find_element(By.ID, "q")
        box.clear()
        box.send_keys(query + Keys.ENTER)
        wait(browser).until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#customers a.customer"))
        )
        links = browser.find_elements(By.CSS_SELECTOR, "#customers a.customer")
        target = next(a for a in links if profile["customer_id"] in a.get_attribute("href"))
        target.click()
        name = wait(browser).until(ec.presence_of_element_located((By.ID, "customer-name")))
        assert profile["last_name"] in name.text, (query, name.text)
        assert profile["email"] in browser.find_element(By.ID, "identifiers").text
        browser.get(f"{shop.url}/console/customers")
    no_csp_or_script_errors(browser)


def shop_customer(shop: ServeProcess) -> dict[str, str]:
    """A customer with an email and a kana name, read over the served directory's
    read-only connection (the CLI's door while ``cdp serve`` owns it)."""
    with cli_read(Settings(shop.data_dir)) as con:
        row = con.execute(
            "SELECT customer_id, email, last_name_kana, last_name FROM profiles"
            " WHERE email IS NOT NULL AND last_name_kana IS NOT NULL ORDER BY customer_id LIMIT 1"
        ).fetchone()
    assert row is not None, "no customer with an email and a kana name in the shop"
    return dict(zip(("customer_id", "email", "kana", "last_name"), row, strict=True))


def test_a_viewer_cannot_export(browser: Any, shop: ServeProcess) -> None:
    sign_in(browser, shop, "viewer", "/console/segments")
    link = browser.find_elements(By.CSS_SELECTOR, "a[href^='/console/segments/']")
    assert link, "no segment listed"
    browser.get(link[0].get_attribute("href"))
    wait(browser).until(ec.presence_of_element_located((By.TAG_NAME, "h1")))
    assert browser.find_elements(By.ID, "download-csv") == []  # not offered...
    name = urlsplit(browser.current_url).path.rsplit("/", 1)[-1]
    browser.get(f"{shop.url}/console/segments/{name}.csv")  # ...and refused when forced
    assert "needs the marketer or admin role" in browser.find_element(By.TAG_NAME, "main").text


def test_a_forged_form_is_refused_and_the_session_survives(
    browser: Any, shop: ServeProcess
) -> None:
    sign_in(browser, shop, "viewer")
    browser.execute_script(
        "document.querySelector(\"form[action='/console/logout'] input[name=csrf]\").value = 'forged'"
    )
    browser.find_element(By.ID, "signout").click()
    wait(browser).until(ec.text_to_be_present_in_element((By.TAG_NAME, "main"), "Reload the page"))
    browser.get(f"{shop.url}/console/")
    assert browser.find_elements(By.ID, "signout"), "the forged sign-out ended the session"


def test_an_idle_session_ends_and_sign_out_ends_it_for_good(
    browser: Any, shop: ServeProcess
) -> None:
    sign_in(browser, shop, "marketer")
    with sqlite3.connect(Path(shop.data_dir) / "console" / "sessions.sqlite") as db:
        db.execute(
            "UPDATE sessions SET last_seen = last_seen - 7200 WHERE user = ?",
            (USERS["marketer"][0],),
        )
    browser.get(f"{shop.url}/console/segments")
    wait(browser).until(ec.presence_of_element_located((By.ID, "user")))
    assert "Your session ended" in browser.find_element(By.TAG_NAME, "main").text
    # Signing in again returns to the page asked for.
    browser.find_element(By.ID, "user").send_keys(USERS["marketer"][0])
    browser.find_element(By.ID, "password").send_keys(USERS["marketer"][1] + Keys.ENTER)
    wait(browser).until(ec.presence_of_element_located((By.ID, "signout")))
    assert urlsplit(browser.current_url).path == "/console/segments"
    browser.find_element(By.ID, "signout").click()
    wait(browser).until(ec.presence_of_element_located((By.ID, "user")))
    assert "You are signed out" in browser.find_element(By.TAG_NAME, "main").text
    browser.back()
    browser.refresh()
    wait(browser).until(ec.presence_of_element_located((By.ID, "user")))  # no way back in
    no_csp_or_script_errors(browser)
