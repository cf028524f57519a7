"""Running the HTTP app under uvicorn with one-line errors instead of tracebacks.

Two start-up failures are common and must read as one clear line with a
non-zero exit (``cdp serve`` reports them through ``errors()``):

- the port is taken (another server, or a second ``cdp serve``): the socket is
  bound here, before the app starts, so the message names host and port and no
  data directory is opened for nothing;
- the app's start-up raises a ``CdpError`` (the data directory is already
  served by another process...): uvicorn would log the whole traceback and exit
  with status 3; the error is caught at the app's lifespan, uvicorn's log lines
  about it are held back, and the error is raised again here.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from cdp.errors import CdpError

#: uvicorn's logger of start-up and lifespan problems.
UVICORN_LOG = "uvicorn.error"
#: ``--log-level`` choices. Not uvicorn's ``trace``: it logs each request's ASGI
#: scope, whose path holds the identifier of a profile lookup.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def log_level(name: str | None) -> str | None:
    """``--log-level`` checked (``ConfigError`` naming the choices) and, when
    given, set on the root logger with a stderr handler, so that every library
    logs at it (call before the app is built)."""
    from cdp.errors import ConfigError  # noqa: PLC0415

    if name is None:
        return None
    level = name.lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"--log-level {name!r}: choose one of {', '.join(LOG_LEVELS)}")
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("cdp").debug("logging at %s", level)  # shows the level took effect
    return level


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready TCP socket on ``host:port``; ``ConfigError`` when the
    address is taken or cannot be used."""
    from cdp.errors import ConfigError  # noqa: PLC0415

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    # As uvicorn does: a restarted server can take its port back at once.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = (error.strerror or str(error)).lower()
        hint = (
            "; another server (a second `cdp serve`?) is listening there: stop it or pick --port"
            if error.errno == 98  # EADDRINUSE
            else ""
        )
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}{hint}") from None
    return sock


class _HoldStartupLog(logging.Filter):
    """Drops uvicorn's error records once the start-up error has been caught
    (they repeat it as a traceback and "Application startup failed")."""

    def __init__(self, caught: list[CdpError]) -> None:
        super().__init__()
        self.caught = caught

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.caught and record.levelno >= logging.ERROR)


def _trap_startup_errors(
    app: FastAPI, caught: list[CdpError], announce: Callable[[], None]
) -> None:
    """Wrap the app's lifespan: a ``CdpError`` before start-up completes is kept
    in ``caught``; ``announce`` runs once start-up succeeded."""
    from cdp.errors import CdpError  # noqa: PLC0415

    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(the_app: Any) -> AsyncIterator[Any]:
        started = False
        try:
            async with inner(the_app) as state:
                started = True
                announce()
                yield state
        except CdpError as error:
            if not started:
                caught.append(error)
            raise

    app.router.lifespan_context = lifespan


def serve(app: FastAPI, host: str, port: int, log_level: str | None = None) -> None:
    """Serve ``app`` on ``host:port`` until interrupted (uvicorn logging at
    ``log_level``, default info; never an access log: its lines hold request
    paths, and a lookup's path is an email or phone); start-up failures raise
    ``CdpError`` (see the module docstring)."""
    import uvicorn  # noqa: PLC0415

    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    log = logging.getLogger(UVICORN_LOG)
    caught: list[CdpError] = []

    def announce() -> None:
        from cdp.runtime import heap  # noqa: PLC0415

        heap.settle()  # start-up is complete: its objects are never walked by the GC again
        log.info("cdp collector on http://%s:%d (Ctrl+C to stop)", shown_host, bound_port)

    _trap_startup_errors(app, caught, announce)
    config = uvicorn.Config(app, log_level=log_level or "info", access_log=False)
    hold = _HoldStartupLog(caught)
    log.addFilter(hold)  # after Config(): it configures uvicorn's loggers
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except SystemExit:
        if not caught:  # uvicorn gave up for a reason of its own: keep its exit status
            raise
    finally:
        log.removeFilter(hold)
        sock.close()
    if caught:
        raise caught[0]
