"""Pausing a running server for work that needs its data directory to itself.

``AppSwitch`` is the ASGI app ``cdp serve`` runs in embedded mode. It serves
through an app it makes (``make_app``: ``cdp.http.app.create_app``) and can
**pause**: answer every new request ``503`` with ``Retry-After`` (the answer
a collector gives under backpressure, which every tracker retries), let the
requests in flight finish, stop the app (its lifespan: the writer finishes
what is queued, checkpoints and closes the DuckDB file), run the work in a
thread, then make and start a **fresh app** and serve again.

Why a fresh app rather than a reopened database: an erasure (the work this is
for: ``cdp.http.erasures``) must leave nothing of the person anywhere, and a
running app keeps customers in memory (the read model, cached lookup
answers, console pages). A fresh app holds nothing from before, exactly as
after a restart, so the pause is a restart without leaving the process or
closing the port.

A fresh app that cannot start (the data directory was damaged in between)
is fatal: ``on_fatal`` is told (``cdp serve`` then exits with the error), and
requests keep the ``503`` until the process ends.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable, MutableMapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import orjson

from cdp.http.errors import error_body

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Any]
Send = Callable[[MutableMapping[str, Any]], Any]

RETRY_AFTER = 5
"""Seconds a paused server asks clients to wait before retrying."""
DRAIN_SECONDS = 30.0
"""How long a pause waits for the requests in flight before stopping the app anyway."""


class AppSwitch:
    """Serves through the app ``make_app`` makes; ``pause(work)`` swaps it for a
    fresh one around ``work`` (see the module docstring).

    ``prepare(app)`` is called on each app before its lifespan starts
    (``cdp serve`` traps start-up errors there); ``on_started()`` after each
    start; ``on_fatal(error)`` when a fresh app fails to start;
    ``background`` coroutines run while the switch is up (cancelled at
    shutdown)."""

    def __init__(
        self,
        make_app: Callable[[], Any],
        *,
        retry_after: int = RETRY_AFTER,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.make_app = make_app
        self.retry_after = retry_after
        self.drain_seconds = drain_seconds
        self.prepare: Callable[[Any], None] | None = None
        self.on_started: Callable[[], None] | None = None
        self.on_fatal: Callable[[BaseException], None] | None = None
        self.background: list[Callable[[], Any]] = []
        self.app: Any = None
        self.pauses = 0  # begun since start-up
        self.paused_at: float | None = None  # time.monotonic() the current pause began
        self.reason: str | None = None  # why requests are refused now (None: serving)
        self._lifespan: AbstractAsyncContextManager[Any] | None = None
        self._inflight = 0
        self._idle = asyncio.Event()
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []

    # --------------------------------------------------------------- ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._run_lifespan(receive, send)
            return
        app = self.app
        if self.reason is not None or app is None:
            await self._refuse(scope, send)
            return
        self._inflight += 1
        self._idle.clear()
        try:
            await app(scope, receive, send)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    # ------------------------------------------------------------- control
    async def pause(self, reason: str, work: Callable[[], Any]) -> None:
        """Refuse new requests (``reason`` is given in the 503), wait for those in
        flight (at most ``drain_seconds``), stop the app, run ``work`` in a
        thread, start a fresh app. ``work`` raising is logged, and the fresh app
        starts all the same. One pause at a time."""
        async with self._lock:
            self.pauses += 1
            self.paused_at = time.monotonic()
            self.reason = reason
            try:
                if self._inflight:
                    self._idle.clear()
                    try:
                        await asyncio.wait_for(self._idle.wait(), self.drain_seconds)
                    except TimeoutError:
                        log.warning(
                            "%d requests still running after %.0f s; stopping the app anyway",
                            self._inflight,
                            self.drain_seconds,
                        )
                await self._stop_app()
                try:
                    await asyncio.to_thread(work)
                except Exception:
                    log.exception("work during the pause (%s) failed", reason)
                try:
                    await self._start_app()
                except BaseException as error:
                    self.reason = f"the server could not start again: {error}"
                    log.critical("%s", self.reason)
                    if self.on_fatal is not None:
                        self.on_fatal(error)
                    raise
                self.reason = None
            finally:
                self.paused_at = None

    # -------------------------------------------------------------- inside
    async def _start_app(self) -> None:
        app = self.make_app()
        if self.prepare is not None:
            self.prepare(app)
        lifespan = app.router.lifespan_context(app)
        await lifespan.__aenter__()
        self.app, self._lifespan = app, lifespan
        if self.on_started is not None:
            self.on_started()

    async def _stop_app(self) -> None:
        lifespan, self._lifespan, self.app = self._lifespan, None, None
        if lifespan is not None:
            await lifespan.__aexit__(None, None, None)

    async def _run_lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._start_app()
                except BaseException as error:
                    await send({"type": "lifespan.startup.failed", "message": str(error)})
                    raise
                self._tasks = [asyncio.create_task(run()) for run in self.background]
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in self._tasks:
                    task.cancel()
                await asyncio.gather(*self._tasks, return_exceptions=True)
                async with self._lock:  # a pause in progress finishes first
                    await self._stop_app()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _refuse(self, scope: Scope, send: Send) -> None:
        if scope["type"] != "http":  # a websocket: refuse the handshake
            await send({"type": "websocket.close", "code": 1013})
            return
        reason = self.reason or "the server is starting"
        message = f"the server is paused: {reason}; retry in {self.retry_after}s"
        accept = dict(scope.get("headers") or []).get(b"accept", b"")
        if b"text/html" in accept:  # a console page: say so, and come back by itself
            body, kind = _paused_page(message, self.retry_after), b"text/html; charset=utf-8"
        else:
            body, kind = orjson.dumps(error_body(503, message)), b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", kind),
                    (b"retry-after", str(self.retry_after).encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _paused_page(message: str, retry_after: int) -> bytes:
    """The page a browser gets while paused: the reason, reloading after ``retry_after``."""
    return (
        "<!doctype html><html><head><meta charset=utf-8>"
        f'<meta http-equiv="refresh" content="{retry_after}">'
        "<title>Paused / 一時停止中</title></head><body><main>"
        "<h1>Paused for a moment / 一時停止中</h1>"
        f"<p>{html.escape(message)}.</p>"
        f"<p>This page reloads in {retry_after} s. / {retry_after} 秒後に再読み込みします。</p>"
        "</main></body></html>"
    ).encode()
