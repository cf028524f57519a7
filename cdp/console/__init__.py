"""The console: the platform in a browser, served by ``cdp serve`` at ``/``.

Server-rendered pages (Jinja2 templates under ``templates/``), one stylesheet
and one small script under ``static/``, charts as server-side SVG: every byte
ships in the package and nothing is fetched from another origin. The pieces:

- ``cdp.console.web``: the context the screens read from, the signed-in
  viewer, rendering with the security headers, CSRF, CSV downloads;
- ``cdp.console.auth``: sign-in (console users of ``cdp.services.users``,
  Argon2id, lock-out), sign-out, the language switch;
- ``cdp.console.sessions``: server-side sessions (SQLite, hashed tokens);
- ``cdp.console.i18n``: English and Japanese words, Japanese when the browser
  prefers it;
- ``cdp.console.charts``: SVG charts;
- ``cdp.console.screens``: one module per screen (overview, customers,
  segments, analytics, audiences, admin).

In embedded mode the screens read the server's own database (a cursor of the
writer's connection, as the read API does); in Kafka mode profiles come from the
compacted topics and the SQL screens from the Parquet archive when ``cdp serve
--kafka --archive DIR`` names one, else they say so.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from cdp.config import Settings
from cdp.console import auth
from cdp.console.screens import SCREENS
from cdp.console.sessions import SessionStore
from cdp.console.web import (
    HERE,
    PREFIX,
    ConsoleContext,
    Refused,
    SignInRequired,
    render,
    signed_in,
)
from cdp.errors import CdpError, LogUnavailableError
from cdp.services.users import UserStore

if TYPE_CHECKING:
    import duckdb

    from cdp.ports.lookups import ProfileLookups
    from cdp.services.privacy.audit import AuditLog


def install(
    app: FastAPI,
    settings: Settings,
    mode: str,
    lookups: ProfileLookups,
    audit: AuditLog,
    connect: Callable[[], duckdb.DuckDBPyConnection],
    sessions: SessionStore | None = None,
) -> ConsoleContext:
    """Mount the console on ``app``: ``/`` redirects to it, its pages live under
    ``/console``. ``connect`` gives this thread's read cursor (see ``ConsoleContext``);
    ``sessions``: a store with other time-outs (tests), else the defaults."""
    ctx = ConsoleContext(
        settings=settings,
        mode=mode,
        lookups=lookups,
        audit=audit,
        users=UserStore(settings.data_dir),
        sessions=sessions or SessionStore(settings.data_dir),
        connect=connect,
    )
    app.state.console = ctx
    app.mount(PREFIX + "/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.get("/", include_in_schema=False)
    def root() -> Response:
        return RedirectResponse(PREFIX + "/", status_code=303)

    app.include_router(auth.router(ctx))
    for name in SCREENS:
        module = importlib.import_module(f"cdp.console.screens.{name}")
        app.include_router(module.router(ctx))

    @app.exception_handler(SignInRequired)
    async def to_sign_in(request: Request, error: SignInRequired) -> Response:
        expired = bool(request.cookies.get("cdp_session"))
        target = f"{PREFIX}/login?next={_quote(error.path)}" + ("&m=expired" if expired else "")
        answer = RedirectResponse(target, status_code=303)
        if expired:
            answer.delete_cookie("cdp_session", path="/")
        return answer

    @app.exception_handler(Refused)
    async def refused(request: Request, error: Refused) -> Response:
        try:
            viewer = signed_in(request)
        except SignInRequired:
            viewer = None
        return render(request, viewer, "refused.html", status=403, message_key=error.message_key)

    return ctx


def _quote(path: str) -> str:
    import urllib.parse  # noqa: PLC0415

    return urllib.parse.quote(path, safe="/")


def error_page(request: Request, error: Exception) -> Response | None:
    """A console page for an error a screen raised (a query that failed, a
    service's refusal, a bug): the screen's frame with the reason, never the
    API's JSON; ``None`` outside the console. Unexpected errors say only where
    to look (the server log has the traceback)."""
    if not request.url.path.startswith(PREFIX) or not hasattr(request.app.state, "console"):
        return None
    try:
        viewer = signed_in(request)
    except SignInRequired:
        viewer = None
    if isinstance(error, LogUnavailableError):
        status, reason = 503, str(error)
    elif isinstance(error, CdpError):
        status, reason = 400, str(error)
    else:
        status, reason = 500, "internal error; the server log has the details"
    return render(request, viewer, "unavailable.html", status=status, reason=reason)
