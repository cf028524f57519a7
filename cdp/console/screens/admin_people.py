"""Admin routes about people: console users, and privacy requests about customers.

Users: the same service and audit actions as ``cdp users`` (``user.add``,
``user.role``, ``user.unlock``, ``user.remove``; target ``user:<name>``, never
the password). Removing a user ends their sessions at once. An admin cannot
remove themselves or change their own role, so the console always keeps one.

Privacy requests: filed as ``POST /v1/privacy/requests`` files them
(``cdp.services.privacy.filing.file_request``), by actor ``console:<user>``,
and audited as ``privacy.request`` with the request id, its type and the kind
of identifier: never the identifier.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cdp.console.web import PREFIX, ConsoleContext, Viewer, checked_form, needs
from cdp.errors import CdpError
from cdp.services.privacy.filing import file_request

if TYPE_CHECKING:
    from cdp.console.screens.admin import AdminPage

USERS = PREFIX + "/admin/users"
PRIVACY = PREFIX + "/admin/privacy"
AdminViewer = Annotated[Viewer, Depends(needs("admin"))]
"""The signed-in admin (module level: FastAPI resolves the annotations here)."""


def add_routes(
    routes: APIRouter,
    ctx: ConsoleContext,
    page: AdminPage,
    on_filed: Callable[[Request], Any],
) -> None:
    """Mount the user and privacy-request routes on ``routes``."""
    users = ctx.users

    @routes.post(USERS)
    async def add_user(request: Request, viewer: AdminViewer) -> Response:
        form = await checked_form(request, viewer)
        name, role = form.get("name", "").strip().lower(), form.get("role", "")
        password = form.get("password", "")  # Argon2id hashing: off the event loop (change)
        return await page.change(
            request,
            viewer,
            lambda: users.add(name, role, password),
            "user.add",
            name,
            "users",
            role=role,
        )

    def yourself(viewer: Viewer, name: str) -> str:
        return (
            f"you cannot change or remove your own user {name!r} here; "
            "another admin can (or `cdp users`)"
            if name == viewer.user.name
            else ""
        )

    @routes.post(USERS + "/{name}/role")
    async def set_role(request: Request, name: str, viewer: AdminViewer) -> Response:
        form = await checked_form(request, viewer)
        role = form.get("role", "")
        if problem := yourself(viewer, name):
            return page.show(request, viewer, 400, problem)
        return await page.change(
            request,
            viewer,
            lambda: users.set_role(name, role),
            "user.role",
            name,
            "users",
            role=role,
        )

    @routes.post(USERS + "/{name}/unlock")
    async def unlock(request: Request, name: str, viewer: AdminViewer) -> Response:
        await checked_form(request, viewer)
        return await page.change(
            request, viewer, lambda: users.unlock(name), "user.unlock", name, "users"
        )

    @routes.post(USERS + "/{name}/remove")
    async def remove(request: Request, name: str, viewer: AdminViewer) -> Response:
        await checked_form(request, viewer)
        if problem := yourself(viewer, name):
            return page.show(request, viewer, 400, problem)
        try:
            users.remove(name)
        except CdpError as error:
            return page.show(request, viewer, 400, str(error))
        ended = ctx.sessions.end_user(name)
        ctx.record_now(viewer, "user.remove", f"user:{name}", sessions_ended=ended)
        return page.done("user.remove", name, "users")

    @routes.post(PRIVACY)
    async def new_request(request: Request, viewer: AdminViewer) -> Response:
        form = await checked_form(request, viewer)
        kind, identifier = form.get("type", ""), form.get("identifier", "").strip()

        def work() -> Any:
            return file_request(
                ctx.settings.data_dir,
                ctx.lookups,
                kind,
                identifier,
                f"console:{viewer.user.name}",
                ctx.mode,
                on_filed(request),
            )

        try:  # a profile lookup and file writes: off the event loop
            filed = await anyio.to_thread.run_sync(work)
        except CdpError as error:
            return page.show(request, viewer, 400, str(error))
        ctx.record_now(
            viewer,
            "privacy.request",
            f"request:{filed.id}",
            type=filed.type,
            named_by=filed.subject_kind,
            status=filed.status,
        )
        return page.done("privacy", filed.id, "privacy-requests")
