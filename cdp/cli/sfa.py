"""``cdp destinations push``: hand a segment's leads to the SFA destinations.

Salesforce, HubSpot and kintone destinations are configured in
``<data dir>/destinations.toml`` (``connectors.destinations.sfa.config``);
the push runs ``connectors.destinations.sfa.handoff``.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cdp.cli._app import console, errors, opts_of, params, print_json, table
from cdp.cli.destinations import destinations_app


@destinations_app.command("push")
def push_command(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(help="SFA destinations [every salesforce/hubspot/kintone one]."),
    ] = None,
    segment: Annotated[
        str | None,
        typer.Option("--segment", help="Segment to push [each destination's; hot_leads]."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the records that would be sent; send nothing.")
    ] = False,
    param: Annotated[list[str] | None, typer.Option(help="Segment parameter: name=value.")] = None,
) -> None:
    """Upsert the segment's leads (new or changed since the last push) into each SFA.

    Deletions an erasure still owes a destination are sent first. Exit status 1
    when a destination failed, refused records or still owes deletions (see
    ``cdp destinations status NAME``); the others are pushed anyway.
    """
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.errors import NotFoundError  # noqa: PLC0415
    from cdp.services.segment_lang import SegmentCatalog  # noqa: PLC0415
    from connectors.destinations.sfa import handoff  # noqa: PLC0415

    opts = opts_of(ctx)
    data_dir = opts.settings.data_dir
    with errors():
        every = handoff.sfa_destinations(data_dir)
        for name in names or []:
            if name not in every:
                known = ", ".join(sorted(every)) or "none"
                raise NotFoundError(
                    f"no SFA destination named {name!r} in {data_dir / 'destinations.toml'}; "
                    f"configured: {known}"
                )
        chosen = [every[n] for n in names] if names else [every[n] for n in sorted(every)]
        if not chosen:
            raise NotFoundError(
                f"no salesforce, hubspot or kintone destination in {data_dir / 'destinations.toml'}"
            )
        outcomes = handoff.push_all(
            lambda: bootstrap.open_read(opts.settings),
            SegmentCatalog(data_dir),
            chosen,
            data_dir=data_dir,
            segment=segment,
            overrides=params(param),
            dry_run=dry_run,
        )
    if opts.json:
        print_json([o.to_json() for o in outcomes])
    else:
        for outcome in outcomes:
            _print(outcome)
    if not all(o.ok for o in outcomes):
        raise typer.Exit(1)


def _print(outcome: object) -> None:
    from connectors.destinations.sfa.handoff import Outcome  # noqa: PLC0415

    assert isinstance(outcome, Outcome)
    head = f"{outcome.destination} ({outcome.platform}) ← {outcome.segment}"
    if outcome.deleted:
        console.print(f"{outcome.destination}: deleted {outcome.deleted} records of erased people")
    if outcome.deletion_error is not None:
        console.print(
            f"[red]deletion still owed[/] {outcome.destination} (records of erased people): "
            f"{outcome.deletion_error}"
        )
    report = outcome.report
    if outcome.error is not None or report is None:
        console.print(f"[red]failed[/] {head}: {outcome.error}")
        return
    left_out = ", ".join(f"{k} {v:,}" for k, v in sorted(report.excluded.items()) if v) or "none"
    if report.status == "dry run":
        pending = f"; pending plan {report.pending['id']} resumes first" if report.pending else ""
        console.print(
            f"dry run {head}: {report.adds:,} records to upsert in {report.chunks} requests "
            f"({report.members:,} of {report.segment_members:,} in the segment; "
            f"left out: {left_out}){pending}"
        )
        if outcome.preview:
            fields = sorted({k for row in outcome.preview for k in row} - {"customer_id"})
            console.print(
                table(
                    f"first {len(outcome.preview)} of {report.adds:,} records",
                    ["customer_id", *fields],
                    [
                        [row.get("customer_id"), *(row.get(f) for f in fields)]
                        for row in outcome.preview
                    ],
                )
            )
        return
    resumed = f" (resumed plan {report.resumed_plan_id})" if report.resumed_plan_id else ""
    colour = "yellow" if outcome.record_errors else "green"
    console.print(
        f"[{colour}]{report.status}[/] {head}{resumed}: {report.adds:,} upserted, "
        f"{len(outcome.record_errors):,} refused, {report.requests} requests, "
        f"{report.retries} retries; {report.members:,} of {report.segment_members:,} in the "
        f"segment (left out: {left_out})"
    )
    for key, message in sorted(outcome.record_errors.items())[:10]:
        console.print(f"  refused {key}: {message}")
    if len(outcome.record_errors) > 10:
        console.print(
            f"  ... {len(outcome.record_errors) - 10} more: "
            f"cdp destinations status {outcome.destination} {outcome.segment}"
        )
