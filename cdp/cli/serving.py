"""``cdp serve``: the command, and running its HTTP app under uvicorn with
one-line errors instead of tracebacks.

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
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdp.cli._app import app as cli_app
from cdp.cli._app import errors, opts_of
from cdp.cli._defaults import KAFKA_DEFAULT_PREFIX
from cdp.cli.kafka import InputPrefix
from cdp.config import KAFKA_BOOTSTRAP_ENV, KAFKA_PREFIX_ENV

if TYPE_CHECKING:
    from fastapi import FastAPI

    from cdp.config import Settings
    from cdp.errors import CdpError
    from cdp.http.switch import AppSwitch

#: uvicorn's logger of start-up and lifespan problems.
UVICORN_LOG = "uvicorn.error"
#: ``--log-level`` choices. Not uvicorn's ``trace``: it logs each request's ASGI
#: scope, whose path holds the identifier of a profile lookup.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")


def logging_level(name: str | None) -> str | None:
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


def serve(app: FastAPI | AppSwitch, host: str, port: int, log_level: str | None = None) -> None:
    """Serve ``app`` on ``host:port`` until interrupted (uvicorn logging at
    ``log_level``, default info; never an access log: its lines hold request
    paths, and a lookup's path is an email or phone); start-up failures raise
    ``CdpError`` (see the module docstring). An ``AppSwitch`` gets the same
    for each app it starts, and a fresh app that fails to start after a pause
    stops the server with its error."""
    import uvicorn  # noqa: PLC0415

    from cdp.http.switch import AppSwitch  # noqa: PLC0415

    sock = bind(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    log = logging.getLogger(UVICORN_LOG)
    caught: list[CdpError] = []

    def announce() -> None:
        from cdp.runtime import heap  # noqa: PLC0415

        heap.settle()  # start-up is complete: its objects are never walked by the GC again
        log.info("cdp collector on http://%s:%d (Ctrl+C to stop)", shown_host, bound_port)

    config = uvicorn.Config(app, log_level=log_level or "info", access_log=False)
    server = uvicorn.Server(config)
    if isinstance(app, AppSwitch):
        starts = [0]

        def started() -> None:
            starts[0] += 1
            if starts[0] == 1:
                announce()
                return
            from cdp.runtime import heap  # noqa: PLC0415

            heap.settle()
            since = app.paused_at
            seconds = 0.0 if since is None else time.monotonic() - since
            log.info("serving again after pause %d (%.1f s)", app.pauses, seconds)

        def fatal(error: BaseException) -> None:
            from cdp.errors import CdpError  # noqa: PLC0415

            if isinstance(error, CdpError) and not caught:
                caught.append(error)
            server.should_exit = True

        app.prepare = lambda inner: _trap_startup_errors(inner, caught, lambda: None)
        app.on_started = started
        app.on_fatal = fatal
    else:
        _trap_startup_errors(app, caught, announce)
    hold = _HoldStartupLog(caught)
    log.addFilter(hold)  # after Config(): it configures uvicorn's loggers
    try:
        server.run(sockets=[sock])
    except SystemExit:
        if not caught:  # uvicorn gave up for a reason of its own: keep its exit status
            raise
    finally:
        log.removeFilter(hold)
        sock.close()
    if caught:
        raise caught[0]


@cli_app.command("serve")
def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8080,
    kafka: Annotated[
        str | None,
        typer.Option(
            "--kafka",
            "--bootstrap",
            envvar=KAFKA_BOOTSTRAP_ENV,
            help="Append to Kafka at HOST:PORT (distributed mode) instead of the data "
            f"directory; also ${KAFKA_BOOTSTRAP_ENV}.",
        ),
    ] = None,
    prefix: Annotated[
        str | None,
        typer.Option(
            help=f"Prefix of the workers' topics that lookups read [{KAFKA_DEFAULT_PREFIX}]; "
            f"also ${KAFKA_PREFIX_ENV}."
        ),
    ] = None,
    input_prefix: InputPrefix = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            help="Log this and above from every library on stderr: debug, info, warning, "
            "error, critical (default: uvicorn's own lines at info). No level logs personal data.",
        ),
    ] = None,
    archive: Annotated[
        Path | None,
        typer.Option(
            help="Kafka mode: the Parquet archive (`cdp archive`) the console's segment and "
            "analytics screens read."
        ),
    ] = None,
    defer_erasures: Annotated[
        bool,
        typer.Option(
            "--defer-erasures",
            help="Embedded: leave filed erasures for the next start or `cdp privacy "
            "process`, instead of pausing the server (503 + Retry-After) to carry them out "
            "as they are filed.",
        ),
    ] = False,
) -> None:
    """Run the Segment-compatible collector (OpenAPI docs at /docs) and the
    console (at /; users from `cdp users add`).

    With --kafka a request is acknowledged once the broker has acknowledged its
    events on the log topic; workers (`cdp worker`) fold them.

    Embedded, an erasure filed while the server runs (API, console, `cdp privacy
    erase`) is carried out in a pause: requests get 503 + Retry-After while the
    data directory's file is rewritten (docs/privacy.md), unless --defer-erasures.

    A port in use or a data directory already served is one line on stderr and
    exit status 2."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.http.app import create_app  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        level = logging_level(log_level)
        opts.settings.data_dir.mkdir(parents=True, exist_ok=True)
        mode = bootstrap.kafka_mode(kafka, prefix, input_prefix)
        # Erasures filed while no server ran, or interrupted: embedded ones wait for
        # the file to be free (now), Kafka ones run against the topics.
        from cdp.cli.privacy import process_open  # noqa: PLC0415

        process_open(opts.settings, mode)
        if mode is not None or defer_erasures:
            platform = bootstrap.serving(opts.settings, mode)
            app = create_app(opts.settings, platform=platform, archive=archive)
            serve(app, host, port, level)
            return
        serve(embedded_switch(opts.settings), host, port, level)


def embedded_switch(settings: Settings) -> Any:
    """The app of an embedded `cdp serve`: a switch that pauses for erasures."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.cli.privacy import process_open  # noqa: PLC0415
    from cdp.http.app import create_app  # noqa: PLC0415
    from cdp.http.erasures import OnlineErasures  # noqa: PLC0415
    from cdp.http.switch import AppSwitch  # noqa: PLC0415

    def make_app() -> Any:
        platform = bootstrap.serving(settings)
        return create_app(settings, platform=platform, on_erasure_filed=erasures.filed)

    switch = AppSwitch(make_app)
    erasures = OnlineErasures(settings.data_dir, switch, lambda: process_open(settings))
    switch.background.append(erasures.run)
    return switch
