"""``cdp destinations`` and ``cdp sync``: push audiences to configured HTTP destinations.

Destinations are configured in ``<data dir>/destinations.toml`` (see
``connectors.destinations.push.config``). ``cdp export SEGMENT --to NAME``
calls ``run_sync`` when NAME is a configured destination.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdp.cli._app import Options, app, console, errors, opts_of, params, print_json, sub_app, table

if TYPE_CHECKING:
    from pathlib import Path

    from connectors.destinations.push import config as push_config
    from connectors.destinations.push.audience_sync import SyncReport

destinations_app = sub_app(
    "destinations", "HTTP push destinations (destinations.toml): list, check, status."
)


def is_push_destination(opts: Options, name: str) -> bool:
    """True when ``name`` is configured in destinations.toml and is not a file format.

    File destination names (``csv``, ``meta_csv``...) win, so a broken
    destinations.toml never stops a file export.
    """
    from connectors.destinations import registry  # noqa: PLC0415
    from connectors.destinations.push import config as push_config  # noqa: PLC0415

    if name in registry.DESTINATIONS:
        return False
    return name in push_config.load_all(opts.settings.data_dir)


def run_sync(
    opts: Options, segment: str, name: str, overrides: dict[str, str], dry_run: bool
) -> None:
    """Sync ``segment`` to destination ``name`` and print the report (inside ``errors()``)."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.services.privacy import audit  # noqa: PLC0415
    from cdp.services.segment_lang import SegmentCatalog  # noqa: PLC0415
    from connectors.destinations.push import config as push_config  # noqa: PLC0415
    from connectors.destinations.push.audience_sync import sync  # noqa: PLC0415

    destination = push_config.load(opts.settings.data_dir, name)
    action = "sync.dry_run" if dry_run else "sync"
    try:
        report = sync(
            lambda: bootstrap.open_read(opts.settings),
            SegmentCatalog(opts.settings.data_dir),
            destination,
            segment,
            data_dir=opts.settings.data_dir,
            overrides=overrides,
            dry_run=dry_run,
        )
    except Exception as error:  # a failed sync may have sent part of the audience
        failed = {"destination": name, "status": "failed", "error": type(error).__name__}
        audit.record_cli(opts.settings.data_dir, action, f"segment:{segment}", failed)
        raise
    audit.record_cli(
        opts.settings.data_dir,
        action,
        f"segment:{segment}",
        {
            "destination": name,
            "platform": report.platform,
            "status": report.status,
            "added": report.adds,
            "removed": report.removes,
        },
    )
    if opts.json:
        print_json(report.to_json(with_ids=dry_run))
        return
    if dry_run:
        if report.pending:
            console.print(
                f"a pending plan {report.pending['id']} ({report.pending['chunks']} chunks) "
                "will be resumed first"
            )
        console.print(
            f"dry run: {report.adds:,} to add, {report.removes:,} to remove "
            f"({report.removes_skipped:,} removes not sent: identifiers still in use) "
            f"in {report.chunks} chunks; {report.members:,} members now{_left_out(report, destination.consent)}"
        )
        shown = [("add", c) for c in report.add_ids[:20]] + [
            ("remove", c) for c in report.remove_ids[:20]
        ]
        if shown:
            console.print(table("changes (first 20 of each)", ["action", "customer_id"], shown))
        return
    resumed = f" (resumed plan {report.resumed_plan_id})" if report.resumed_plan_id else ""
    console.print(
        f"{report.status}: {segment} → {name} ({report.platform}){resumed}: "
        f"[bold]{report.adds:,}[/] added, [bold]{report.removes:,}[/] removed, "
        f"{report.chunks} chunks, {report.requests} requests, {report.retries} retries, "
        f"{report.duration_s:.2f} s; {report.members:,} members{_left_out(report, destination.consent)}"
    )


def _left_out(report: SyncReport, consent: str) -> str:
    """`` of N in the segment (left out: ...)``: members + left out = the segment."""
    from connectors.destinations.accounting import describe  # noqa: PLC0415

    return (
        f" of {report.segment_members:,} in the segment "
        f"(left out: {describe(report.excluded, consent)})"
    )


@app.command("sync")
def sync_command(
    ctx: typer.Context,
    segment: Annotated[str, typer.Argument(help="Segment to sync.")],
    to: Annotated[str, typer.Option("--to", help="Configured destination (destinations.toml).")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the adds and removes; send nothing.")
    ] = False,
    param: Annotated[list[str] | None, typer.Option(help="Segment parameter: name=value.")] = None,
) -> None:
    """Push the changes of a segment's audience since the last sync (resumes a pending one)."""
    opts = opts_of(ctx)
    with errors():
        run_sync(opts, segment, to, params(param), dry_run)


def _secret_state(destination: push_config.AnyDestination) -> str:
    from cdp.errors import CdpError  # noqa: PLC0415

    states = []
    for field in destination.secret_fields:
        try:
            destination.secret(field)
            states.append(f"{field.removesuffix('_value')}: set")
        except CdpError:
            states.append(f"{field.removesuffix('_value')}: MISSING")
    return ", ".join(states)


@destinations_app.command("list")
def list_command(ctx: typer.Context) -> None:
    """Configured destinations, their targets, secrets and synced segments."""
    from connectors.destinations.push import config as push_config  # noqa: PLC0415
    from connectors.destinations.push.audience_sync import segments_synced  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        every = push_config.load_all(opts.settings.data_dir)
    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "platform": d.platform,
            "target": d.target(),
            "consent": d.consent,
            "secrets": _secret_state(d),
            "segments": segments_synced(opts.settings.data_dir, name),
        }
        for name, d in sorted(every.items())
    ]
    if opts.json:
        print_json(rows)
        return
    if not rows:
        console.print(
            f"no destinations configured in {opts.settings.data_dir / 'destinations.toml'}"
        )
        return
    columns = ["name", "platform", "target", "consent", "secrets", "segments"]
    console.print(
        table(
            "Push destinations",
            columns,
            [[r[c] if c != "segments" else " ".join(r[c]) for c in columns] for r in rows],
        )
    )


@destinations_app.command("check")
def check_command(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Destination to check.")]
) -> None:
    """Resolve the secrets and make one read-only call proving access to the target."""
    from connectors.destinations.push import config as push_config  # noqa: PLC0415
    from connectors.destinations.push.audience_sync import platform_for, transport_for  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        destination = push_config.load(opts.settings.data_dir, name)
        platform = platform_for(destination)
        with transport_for(destination, platform) as transport:
            summary = platform.check(transport)
    if opts.json:
        print_json({"name": name, "platform": destination.platform, "ok": True, "detail": summary})
    else:
        console.print(f"[green]ok[/] {name} ({destination.platform}): {summary}")


@destinations_app.command("status")
def status_command(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Destination.")],
    segment: Annotated[str | None, typer.Argument(help="One segment [all synced].")] = None,
) -> None:
    """Last sync, synced member count and any pending plan, per segment."""
    from connectors.destinations.push import config as push_config  # noqa: PLC0415
    from connectors.destinations.push.audience_sync import segments_synced, status  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        push_config.load(opts.settings.data_dir, name)
        names = [segment] if segment else segments_synced(opts.settings.data_dir, name)
        states = [status(opts.settings.data_dir, name, s) for s in names]
    if opts.json:
        print_json(states)
        return
    rows = []
    refused: list[tuple[str, str, str]] = []
    for state in states:
        last = state["last_sync"] or {}
        pending = state["pending"]
        platform_state = dict(state["platform_state"])
        # SFA destinations keep the records they refused (connectors.destinations.sfa.base).
        record_errors = platform_state.pop("record_errors", None) or {}
        refused += [(state["segment"], k, v) for k, v in sorted(record_errors.items())]
        rows.append(
            (
                state["segment"],
                state["synced_members"],
                state["synced_at"] or "never",
                f"+{last.get('adds', 0)} -{last.get('removes', 0)}" if last else "",
                f"{pending['id']}: {pending['chunks_done']}/{pending['chunks']} chunks done"
                if pending
                else "none",
                " ".join(f"{k}={v}" for k, v in platform_state.items()),
                len(record_errors),
            )
        )
    console.print(
        table(
            f"Sync status of {name}",
            [
                "segment",
                "synced members",
                "synced at",
                "last changes",
                "pending plan",
                "state",
                "records refused",
            ],
            rows,
        )
    )
    if refused:
        console.print(
            table(
                "Records the destination refused (sent again by the next push)",
                ["segment", "customer_id", "error"],
                refused,
            )
        )
    _print_owed_deletions(opts.settings.data_dir, name)


def _print_owed_deletions(data_dir: Path, name: str) -> None:
    """An SFA destination's deletions that erasures still owe (sent by the next push)."""
    from connectors.destinations.sfa.pushed import PushedRecords  # noqa: PLC0415

    owed = PushedRecords(data_dir, name).deletions()
    if owed:
        console.print(
            table(
                "Records of erased people still to delete (sent by the next push)",
                ["request", "records", "since", "error"],
                [(e["request"], len(e["ids"]), e["since"], e["error"]) for e in owed.values()],
            )
        )
