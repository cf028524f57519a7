"""``cdp export``: a segment's consenting audience to a file in a destination's format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdp.cli._app import app, console, errors, opts_of, params, print_json, table
from cdp.cli.destinations import is_push_destination, run_sync
from cdp.engine import Engine
from cdp.query import audience
from cdp.segment_lang import SegmentCatalog
from connectors.destinations import registry


def _list_destinations(as_json: bool) -> None:
    rows = [
        (
            d.name,
            d.extension,
            d.consent,
            " ".join(f"{k}={'|'.join(v)}" for k, v in d.options.items()),
            d.description,
        )
        for d in registry.DESTINATIONS.values()
    ]
    if as_json:
        print_json(
            [
                {
                    "name": name,
                    "extension": ext,
                    "consent": consent,
                    "options": dict(registry.DESTINATIONS[name].options),
                    "description": text,
                }
                for name, ext, consent, _, text in rows
            ]
        )
    else:
        console.print(
            table(
                "File destinations (cdp export SEGMENT --to NAME --out FILE)",
                ["name", "extension", "consent", "options", "description"],
                rows,
            )
        )


@app.command("export")
def export_command(
    ctx: typer.Context,
    segment: Annotated[str | None, typer.Argument(help="Segment to export.")] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Destination (see --list-destinations) [csv]."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="File to write.")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Alias of --to, kept for compatibility.")
    ] = None,
    consent: Annotated[
        str | None,
        typer.Option(
            help="Export only customers who consented to: ads, email, line, sms, none "
            "[the destination's default: ads, or line for line_audience]."
        ),
    ] = None,
    param: Annotated[list[str] | None, typer.Option(help="Segment parameter: name=value.")] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(help="Destination option: name=value (e.g. hashed=false, identifier=phone)."),
    ] = None,
    list_destinations: Annotated[
        bool, typer.Option("--list-destinations", help="List the file destinations and exit.")
    ] = False,
) -> None:
    """Write a segment's consenting members to a file in a destination's exact format."""
    opts = opts_of(ctx)
    if list_destinations:
        _list_destinations(opts.json)
        return
    if segment is None:
        raise typer.BadParameter("name the segment to export", param_hint="SEGMENT")
    if to is not None and fmt is not None and to != fmt:
        raise typer.BadParameter(f"--format {fmt} contradicts --to {to}", param_hint="--format")
    name = to or fmt or "csv"
    with errors():
        # --- HTTP push destinations (connectors/destinations/push) -------------------
        # A destination configured in destinations.toml is synced (incremental push)
        # instead of writing a file. Everything below handles file destinations only.
        if is_push_destination(opts, name):
            if out is not None or consent is not None or option:
                raise typer.BadParameter(
                    f"{name} is a push destination: --out, --consent and --option do not "
                    "apply (its consent is set in destinations.toml)",
                    param_hint="--to",
                )
            run_sync(opts, segment, name, params(param), dry_run=False)
            return
        # ------------------------------------------------------------------------------
        if fmt is not None and to is None and fmt not in registry.DESTINATIONS:
            raise typer.BadParameter(
                f"format {fmt!r} is not supported; use one of {', '.join(registry.DESTINATIONS)}",
                param_hint="--format",
            )
        destination = registry.get(name)
        options = destination.resolve_options(params(option))
        if out is None:
            raise typer.BadParameter(
                f"destination {name} writes a file: give --out FILE{destination.extension}",
                param_hint="--out",
            )
        purpose = consent or destination.consent
        con = Engine.open_read_only(opts.settings)
        try:
            result = audience(
                con,
                segment,
                params(param),
                None if purpose == "none" else purpose,
                catalog=SegmentCatalog(opts.settings.data_dir),  # built-in or saved segments
            )
        finally:
            con.close()
        written = destination.write(out, result, options)
    summary = {
        "segment": segment,
        "destination": name,
        "file": str(out),
        "rows": written,
        "members": result.members,
        "consenting": len(result.rows),
        "excluded_without_consent": result.excluded_without_consent,
        "consent": purpose,
        "options": options,
    }
    if opts.json:
        print_json(summary)
    else:
        console.print(
            f"exported [bold]{written:,}[/] records ({name}) from {len(result.rows):,} of "
            f"{result.members:,} members of {segment} to {out} "
            f"({result.excluded_without_consent:,} left out: no {purpose} consent)"
        )
