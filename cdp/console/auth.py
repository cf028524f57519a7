"""Sign-in, sign-out and the language switch of the console.

The sign-in form has no session yet, so its CSRF protection is a double-submit
token: a random value in the ``cdp_login_csrf`` cookie (HttpOnly, SameSite=Strict)
that the form must repeat. Every attempt, good or bad, is audited
(``console.sign_in``) with the user name and the outcome, never the password.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from cdp.console.web import (
    COOKIE,
    LANG_COOKIE,
    PREFIX,
    ConsoleContext,
    Viewer,
    checked_form,
    lang_of,
    local_path,
    render,
    signed_in,
)
from cdp.errors import AuthError

LOGIN_COOKIE: Final = "cdp_login_csrf"


def _secure(request: Request) -> bool:
    """Cookies are marked Secure when the request came over TLS (directly, or
    through a proxy uvicorn trusts for X-Forwarded-Proto)."""
    return request.url.scheme == "https"


def router(ctx: ConsoleContext) -> APIRouter:
    """``GET/POST /console/login``, ``POST /console/logout``, ``POST /console/lang``."""
    routes = APIRouter(include_in_schema=False)

    def login_page(
        request: Request, message: str = "", error: bool = False, user: str = "", status: int = 200
    ) -> Response:
        token = secrets.token_urlsafe(24)
        page = render(
            request,
            None,
            "login.html",
            status=status,
            csrf=token,
            next=local_path(request.query_params.get("next")),
            message=message,
            error=error,
            user=user,
            no_users=not ctx.users.list(),
        )
        page.set_cookie(
            LOGIN_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=_secure(request),
            path=PREFIX + "/login",
        )
        return page

    @routes.get(PREFIX + "/login")
    def login_form(request: Request) -> Response:
        message = {"expired": "auth.expired", "out": "auth.signed_out"}.get(
            request.query_params.get("m", ""), ""
        )
        return login_page(request, message)

    @routes.post(PREFIX + "/login")
    async def login(request: Request) -> Response:
        form = await request.form()
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        given = values.get("csrf", "")
        name = values.get("user", "").strip().lower()
        if not cookie or not hmac.compare_digest(cookie.encode(), given.encode()):
            return render(request, None, "refused.html", status=403, message_key="refused.csrf")
        try:
            user = ctx.users.authenticate(name, values.get("password", ""))
        except AuthError as error:
            locked = "locked" in str(error)
            ctx.audit.record(f"console:{name or '-'}", "console.sign_in", "console", {"ok": False})
            return login_page(
                request, "auth.locked" if locked else "auth.failed", True, name, status=401
            )
        ctx.audit.record(f"console:{user.name}", "console.sign_in", "console", {"ok": True})
        target = local_path(values.get("next"))
        answer = RedirectResponse(target, status_code=303)
        answer.set_cookie(
            COOKIE,
            ctx.sessions.start(user.name),
            httponly=True,
            samesite="lax",
            secure=_secure(request),
            path="/",
        )
        answer.delete_cookie(LOGIN_COOKIE, path=PREFIX + "/login")
        return answer

    @routes.post(PREFIX + "/logout")
    async def logout(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
        await checked_form(request, viewer)
        ctx.sessions.end(request.cookies.get(COOKIE))
        ctx.record(viewer, "console.sign_out", "console")
        answer = RedirectResponse(PREFIX + "/login?m=out", status_code=303)
        answer.delete_cookie(COOKIE, path="/")
        return answer

    @routes.post(PREFIX + "/lang")
    async def switch_language(
        request: Request, viewer: Annotated[Viewer, Depends(signed_in)]
    ) -> Response:
        form = await checked_form(request, viewer)
        lang = form.get("lang") if form.get("lang") in ("en", "ja") else lang_of(request)
        answer = RedirectResponse(local_path(form.get("next")), status_code=303)
        answer.set_cookie(
            LANG_COOKIE,
            lang or "en",
            samesite="lax",
            secure=_secure(request),
            path="/",
            max_age=365 * 86400,
        )
        return answer

    return routes
