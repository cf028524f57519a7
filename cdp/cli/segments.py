"""``cdp segment`` and ``cdp export``."""

from __future__ import annotations

from typing import Annotated

import typer

from cdp import segments as segment_service
from cdp.cli._app import (
    console,
    errors,
    opts_of,
    params,
    print_json,
    sub_app,
    table,
)
from cdp.engine import Engine

segment_app = sub_app("segment", "Segments: list them, run one.")


@segment_app.command("list")
def segment_list(ctx: typer.Context) -> None:
    """The built-in segments and what they are for."""
    opts = opts_of(ctx)
    items = [
        {
            "name": s.name,
            "purpose": s.purpose,
            "description": segment_service.describe(s),
            "params": dict(s.params),
        }
        for s in segment_service.BUILTIN.values()
    ]
    if opts.json:
        print_json(items)
    else:
        console.print(
            table(
                "segments",
                ["name", "purpose", "description"],
                [(i["name"], i["purpose"], i["description"]) for i in items],
            )
        )


@segment_app.command("run")
def segment_run(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Segment name (see `cdp segment list`).")],
    param: Annotated[
        list[str] | None, typer.Option(help="Override a parameter: name=value.")
    ] = None,
    limit: Annotated[int, typer.Option(min=0, help="Members to list (0: count only).")] = 10,
) -> None:
    """Evaluate a segment: member count and the first members."""
    opts = opts_of(ctx)
    with errors():
        con = Engine.open_read_only(opts.settings)
        try:
            result = segment_service.run(con, name, params(param))
        finally:
            con.close()
    if opts.json:
        print_json(
            {
                "name": result.name,
                "count": result.count,
                "params": result.params,
                "members": result.members[:limit] if limit else [],
            }
        )
        return
    segment = segment_service.get(name)
    console.print(f"[bold]{name}[/]: {segment_service.describe(segment, result.params)}")
    console.print(f"members: [bold]{result.count:,}[/]")
    for member in result.members[:limit]:
        console.print(f"  {member}")
