"""Admin routes for who may send and who may read: sources (write keys) and read tokens.

The same services and audit actions as ``cdp sources`` and ``cdp tokens``
(``source.add``, ``source.rotate``, ``source.revoke``, ``source.origins``,
``token.add``, ``token.revoke``; targets ``source:<name>`` / ``token:<name>``).
A new key or token is answered on the page of its POST, this once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cdp.console.web import PREFIX, ConsoleContext, Viewer, checked_form, needs
from cdp.errors import CdpError

if TYPE_CHECKING:
    from cdp.console.screens.admin import AdminPage

SOURCES = PREFIX + "/admin/sources"
TOKENS = PREFIX + "/admin/tokens"
AdminViewer = Annotated[Viewer, Depends(needs("admin"))]
"""The signed-in admin (module level: FastAPI resolves the annotations here)."""


def _lines(text: str) -> list[str]:
    """Origins typed one a line (or separated by spaces or commas)."""
    return [part for part in text.replace(",", " ").split() if part]


def add_routes(routes: APIRouter, ctx: ConsoleContext, page: AdminPage) -> None:
    """Mount the source and token routes on ``routes``."""
    sources, tokens = page.sources, page.tokens

    @routes.post(SOURCES)
    async def add_source(request: Request, viewer: AdminViewer) -> Response:
        form = await checked_form(request, viewer)
        name, origins = form.get("name", "").strip(), _lines(form.get("origins", ""))

        def given() -> dict[str, Any]:
            return {"origins": list(next(s.origins for s in sources.list() if s.name == name))}

        return page.issue(
            request,
            viewer,
            "source",
            name,
            lambda: sources.add(name, origins=origins),
            "source.add",
            given,
        )

    @routes.post(SOURCES + "/{name}/rotate")
    async def rotate_source(request: Request, name: str, viewer: AdminViewer) -> Response:
        await checked_form(request, viewer)
        return page.issue(
            request, viewer, "source", name, lambda: sources.rotate(name), "source.rotate"
        )

    @routes.post(SOURCES + "/{name}/revoke")
    async def revoke_source(request: Request, name: str, viewer: AdminViewer) -> Response:
        await checked_form(request, viewer)
        return await page.change(
            request, viewer, lambda: sources.revoke(name), "source.revoke", name, "sources"
        )

    @routes.post(SOURCES + "/{name}/origins")
    async def source_origins(request: Request, name: str, viewer: AdminViewer) -> Response:
        form = await checked_form(request, viewer)
        add, remove = _lines(form.get("add", "")), _lines(form.get("remove", ""))
        try:
            source = sources.set_origins(name, add=add, remove=remove)
        except CdpError as error:
            return page.show(request, viewer, 400, str(error))
        if add or remove:
            ctx.record_now(viewer, "source.origins", f"source:{name}", origins=list(source.origins))
        return page.done("source.origins", name, "sources")

    @routes.post(TOKENS)
    async def add_token(request: Request, viewer: AdminViewer) -> Response:
        form = await checked_form(request, viewer)
        name = form.get("name", "").strip()
        form_data = await request.form()
        scopes = [s for s in form_data.getlist("scope") if isinstance(s, str)]

        def given() -> dict[str, Any]:
            return {"scopes": list(next(t.scopes for t in tokens.list() if t.name == name))}

        return page.issue(
            request, viewer, "token", name, lambda: tokens.add(name, scopes), "token.add", given
        )

    @routes.post(TOKENS + "/{name}/revoke")
    async def revoke_token(request: Request, name: str, viewer: AdminViewer) -> Response:
        await checked_form(request, viewer)
        return await page.change(
            request, viewer, lambda: tokens.revoke(name), "token.revoke", name, "tokens"
        )
