"""Fixtures for tests that drive a real headless Chromium (Debian's package).

- ``browser``: a selenium ``WebDriver`` of a fresh Chromium (own profile
  directory), with the browser console log readable via
  ``browser.get_log("browser")`` and every request it made via
  :func:`requested_urls`. Every host name except ``localhost`` and
  ``127.0.0.1`` resolves to nothing, so a page that tried to load anything
  from outside the loopback servers fails visibly instead of reaching the
  network.
- ``page_server``: a factory; ``page_server(directory)`` serves that directory
  over HTTP on a fresh loopback port and returns its origin
  (``http://127.0.0.1:PORT``). Each call is another origin.
- ``serve_cdp``: ``cdp serve`` as a subprocess on a fresh data directory and
  port, as :class:`CdpServer` (``url``, ``data_dir``, ``add_source``,
  ``set_origins``, ``stop``, ``query``, ``log``).

Chromium and chromedriver come from Debian's ``chromium`` and
``chromium-driver`` packages (``tests/browser/install-chromium.sh``, run by
``make test``). When they are missing the tests fail saying so; they are never
skipped, and selenium is never allowed to download a browser or driver.
"""

from __future__ import annotations

import functools
import http.server
import json
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.sources import SourceRegistry
from tests.loopback import ServeProcess, start_cdp_serve

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = Path(__file__).with_name("install-chromium.sh")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Any name but localhost and 127.0.0.1 resolves to nothing, so a
    # CDN or tracker host fails at once (and shows in the page's resources).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)


def _require_chromium() -> None:
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(
            f"the browser tests need Debian's chromium and chromium-driver packages "
            f"({', '.join(missing)} missing): run {INSTALL} as root "
            "(`make test` does it)",
            pytrace=False,
        )


@pytest.fixture
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A fresh headless Chromium driven by selenium; quit after the test."""
    _require_chromium()
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    # The console (CORS failures are reported there) and the network log
    # (every request the browser made, failed ones included: requested_urls).
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # An explicit driver path and browser binary: selenium-manager never runs.
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_script_timeout(30)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: Any) -> list[str]:
    """Every network URL (http, https, ws, wss) the browser requested since the last
    call, in order, failed ones too; the browser's own chrome:// and data: loads
    are left out."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            url = message["params"]["request"]["url"]
            if url.split(":", 1)[0].lower() in ("http", "https", "ws", "wss"):
                urls.append(url)
    return urls


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def page_server() -> Iterator[Callable[[Path], str]]:
    """``page_server(directory) -> origin``: serve a directory on a fresh loopback port."""
    servers: list[tuple[http.server.ThreadingHTTPServer, threading.Thread]] = []

    def start(directory: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}"

    try:
        yield start
    finally:
        for server, thread in servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=10)


@dataclass
class CdpServer:
    """A running ``cdp serve`` on its own data directory and loopback port."""

    serve: ServeProcess
    stopped: bool = field(default=False)

    @property
    def url(self) -> str:
        return self.serve.url

    @property
    def data_dir(self) -> Path:
        return self.serve.data_dir

    def add_source(self, name: str, **options: Any) -> str:
        """Register a source (``origins=[...]`` and any other ``SourceRegistry.add``
        option); returns its write key. The running server sees it at once."""
        return SourceRegistry(self.data_dir).add(name, **options)

    def set_origins(
        self, name: str, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()
    ) -> None:
        """Change a source's allowed origins while the server runs."""
        SourceRegistry(self.data_dir).set_origins(name, add=add, remove=remove)

    def log(self) -> str:
        """What the server printed so far."""
        return self.serve.log()

    def stop(self) -> None:
        """SIGTERM and wait: the server checkpoints its projections on the way out."""
        if self.stopped:
            return
        self.stopped = True
        code = self.serve.stop()
        # uvicorn re-raises the SIGTERM it handled once it has shut down cleanly.
        assert code in (0, -signal.SIGTERM), f"cdp serve exited {code}:\n{self.log()}"

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of read-only SQL over the views (stops the server first: one owner)."""
        self.stop()
        con: duckdb.DuckDBPyConnection = Engine.open_read_only(Settings(self.data_dir))
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()


@pytest.fixture
def serve_cdp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CdpServer]:
    """``cdp serve`` (a subprocess) on a fresh data directory and loopback port."""
    server = CdpServer(start_cdp_serve(tmp_path_factory.mktemp("cdp-data")))
    try:
        yield server
    finally:
        if not server.stopped:
            server.serve.stop()
