"""The segment builder in headless Chromium: built by clicking, counted like the CLI.

A marketer signs in, builds "bought product A, not product B within 30 days,
consented to ads" with the builder's form (no YAML typed), sees the live count
equal to ``cdp segment run`` of the same definition, saves it and downloads
its CSV, whose rows are the members. The shop is the browser tests' shared
``cdp serve`` (``tests.browser.console_shop``); the CLI's numbers are taken
beside it, through the server's connection, as a person would run the CLI.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.ui import WebDriverWait
from typer.testing import CliRunner

from cdp.cli import app as cli
from cdp.config import Settings
from cdp.services.segment_lang import parse
from tests.browser.console_shop import (
    console_server,
    no_csp_or_script_errors,
    only_loopback,
    sign_in,
)
from tests.integration.console.shop import a_not_b, cli_read, most_ordered
from tests.loopback import ServeProcess

pytestmark = pytest.mark.browser
__all__ = ["console_server"]  # the shared fixture: pytest finds it in this module

NAME = "a_not_b_ads"


@dataclass(frozen=True)
class Shop:
    """The served shop, the two products and what `cdp segment run` says."""

    server: ServeProcess
    settings: Settings
    product_a: str
    product_b: str
    definition: str
    members: list[str]

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def shop(console_server: ServeProcess, tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """The shared served shop, and the CLI's members for the definition."""
    settings = Settings(console_server.data_dir)
    with cli_read(settings) as con:
        a, b = most_ordered(con)
    definition = a_not_b(a, b, NAME)
    path = tmp_path_factory.mktemp("builder") / "expected.yaml"
    path.write_text(definition, encoding="utf-8")
    answer = CliRunner().invoke(
        cli, ["--data-dir", str(settings.data_dir), "--json", "segment", "run", str(path)]
    )
    assert answer.exit_code == 0, answer.output
    members = orjson.loads(answer.stdout)["members"]
    assert members, "the shop should have members for this definition"
    return Shop(console_server, settings, a, b, definition, members)


def wait(browser: Any, condition: Any, seconds: float = 20) -> Any:
    return WebDriverWait(browser, seconds).until(condition)


def choose(browser: Any, element_id: str, value: str) -> None:
    Select(browser.find_element(By.ID, element_id)).select_by_value(value)


def type_into(browser: Any, element_id: str, text: str) -> None:
    box = browser.find_element(By.ID, element_id)
    box.clear()
    box.send_keys(text)


def test_build_by_clicking_count_like_the_cli_save_and_download(browser: Any, shop: Shop) -> None:
    sign_in(browser, shop.server, "marketer", "/console/segments/new")  # then back here
    assert browser.find_element(By.ID, "live-count").text == "–"

    # A sequence: A then not B (the default), product filters on both steps.
    choose(browser, "add-kind", "sequence")
    browser.find_element(By.ID, "add").click()
    type_into(browser, "c0-a-w0-value", shop.product_a)
    type_into(browser, "c0-b-w0-value", shop.product_b)
    assert (
        Select(browser.find_element(By.ID, "c0-follow")).first_selected_option.get_attribute(
            "value"
        )
        == "not_then"
    )
    type_into(browser, "c0-within", "30")
    type_into(browser, "c0-min", "30")
    # Consented to ads: a profile field, "is", yes.
    choose(browser, "add-kind", "field")
    browser.find_element(By.ID, "add").click()
    choose(browser, "c1-field", "consent_ads")
    choose(browser, "c1-op", "eq")
    choose(browser, "c1-value", "true")
    type_into(browser, "segment-name", NAME)

    expected = str(len(shop.members))
    wait(
        browser,
        lambda b: b.find_element(By.ID, "live-count").get_attribute("data-count") == expected,
    )
    written = browser.find_element(By.ID, "definition").get_attribute("value")
    assert parse(written) == parse(shop.definition), written  # the same definition
    assert "ASOF LEFT JOIN" in browser.find_element(By.ID, "sql").text
    assert not browser.find_element(By.ID, "preview-error").is_displayed()

    browser.find_element(By.ID, "save").click()
    wait(browser, lambda b: f"/console/segments/{NAME}" in b.current_url)
    assert browser.find_element(By.ID, "segment-count").get_attribute("data-count") == expected
    assert (shop.settings.data_dir / "segments" / f"{NAME}.yaml").exists()

    link = browser.find_element(By.ID, "download-csv")
    assert link.get_attribute("href").endswith(f"/console/segments/{NAME}.csv")
    text = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {credentials: 'same-origin'})"
        ".then(r => r.text()).then(done, e => done('failed: ' + e));",
        link.get_attribute("href"),
    )
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    assert rows[0][0] == "customer_id"
    assert sorted(r[0] for r in rows[1:]) == sorted(shop.members)

    # Editing the saved segment rebuilds the form from its text.
    browser.get(f"{shop.url}/console/segments/{NAME}/edit")
    wait(browser, lambda b: b.find_elements(By.ID, "c0-a-w0-value"))
    assert browser.find_element(By.ID, "c0-a-w0-value").get_attribute("value") == shop.product_a
    assert browser.find_element(By.ID, "c1-field").get_attribute("value") == "consent_ads"
    wait(
        browser,
        lambda b: b.find_element(By.ID, "live-count").get_attribute("data-count") == expected,
    )

    no_csp_or_script_errors(browser)
    only_loopback(browser, shop.server)
