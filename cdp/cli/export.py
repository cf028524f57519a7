"""``cdp export``: a segment's audience to a file or a destination."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdp.cli._app import app, console, errors, opts_of, params, print_json
from cdp.engine import Engine
from cdp.query import audience
from connectors.destinations.csv_file import write_csv


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
