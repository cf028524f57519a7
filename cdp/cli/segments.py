"""``cdp segment`` and ``cdp export``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdp import segments as segment_service
from cdp.cli._app import (
    app,
    console,
    errors,
    opts_of,
    params,
    print_json,
    sub_app,
    table,
)
from cdp.engine import Engine
from cdp.query import audience
from connectors.destinations.csv_file import write_csv

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


# -------------------------------------------------------------------- export
@app.command("export")
def export_command(
    ctx: typer.Context,
    segment: Annotated[str, typer.Argument(help="Segment to export.")],
    out: Annotated[Path, typer.Option("--out", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="Output format: csv.")] = "csv",
    consent: Annotated[
        str,
        typer.Option(help="Export only customers who consented to: ads, email, line, sms, none."),
    ] = "ads",
    param: Annotated[list[str] | None, typer.Option(help="Segment parameter: name=value.")] = None,
) -> None:
    """Write a segment's consenting members with normalised identifiers to a file."""
    opts = opts_of(ctx)
    if fmt != "csv":
        raise typer.BadParameter(f"format {fmt!r} is not supported; use csv", param_hint="--format")
    with errors():
        con = Engine.open_read_only(opts.settings)
        try:
            result = audience(con, segment, params(param), None if consent == "none" else consent)
        finally:
            con.close()
        written = write_csv(out, result.columns, result.rows)
    summary = {
        "segment": segment,
        "file": str(out),
        "rows": written,
        "members": result.members,
        "excluded_without_consent": result.excluded_without_consent,
        "consent": consent,
    }
    if opts.json:
        print_json(summary)
    else:
        console.print(
            f"exported [bold]{written:,}[/] of {result.members:,} members of {segment} to {out} "
            f"({result.excluded_without_consent:,} left out: no {consent} consent)"
        )
