"""What every console screen is built on: the context, the signed-in viewer,
rendering, CSRF, downloads.

A screen module (``cdp.console.screens.*``) exposes ``router(ctx) -> APIRouter``
whose routes take a :class:`Viewer` from :func:`signed_in` (or
:func:`needs` for a higher role) and answer with :func:`render`. Routes are plain
``def`` (FastAPI runs them in its thread pool), since most read DuckDB.

- Sign-in is required everywhere but the sign-in page and the static files: a
  request without a live session gets a redirect to ``/console/login``
  (``SignInRequired``); a signed-in user without the role gets a 403 page.
- Every POST is checked by :func:`checked_form` (the form's ``csrf`` field) or
  :func:`check_csrf_header` (``X-CSRF-Token``, for the builder's live count)
  against the session's token; a mismatch is a 403 and nothing is done.
- Pages carry a Content-Security-Policy that allows nothing from other
  origins, no inline script and no inline style; charts are server-side SVG
  (``cdp.console.charts``).
- A read token or a write key is not a session: the console reads only its
  own cookie.
- Figures that read the whole log (the overview, the analytics pages) go
  through the one result cache ``ConsoleContext.reports``
  (``cdp.console.report_cache``).
"""

from __future__ import annotations

import csv
import io
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from cdp.config import Settings
from cdp.console import charts, i18n
from cdp.console.report_cache import ReportCache
from cdp.console.sessions import Session, SessionStore
from cdp.errors import LogUnavailableError
from cdp.services.users import User, UserStore

if TYPE_CHECKING:
    import duckdb

    from cdp.ports.lookups import ProfileLookups
    from cdp.services.privacy.audit import AuditLog

PREFIX: Final = "/console"
COOKIE: Final = "cdp_session"
LANG_COOKIE: Final = "cdp_lang"
HERE: Final = Path(__file__).parent
SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """No live session: answered with a redirect to the sign-in page."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path


class Refused(Exception):
    """Signed in, but not allowed (role, CSRF): answered with a 403 page."""

    def __init__(self, message_key: str) -> None:
        super().__init__(message_key)
        self.message_key = message_key


@dataclass(slots=True)
class ConsoleContext:
    """What the screens read from, put together once by ``cdp.console.install``."""

    settings: Settings
    mode: str  # "embedded" | "kafka"
    lookups: ProfileLookups
    audit: AuditLog
    users: UserStore
    sessions: SessionStore
    #: A DuckDB cursor for this thread (embedded: the server's database; Kafka:
    #: the Parquet archive when one is given), else ``LogUnavailableError``.
    connect: Callable[[], duckdb.DuckDBPyConnection]
    templates: Environment = field(init=False)
    #: Whole-log figures per data mark, computed one at a time on one worker.
    reports: ReportCache = field(init=False)

    def __post_init__(self) -> None:
        self.templates = environment()
        self.reports = ReportCache(self.sql)

    def sql(self) -> duckdb.DuckDBPyConnection:
        """This thread's read cursor; ``LogUnavailableError`` saying why there is none."""
        return self.connect()

    def record(self, viewer: Viewer, action: str, target: str, **details: Any) -> None:
        """One audit line for a console action of ``viewer``."""
        self.audit.record(f"console:{viewer.user.name}", action, target, details or None)

    def record_now(self, viewer: Viewer, action: str, target: str, **details: Any) -> None:
        """:meth:`record`, on disk before this returns (audit lines are buffered):
        for exports and downloads (before the data leaves) and admin changes."""
        self.record(viewer, action, target, **details)
        self.audit.flush()


def environment() -> Environment:
    """The Jinja environment of the console templates (autoescaped, strict)."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html", "svg"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["charts"] = charts
    env.filters["num"] = i18n.number
    return env


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in user of one request."""

    user: User
    session: Session
    lang: str
    path: str

    @property
    def csrf(self) -> str:
        """The token every form of this session carries."""
        return self.session.csrf

    def may(self, role: str) -> bool:
        """Whether the user has ``role`` or a higher one."""
        return self.user.may(role)

    def t(self, key: str, **values: Any) -> str:
        """The text ``key`` in this viewer's language."""
        return i18n.text(key, self.lang, **values)


def lang_of(request: Request) -> str:
    """``ja`` or ``en``: the language cookie, else the browser's preference
    (``Accept-Language`` by q-value), else English."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in i18n.LANGS:
        return chosen
    return i18n.preferred(request.headers.get("accept-language", ""))


def _ctx(request: Request) -> ConsoleContext:
    ctx: ConsoleContext = request.app.state.console
    return ctx


def signed_in(request: Request) -> Viewer:
    """FastAPI dependency: the viewer of a live session, else ``SignInRequired``."""
    ctx = _ctx(request)
    session = ctx.sessions.get(request.cookies.get(COOKIE))
    user = ctx.users.get(session.user) if session is not None else None
    if session is None or user is None:
        raise SignInRequired(
            request.url.path + (f"?{request.url.query}" if request.url.query else "")
        )
    return Viewer(user, session, lang_of(request), request.url.path)


def needs(role: str) -> Callable[[Request], Viewer]:
    """FastAPI dependency: like :func:`signed_in`, and the user has ``role``."""

    def dependency(request: Request) -> Viewer:
        viewer = signed_in(request)
        if not viewer.may(role):
            raise Refused(f"refused.role.{role}")
        return viewer

    return dependency


async def checked_form(request: Request, viewer: Viewer) -> dict[str, str]:
    """The posted form as a dict, after its ``csrf`` field matched the session's
    token (else ``Refused``: nothing is done)."""
    form = await request.form()
    values = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    if not viewer.session.csrf_ok(values.get("csrf")):
        raise Refused("refused.csrf")
    return values


def check_csrf_header(request: Request, viewer: Viewer) -> None:
    """For script requests (``fetch``): the ``X-CSRF-Token`` header must match."""
    if not viewer.session.csrf_ok(request.headers.get("x-csrf-token")):
        raise Refused("refused.csrf")


def render(
    request: Request, viewer: Viewer | None, template: str, status: int = 200, **values: Any
) -> HTMLResponse:
    """A page: ``template`` with the viewer, ``t`` (translation), the nav and
    ``values``, with the console's security headers."""
    ctx = _ctx(request)
    lang = viewer.lang if viewer is not None else lang_of(request)
    html = ctx.templates.get_template(template).render(
        viewer=viewer,
        lang=lang,
        t=lambda key, **v: i18n.text(key, lang, **v),
        path=request.url.path,
        prefix=PREFIX,
        mode=ctx.mode,
        quote=urllib.parse.quote,
        **values,
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def unavailable(request: Request, viewer: Viewer, error: LogUnavailableError) -> HTMLResponse:
    """The page saying why a screen has no data here (Kafka mode without an archive...)."""
    return render(request, viewer, "unavailable.html", status=503, reason=str(error))


def json_response(payload: Any, status: int = 200) -> Response:
    """A JSON answer for the pages' scripts, with the console's security headers."""
    return Response(
        orjson.dumps(payload, default=str),
        status_code=status,
        media_type="application/json",
        headers=SECURITY_HEADERS,
    )


def csv_chunks(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """CSV text, UTF-8 with BOM (so spreadsheet programs read Japanese right):
    the header, then the rows, a chunk every 1,000 rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(columns)
    for n, row in enumerate(rows, 1):
        writer.writerow(row)
        if n % 1000 == 0:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


def _attachment(filename: str) -> dict[str, str]:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in filename)
    return {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{safe}"'}


def csv_download(filename: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> Response:
    """A CSV attachment of rows at hand (see :func:`csv_chunks`)."""
    return Response(
        b"".join(csv_chunks(columns, rows)),
        media_type="text/csv; charset=utf-8",
        headers=_attachment(filename),
    )


def csv_stream(
    filename: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> StreamingResponse:
    """A CSV attachment written as ``rows`` are read (every member of a segment)."""
    return StreamingResponse(
        csv_chunks(columns, rows),
        media_type="text/csv; charset=utf-8",
        headers=_attachment(filename),
    )


def local_path(target: str | None, default: str = PREFIX + "/") -> str:
    """``target`` if it is a path of the console, else ``default`` (no open redirects)."""
    if target and target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target:
        return target
    return default
