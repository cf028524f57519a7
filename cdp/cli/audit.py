"""``cdp audit``: read and verify the audit log (``cdp.services.privacy.audit``).

Who looked up a profile, read a segment, exported or synced an audience,
filed a privacy request, or changed a source or read token; never personal
data (identifiers appear as their kind and peppered token).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cdp.cli._app import app, console, errors, opts_of, print_json, table

#: Exit status when ``--verify`` finds the chain broken (as ``replay --verify``).
EXIT_BROKEN = 1


@app.command("audit")
def audit_command(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(help="From: a duration back (30m, 12h, 7d, 2w) or an ISO date/time (UTC)."),
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            help="Only this action (profile.lookup, segment.read, export, sync, token.add...); "
            "a prefix before a dot matches the family (token, segment, privacy)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="The newest N lines.")] = 100,
    verify: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Check the hash chain of the whole log; exit 1 if a line was changed, "
            "inserted or removed.",
        ),
    ] = False,
) -> None:
    """Show the audit log, oldest of the selected lines first (or verify it)."""
    from cdp.services.privacy import audit  # noqa: PLC0415

    opts = opts_of(ctx)
    data_dir = opts.settings.data_dir
    with errors():
        if verify:
            result = audit.verify(data_dir)
        else:
            start = audit.since_of(since) if since is not None else None
            found = audit.entries(data_dir, start, action, limit)
    if verify:
        if opts.json:
            print_json(
                {
                    "ok": result.ok,
                    "lines": result.lines,
                    "files": result.files,
                    "head": result.head,
                    "problems": list(result.problems),
                }
            )
        else:
            for problem in result.problems:
                console.print(f"[bold red]broken:[/] {problem}", highlight=False, soft_wrap=True)
            state = "intact" if result.ok else f"BROKEN ({len(result.problems)} problems)"
            console.print(
                f"audit log {state}: {result.lines:,} lines in {result.files} files; "
                f"head {result.head} (note it elsewhere: cutting lines off the end "
                "leaves the chain whole)",
                highlight=False,
            )
        if not result.ok:
            raise typer.Exit(EXIT_BROKEN)
        return
    if opts.json:
        print_json(
            [
                {
                    "at": e.at,
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "details": e.details,
                }
                for e in found
            ]
        )
        return
    console.print(
        table(
            "audit log",
            ["at (UTC)", "actor", "action", "target", "details"],
            [
                (
                    e.at.strftime("%Y-%m-%d %H:%M:%S"),
                    e.actor,
                    e.action,
                    _short(e.target),
                    " ".join(f"{k}={v}" for k, v in e.details.items()),
                )
                for e in found
            ],
        )
    )


def _short(target: str) -> str:
    """``email:<64 hex>`` as ``email:<first 12>…`` (the table stays readable)."""
    kind, _, rest = target.partition(":")
    if len(rest) == 64 and all(c in "0123456789abcdef" for c in rest):
        return f"{kind}:{rest[:12]}…"
    return target
