"""Screenshots of every console screen, as PNG files under docs/console/.

Serves the demo shop (``bench.console.demo_shop``: ``cdp demo --fresh``, made
once) with ``cdp serve``, signs in as an admin in Debian's headless Chromium
(the browser tests' options: nothing is downloaded, only loopback resolves)
and saves each screen at 1280 px wide in English, the overview and a customer
in Japanese, and the overview on a phone-sized screen. The README shows them.

    make screenshots        # or: python -m tests.browser.screenshots [--out docs/console]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from bench.common import ROOT, Server
from bench.console import CACHE, PASSWORD, USER, bench_user, demo_shop
from cdp.config import Settings
from cdp.demo.generate import PRODUCT_A, PRODUCT_B
from cdp.services.segment_lang import SegmentCatalog
from tests.browser.conftest import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS

#: (file name, path, how the page is prepared) in the order the README shows them.
SHOTS = (
    ("overview", "/console/", None),
    ("customers", "/console/customers?q=%E3%83%A4%E3%83%9E", None),
    ("customer-360", "first-customer", None),
    ("segments", "/console/segments", None),
    ("segment-builder", "/console/segments/a_not_b_ads/edit", "builder"),
    ("segment", "/console/segments/a_not_b_ads", None),
    ("analytics", "/console/analytics", None),
    ("analytics-rfm", "/console/analytics/rfm", None),
    ("analytics-cohorts", "/console/analytics/cohorts", None),
    ("analytics-email-ab", "/console/analytics/email-ab", None),
    ("audiences", "/console/audiences", None),
    ("admin", "/console/admin", None),
)

#: The issue's example, saved so the builder and the segment page have something to show.
A_NOT_B = f"""name: a_not_b_ads
description: Bought A, not B within 30 days, consented to ads
rules:
  all:
    - sequence:
        first: {{name: Order Completed, where: [{{property: "products[*].product_id", op: contains, value: {PRODUCT_A}}}]}}
        not_then: {{name: Order Completed, where: [{{property: "products[*].product_id", op: contains, value: {PRODUCT_B}}}]}}
        within_days: 30
        min_days: 30
    - trait: {{field: consent_ads, op: eq, value: true}}
"""


def browser(width: int, height: int) -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument("--hide-scrollbars")
    options.add_argument("--force-device-scale-factor=1")
    return webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))


def sign_in(driver: Any, url: str) -> None:
    driver.get(f"{url}/console/login")
    driver.find_element(By.ID, "user").send_keys(USER)
    driver.find_element(By.ID, "password").send_keys(PASSWORD + Keys.ENTER)
    time.sleep(0.5)


def first_link(driver: Any, url: str, page: str, pattern: str) -> str:
    driver.get(f"{url}{page}")
    for link in driver.find_elements(By.CSS_SELECTOR, "main a"):
        href = link.get_attribute("href") or ""
        if re.search(pattern, href):
            return href
    raise SystemExit(f"no link matching {pattern} on {page}")


def full_page(driver: Any, path: Path, width: int) -> None:
    """The whole page, not only the window: grow the window to the page's height."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(max(height, 600), 4000))
    time.sleep(0.3)
    driver.save_screenshot(str(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    parser.add_argument("--data", type=Path, help="an existing data directory (default: demo shop)")
    args = parser.parse_args()
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        sys.exit("needs Debian's chromium and chromium-driver: tests/browser/install-chromium.sh")
    data = args.data or demo_shop()
    bench_user(data)
    SegmentCatalog(Settings(data).data_dir).save(A_NOT_B, "yaml", replace=True)
    args.out.mkdir(parents=True, exist_ok=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    server = Server(data, CACHE / "screenshots-serve.log")
    server.start()
    driver = browser(1280, 900)
    try:
        sign_in(driver, server.url)
        for name, where, prepare in SHOTS:
            path = where
            if where == "first-customer":
                path = first_link(
                    driver,
                    server.url,
                    "/console/customers?q=%E3%83%A4%E3%83%9E",
                    r"/console/customers/cus_",
                )
            driver.set_window_size(1280, 900)
            driver.get(path if path.startswith("http") else f"{server.url}{path}")
            if prepare == "builder":
                time.sleep(1.0)  # the live count settles
            full_page(driver, args.out / f"{name}.png", 1280)
            print(f"saved {name}.png")
        # Japanese, and a phone.
        driver.set_window_size(1280, 900)
        driver.get(f"{server.url}/console/")
        driver.find_element(By.CSS_SELECTOR, "form[action='/console/lang'] button").click()
        time.sleep(0.5)
        full_page(driver, args.out / "overview-ja.png", 1280)
        print("saved overview-ja.png")
        driver.set_window_size(390, 844)
        driver.get(f"{server.url}/console/")
        full_page(driver, args.out / "overview-phone-ja.png", 390)
        print("saved overview-phone-ja.png")
    finally:
        driver.quit()
        server.stop()


if __name__ == "__main__":
    main()
