"""``cdp users``: who may sign in to the console (``cdp serve``, at ``/``)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from cdp.cli._app import console, errors, opts_of, print_json, sub_app, table

users_app = sub_app("users", "Console users: add, list, remove, set a role or a password, unlock.")

Role = Annotated[
    str,
    typer.Option(
        "--role",
        help="viewer (reads), marketer (+ segments, exports), admin (+ sources, tokens, users, privacy).",
    ),
]
PasswordStdin = Annotated[
    bool,
    typer.Option(
        "--password-stdin",
        help="Read the password from the first line of standard input instead of asking.",
    ),
]


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("password", hide_input=True, confirmation_prompt=True))


@users_app.command("add")
def users_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Sign-in name (lower case; an email is fine).")],
    role: Role = "viewer",
    password_stdin: PasswordStdin = False,
) -> None:
    """Create a console user; the password is asked twice (or read with --password-stdin)
    and stored only as an Argon2id hash."""
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.users import UserStore  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        user = UserStore(opts.settings.data_dir).add(name, role, _password(password_stdin))
        audit.record_cli(opts.settings.data_dir, "user.add", f"user:{name}", {"role": role})
    if opts.json:
        print_json({"name": user.name, "role": user.role})
    else:
        console.print(f"console user [bold]{user.name}[/] ({user.role}) created")


@users_app.command("list")
def users_list(ctx: typer.Context) -> None:
    """Every console user with role, creation, last sign-in and lock-out."""
    from cdp.services.users import UserStore  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        users = UserStore(opts.settings.data_dir).list()
    rows = [
        {
            "name": u.name,
            "role": u.role,
            "created_at": u.created_at,
            "last_sign_in": u.last_sign_in,
            "locked_until": u.locked_until,
        }
        for u in users
    ]
    if opts.json:
        print_json(rows)
    else:
        console.print(
            table(
                "console users",
                ["name", "role", "created", "last sign-in", "locked until"],
                [tuple(r.values()) for r in rows],
            )
        )


@users_app.command("remove")
def users_remove(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Delete a console user and end their sessions (a running server too)."""
    from cdp.console.sessions import SessionStore  # noqa: PLC0415
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.users import UserStore  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        UserStore(opts.settings.data_dir).remove(name)
        SessionStore(opts.settings.data_dir).end_user(name)
        audit.record_cli(opts.settings.data_dir, "user.remove", f"user:{name}")
    console.print(f"console user [bold]{name}[/] removed")


@users_app.command("role")
def users_role(ctx: typer.Context, name: Annotated[str, typer.Argument()], role: Role) -> None:
    """Give a user another role (effective on their next request)."""
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.users import UserStore  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        UserStore(opts.settings.data_dir).set_role(name, role)
        audit.record_cli(opts.settings.data_dir, "user.role", f"user:{name}", {"role": role})
    console.print(f"console user [bold]{name}[/] is now {role}")


@users_app.command("password")
def users_password(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument()],
    password_stdin: PasswordStdin = False,
) -> None:
    """Set a new password (ends the user's sessions and lifts a lock-out)."""
    from cdp.console.sessions import SessionStore  # noqa: PLC0415
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.users import UserStore  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        UserStore(opts.settings.data_dir).set_password(name, _password(password_stdin))
        SessionStore(opts.settings.data_dir).end_user(name)
        audit.record_cli(opts.settings.data_dir, "user.password", f"user:{name}")
    console.print(f"password of [bold]{name}[/] changed; their sessions ended")


@users_app.command("unlock")
def users_unlock(ctx: typer.Context, name: Annotated[str, typer.Argument()]) -> None:
    """Lift a lock-out after repeated failed sign-ins."""
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.users import UserStore  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        UserStore(opts.settings.data_dir).unlock(name)
        audit.record_cli(opts.settings.data_dir, "user.unlock", f"user:{name}")
    console.print(f"console user [bold]{name}[/] unlocked")
