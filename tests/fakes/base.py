"""What every fake platform server shares: a request log, injected faults, a delay.

A fake is an ASGI app (FastAPI) wrapped by ``FaultInjector``. Faults are
queued with ``fake.inject(kind, ...)`` and taken by the next matching
request:

- ``status``: answer with an HTTP status (and ``Retry-After``) without
  touching the platform's state (429, 500, 503...);
- ``drop``: close the connection before the request is handled;
- ``drop_after``: handle the request (state changes!) and then close the
  connection instead of answering, as when an acknowledgement is lost.

``delay`` slows every request (for killing a client mid-sync).
"""

from __future__ import annotations

import abc
import asyncio
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.responses import JSONResponse

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class DroppedConnection(Exception):
    """Raised inside the server so uvicorn closes the connection without an answer."""


@dataclass
class Fault:
    kind: str  # "status" | "drop" | "drop_after"
    status: int = 500
    retry_after: str | None = None
    body: dict[str, Any] | None = None
    method: str | None = None
    path_contains: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path_contains is None or self.path_contains in path
        )


@dataclass
class Logged:
    """One request as the fake received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None
    fault: str | None = None

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class FakeServer(abc.ABC):
    """Base of the fakes: ``app`` to serve, ``log`` of requests, fault queue."""

    log: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    applied: Counter[str] = field(default_factory=Counter)
    duplicates: Counter[str] = field(default_factory=Counter)

    def inject(self, kind: str, times: int = 1, **options: Any) -> None:
        """Queue ``times`` faults of ``kind`` for the next matching requests."""
        with self.lock:
            self.faults.extend(Fault(kind, **options) for _ in range(times))

    def _take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for i, fault in enumerate(self.faults):
                if fault.matches(method, path):
                    return self.faults.pop(i)
        return None

    def requests(self, method: str | None = None, contains: str = "") -> list[Logged]:
        """Logged requests that reached the platform logic (faults excluded)."""
        with self.lock:
            return [
                r
                for r in self.log
                if r.fault in (None, "drop_after")
                and (method is None or r.method == method)
                and contains in r.path
            ]

    @abc.abstractmethod
    def build(self) -> FastAPI:
        """The platform's routes, checking each request as documented."""
        raise NotImplementedError

    def asgi(self) -> FaultInjector:
        """The app to serve: the platform's routes behind the fault injector."""
        return FaultInjector(self, self.build())


def error(status: int, body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, status_code=status)


class FaultInjector:
    """ASGI middleware: logs every request, applies the delay and queued faults."""

    def __init__(self, fake: FakeServer, app: FastAPI) -> None:
        self.fake = fake
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        entry = Logged(scope["method"], scope["path"], headers, body)
        with self.fake.lock:
            self.fake.log.append(entry)
        if self.fake.delay:
            await asyncio.sleep(self.fake.delay)
        fault = self.fake._take(scope["method"], scope["path"])
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return {"type": "http.disconnect"}
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        if fault is None:

            async def record(message: Message) -> None:
                if message["type"] == "http.response.start":
                    entry.status = message["status"]
                await send(message)

            await self.app(scope, replay, record)
            return
        entry.fault = fault.kind
        if fault.kind == "status":
            headers_out = [(b"content-type", b"application/json")]
            if fault.retry_after is not None:
                headers_out.append((b"retry-after", fault.retry_after.encode()))
            payload = orjson.dumps(fault.body or {"error": {"message": "injected fault"}})
            await send(
                {"type": "http.response.start", "status": fault.status, "headers": headers_out}
            )
            await send({"type": "http.response.body", "body": payload})
            entry.status = fault.status
            return
        if fault.kind == "drop_after":

            async def swallow(message: Message) -> None:
                if message["type"] == "http.response.start":
                    entry.status = message["status"]

            await self.app(scope, replay, swallow)
        # Start a response that promises a body and never send it: uvicorn then
        # closes the connection and the client sees it dropped mid-answer.
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"1000")],
            }
        )
        raise DroppedConnection(fault.kind)
