"""Erasures carried out by a running embedded ``cdp serve`` (issue 16), and the
``AppSwitch`` pause they run in: requests get 503 + Retry-After, the requests in
flight finish first, the work runs between the old app's stop and a fresh
app's start, and a fresh app that cannot start stops the server."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest
import uvicorn
from fastapi import FastAPI
from typer.testing import CliRunner

from cdp.cli import app as cli_app
from cdp.http.erasures import OnlineErasures
from cdp.http.switch import AppSwitch
from cdp.services.privacy.requests import DELETE, Requests
from tests.integration.test_lookup import build_shop, owners
from tests.integration.test_privacy_erase_e2e import forms, found
from tests.loopback import cdp_serve, free_port, serve_app

pytestmark = pytest.mark.integration


# --------------------------------------------------------------- the switch
class Shop:
    """A tiny app factory that records what happens, in order."""

    def __init__(self, fail_from: int | None = None) -> None:
        self.events: list[str] = []
        self.made = 0
        self.fail_from = fail_from
        self.arrived = threading.Event()

    def make(self) -> FastAPI:
        self.made += 1
        number = self.made
        if self.fail_from is not None and number >= self.fail_from:
            raise RuntimeError(f"app {number} cannot start")

        @asynccontextmanager
        async def lifespan(_: FastAPI) -> AsyncIterator[None]:
            self.events.append(f"start {number}")
            yield
            self.events.append(f"stop {number}")

        app = FastAPI(lifespan=lifespan)

        @app.get("/who")
        async def who() -> dict[str, int]:
            return {"app": number}

        @app.get("/slow")
        async def slow() -> dict[str, bool]:
            self.arrived.set()
            await asyncio.sleep(0.5)
            self.events.append("slow answered")
            return {"ok": True}

        return app


@pytest.fixture
def switched() -> Iterator[tuple[AppSwitch, Shop, str, asyncio.AbstractEventLoop]]:
    shop = Shop()
    switch = AppSwitch(shop.make, retry_after=2)
    loops: list[asyncio.AbstractEventLoop] = []

    async def capture_loop() -> None:
        loops.append(asyncio.get_running_loop())
        await asyncio.Event().wait()

    switch.background.append(capture_loop)
    for url in serve_app(switch):
        deadline = time.monotonic() + 10
        while not loops:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        yield switch, shop, url, loops[0]


def test_a_pause_drains_refuses_and_serves_again_from_a_fresh_app(
    switched: tuple[AppSwitch, Shop, str, asyncio.AbstractEventLoop],
) -> None:
    switch, shop, url, loop = switched
    assert httpx.get(f"{url}/who").json() == {"app": 1}
    working, release = threading.Event(), threading.Event()

    def work() -> None:
        working.set()
        assert release.wait(10)
        shop.events.append("work")

    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, f"{url}/slow", timeout=10)
        assert shop.arrived.wait(5)  # in flight when the pause begins
        paused = asyncio.run_coroutine_threadsafe(switch.pause("testing", work), loop)
        assert working.wait(10)
        assert slow.result().status_code == 200  # it finished before the app stopped
        refused = httpx.get(f"{url}/who")
        assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
        body = refused.json()
        assert body["success"] is False and body["status"] == 503
        assert "testing" in body["error"] and "retry in 2s" in body["error"]
        page = httpx.get(f"{url}/who", headers={"accept": "text/html,*/*;q=0.8"})
        assert page.status_code == 503 and page.headers["content-type"].startswith("text/html")
        assert '<meta http-equiv="refresh" content="2">' in page.text and "testing" in page.text
        release.set()
        paused.result(10)
    assert httpx.get(f"{url}/who").json() == {"app": 2}  # a fresh app
    assert shop.events == ["start 1", "slow answered", "stop 1", "work", "start 2"]
    assert switch.pauses == 1 and switch.reason is None and switch.paused_at is None


def test_work_that_fails_still_gets_a_fresh_app(
    switched: tuple[AppSwitch, Shop, str, asyncio.AbstractEventLoop],
) -> None:
    switch, shop, url, loop = switched

    def work() -> None:
        raise OSError("disk full")

    asyncio.run_coroutine_threadsafe(switch.pause("testing", work), loop).result(10)
    assert httpx.get(f"{url}/who").json() == {"app": 2}
    assert shop.events == ["start 1", "stop 1", "start 2"]


def test_a_fresh_app_that_cannot_start_is_fatal_and_keeps_refusing(
    switched: tuple[AppSwitch, Shop, str, asyncio.AbstractEventLoop],
) -> None:
    switch, shop, url, loop = switched
    shop.fail_from = 2
    fatal: list[BaseException] = []
    switch.on_fatal = fatal.append
    with pytest.raises(RuntimeError, match="app 2 cannot start"):
        asyncio.run_coroutine_threadsafe(switch.pause("testing", lambda: None), loop).result(10)
    assert [str(e) for e in fatal] == ["app 2 cannot start"]
    refused = httpx.get(f"{url}/who")
    assert refused.status_code == 503
    assert "could not start again: app 2 cannot start" in refused.json()["error"]


def test_a_shutdown_during_a_pause_waits_for_it_and_stops_the_fresh_app(tmp_path: Path) -> None:
    """SIGTERM while erasing: the erasure finishes, the fresh app starts and is then
    stopped cleanly (its writer checkpoints), rather than left half started."""
    shop = Shop()
    switch = AppSwitch(shop.make)
    working, release = threading.Event(), threading.Event()

    def work() -> None:
        working.set()
        assert release.wait(10)
        shop.events.append("work")

    Requests(tmp_path).file(DELETE, "email:hanako@shop.jp", "test")  # an erasure waits
    erasures = OnlineErasures(tmp_path, switch, work, poll_seconds=0.05)
    switch.background.append(erasures.run)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(switch, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert working.wait(10)  # paused, erasing
    server.should_exit = True
    time.sleep(0.3)
    assert thread.is_alive()  # the shutdown waits for the pause
    release.set()
    thread.join(20)
    assert not thread.is_alive()
    assert shop.events == ["start 1", "stop 1", "work", "start 2", "stop 2"]


# ------------------------------------------------------- cdp serve, for real
def run_cli(data_dir: Path, *args: str) -> Any:
    result = CliRunner().invoke(cli_app, ["--data-dir", str(data_dir), "--json", *args])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


@pytest.fixture(scope="module")
def shop_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shop(tmp_path_factory.mktemp("online-erasure") / "data", 30).data_dir


def people(data_dir: Path) -> list[list[str]]:
    """Each customer's identifier keys, the people with an email and a phone first."""
    with duckdb.connect(str(data_dir / "cdp.duckdb"), read_only=True) as con:
        pairs = owners(con)
    by_customer: dict[str, list[str]] = {}
    for key, customer in pairs:
        by_customer.setdefault(customer, []).append(key)
    return sorted(
        by_customer.values(),
        key=lambda keys: (
            not any(k.startswith("email:") for k in keys),
            not any(k.startswith("phone:") for k in keys),
            -len(keys),
        ),
    )


def values(keys: list[str]) -> list[str]:
    """The identifier values of keys (``email:a@b.jp`` → ``a@b.jp``)."""
    return [k.partition(":")[2] for k in keys]


def file_erasure(url: str, auth: dict[str, str], kind: str, identifier: str) -> str:
    """File a request over the API; its id."""
    filed = httpx.post(
        f"{url}/v1/privacy/requests",
        headers=auth,
        json={"type": kind, "identifier": identifier},
        timeout=10,
    )
    assert filed.status_code == 202, filed.text
    return str(filed.json()["id"])


def wait_for(check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_a_running_server_erases_what_the_api_and_the_cli_file(
    shop_dir: Path, tmp_path: Path
) -> None:
    """Filed over the API, then with `cdp privacy erase` beside the server: each is
    finished by the running server, which answers for everyone else as before and
    takes events again; nothing of either person is left in the data directory."""
    data = tmp_path / "data"
    shutil.copytree(shop_dir, data)
    first, second, other = people(data)[:3]
    email = next(k for k in first if k.startswith("email:"))
    second_email = next(k for k in second if k.startswith("email:"))
    dpo = run_cli(
        data, "tokens", "add", "dpo", "--scope", "privacy:write", "--scope", "profiles:read"
    )
    auth = {"authorization": f"Bearer {dpo['token']}"}
    key = run_cli(data, "sources", "add", "web")["write_key"]
    with cdp_serve(data) as server:
        url = server.url
        before = httpx.get(f"{url}/v1/profiles/{other[0]}", headers=auth, timeout=10)
        assert before.status_code == 200
        request_id = file_erasure(url, auth, "suppress-with-delete", email)
        request_url = f"{url}/v1/privacy/requests/{request_id}"

        def finished(address: str) -> Any:
            try:
                answer = httpx.get(address, headers=auth, timeout=10)
            except httpx.TransportError:
                return None
            return (
                answer.json()
                if answer.status_code == 200 and answer.json()["status"] == "finished"
                else None
            )

        done = wait_for(lambda: finished(request_url))
        assert done["counts"]["event_log"] > 0
        gone = httpx.get(f"{url}/v1/profiles/{email}", headers=auth, timeout=10)
        assert gone.status_code == 404
        after = httpx.get(f"{url}/v1/profiles/{other[0]}", headers=auth, timeout=10)
        assert after.status_code == 200
        assert after.json()["identifiers"] == before.json()["identifiers"]
        assert after.json()["customer_id"] == before.json()["customer_id"]

        beside = CliRunner().invoke(
            cli_app, ["--data-dir", str(data), "privacy", "erase", second_email]
        )
        assert beside.exit_code == 3, beside.output
        assert "carries out the erasure itself" in " ".join(beside.output.split())
        [cli_request] = [
            r for r in run_cli(data, "privacy", "requests") if r["actor"].startswith("cli:")
        ]
        wait_for(lambda: finished(f"{url}/v1/privacy/requests/{cli_request['id']}"))
        assert (
            httpx.get(f"{url}/v1/profiles/{second_email}", headers=auth, timeout=10).status_code
            == 404
        )

        event = {
            "type": "track",
            "event": "Product Viewed",
            "anonymousId": "after-the-pause",
            "properties": {"product_id": "p-1"},
        }
        taken = httpx.post(f"{url}/v1/track", json=event, auth=(key, ""), timeout=10)
        assert taken.status_code == 200, taken.text
        log = server.log()
    assert "serving again after pause 1 (" in log and "serving again after pause 2 (" in log
    assert found(data, forms(*values(first), *values(second))) == []
    assert found(data, {values(other)[0].encode()})  # everyone else is still there


def test_defer_erasures_leaves_the_request_for_the_next_start(
    shop_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    shutil.copytree(shop_dir, data)
    email = next(k for k in people(data)[0] if k.startswith("email:"))
    dpo = run_cli(data, "tokens", "add", "dpo", "--scope", "privacy:write")
    auth = {"authorization": f"Bearer {dpo['token']}"}
    with cdp_serve(data, "--defer-erasures") as server:
        request_id = file_erasure(server.url, auth, "delete", email)
        time.sleep(3)  # longer than the online runner's poll: it is not running
        status = httpx.get(
            f"{server.url}/v1/privacy/requests/{request_id}", headers=auth, timeout=10
        )
        assert status.json()["status"] == "received"
        assert "serving again" not in server.log()
