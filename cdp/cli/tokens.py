"""``cdp tokens``: read tokens of the profile and segment API."""

from __future__ import annotations

from typing import Annotated

import typer

from cdp.cli._app import console, errors, opts_of, print_json, sub_app, table
from cdp.cli._defaults import TOKEN_SCOPES

tokens_app = sub_app("tokens", "Read tokens of the profile/segment API (separate from write keys).")


@tokens_app.command("add")
def tokens_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name for who uses the token (e.g. crm-sync).")],
    scope: Annotated[
        list[str] | None,
        typer.Option(help=f"What the token may read (repeatable): {', '.join(TOKEN_SCOPES)}."),
    ] = None,
) -> None:
    """Create a read token and print it (shown once, stored only hashed)."""
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.tokens import TokenRegistry  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        registry = TokenRegistry(opts.settings.data_dir)
        token = registry.add(name, scope or [])
        scopes = next(t.scopes for t in registry.list() if t.name == name)
        audit.record_cli(
            opts.settings.data_dir, "token.add", f"token:{name}", {"scopes": list(scopes)}
        )
    if opts.json:
        print_json({"name": name, "scopes": list(scopes), "token": token})
    else:
        console.print(f"read token [bold]{name}[/] ({', '.join(scopes)}) created (shown once):")
        console.print(token, highlight=False, soft_wrap=True)


@tokens_app.command("list")
def tokens_list(ctx: typer.Context) -> None:
    """Every read token with its scopes, when it was created and revoked."""
    from cdp.services.tokens import TokenRegistry  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        items = TokenRegistry(opts.settings.data_dir).list()
    rows = [
        {
            "name": t.name,
            "scopes": list(t.scopes),
            "created_at": t.created_at,
            "revoked_at": t.revoked_at,
            "active": t.active,
        }
        for t in items
    ]
    if opts.json:
        print_json(rows)
    else:
        console.print(
            table(
                "read tokens",
                ["name", "scopes", "created", "revoked"],
                [(t.name, " ".join(t.scopes), t.created_at, t.revoked_at) for t in items],
            )
        )


@tokens_app.command("revoke")
def tokens_revoke(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Refuse a read token from now on (a running server too, without a restart)."""
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.tokens import TokenRegistry  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        token = TokenRegistry(opts.settings.data_dir).revoke(name)
        audit.record_cli(opts.settings.data_dir, "token.revoke", f"token:{name}")
    if opts.json:
        print_json({"name": token.name, "revoked_at": token.revoked_at})
    else:
        console.print(f"read token [bold]{token.name}[/] revoked at {token.revoked_at}")
