"""``cdp export``: a segment's consenting audience to a file in a destination's format.

SEGMENT is a built-in or saved segment, or a definition file (``.yaml``,
``.yml``, ``.json``) resolved exactly as ``cdp segment run FILE`` does. The
summary accounts for every member of the segment: exported, or left out for
lack of consent or of a usable identifier (``connectors.destinations.accounting``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdp.cli._app import app, console, errors, opts_of, params, print_json, table
from cdp.cli.destinations import is_push_destination, run_sync
from cdp.cli.segment_definitions import is_definition_file, segment_entry

if TYPE_CHECKING:
    from cdp.cli._app import Options
    from cdp.services.query import Audience
    from connectors.destinations.accounting import Written


def _list_destinations(as_json: bool) -> None:
    from connectors.destinations import registry  # noqa: PLC0415

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
    segment: Annotated[
        str | None,
        typer.Argument(help="Segment to export: a name, or a definition file (.yaml/.json)."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="Destination (see --list-destinations); default: csv."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="File to write.")] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="Alias of --to, kept for compatibility.")
    ] = None,
    consent: Annotated[
        str | None,
        typer.Option(
            help="Export only customers who consented to: ads, email, line, sms, none "
            "(default: the destination's, ads, or line for line_audience)."
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
    recipient: Annotated[
        str | None,
        typer.Option(
            help="Who receives the file (e.g. the ad account), for the APPI provision "
            "record (cdp privacy records); default: the destination's name."
        ),
    ] = None,
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
            if is_definition_file(segment):
                # The sync journal remembers what was sent per segment name; a file
                # has no stable name to resume or diff against.
                raise typer.BadParameter(
                    f"{name} is a push destination, which syncs saved segments: "
                    f"save the file first (cdp segment save {segment})",
                    param_hint="SEGMENT",
                )
            run_sync(opts, segment, name, params(param), dry_run=False)
            return
        # ------------------------------------------------------------------------------
        from connectors.destinations import registry  # noqa: PLC0415

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
        found, suppressed = _audience(
            opts, segment, params(param), None if purpose == "none" else purpose
        )
        written = destination.write(out, found, options)
        _record_provision(opts, found, written, name, out, recipient)
        _audit(opts, found, written, name, out, purpose)
    summary = _summary(found, written, name, out, purpose, options, suppressed)
    if opts.json:
        print_json(summary)
        return
    from rich.markup import escape  # noqa: PLC0415

    from connectors.destinations.accounting import describe  # noqa: PLC0415

    console.print(
        f"exported [bold]{summary['exported']:,}[/] of {summary['members']:,} members of "
        f"{escape(summary['segment'])} to {escape(str(out))} ({name}, "
        f"{written.records:,} records); left out: {describe(summary['excluded'], purpose)}"
    )


def _audience(
    opts: Options, segment: str, overrides: dict[str, str], consent: str | None
) -> tuple[Audience, int]:
    """The consenting audience of a segment name or definition file (read-only),
    without the suppressed members, and how many of those were left out."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.services.query import audience_of  # noqa: PLC0415
    from cdp.services.segment_lang.catalog import execute  # noqa: PLC0415
    from connectors.destinations.privacy import without_suppressed  # noqa: PLC0415

    entry = segment_entry(opts.settings, segment)  # built-in, saved, or a file
    con = bootstrap.open_read(opts.settings)
    try:
        found = audience_of(con, execute(con, entry.name, entry.compile(overrides)), consent)
        return without_suppressed(con, opts.settings.data_dir, found)
    finally:
        con.close()


def _record_provision(
    opts: Options, found: Audience, written: Written, name: str, out: Path, recipient: str | None
) -> None:
    """APPI Art. 29: a file for a third party is a provision; record who is in it."""
    from connectors.destinations.privacy import record_export  # noqa: PLC0415

    record_export(
        opts.settings.data_dir,
        destination=name,
        recipient=recipient,
        path=out.resolve(),
        found=found,
        people=written.people,
        items=written.items,
    )


def _audit(
    opts: Options, found: Audience, written: Written, name: str, out: Path, purpose: str
) -> None:
    """The audit line of a file export (counts, no person)."""
    from cdp.services.privacy import audit  # noqa: PLC0415

    audit.record_cli(
        opts.settings.data_dir,
        "export",
        f"segment:{found.segment}",
        {"destination": name, "file": str(out), "exported": written.exported, "consent": purpose},
    )


def _summary(
    found: Audience,
    written: Written,
    name: str,
    out: Path,
    purpose: str,
    options: dict[str, str],
    suppressed: int = 0,
) -> dict[str, Any]:
    """The export summary; ``members == exported + sum(excluded.values())``."""
    from connectors.destinations.accounting import NO_CONSENT  # noqa: PLC0415
    from connectors.destinations.privacy import SUPPRESSED  # noqa: PLC0415

    excluded = {NO_CONSENT: found.excluded_without_consent, **written.excluded}
    if suppressed:
        excluded[SUPPRESSED] = suppressed
    accounted = written.exported + sum(excluded.values())
    if accounted != found.members:  # a writer that lost count would mislead the user
        raise RuntimeError(
            f"export of {found.segment} to {name}: {found.members} members but "
            f"{accounted} accounted for ({written.exported} exported, excluded {excluded})"
        )
    return {
        "segment": found.segment,
        "destination": name,
        "file": str(out),
        "rows": written.records,
        "members": found.members,
        "consenting": len(found.rows) + suppressed,
        "exported": written.exported,
        "excluded_without_consent": found.excluded_without_consent,
        "excluded": excluded,
        "consent": purpose,
        "options": options,
    }
