"""The run commands of ``cdp segment``: run, refresh, history.

Runs use the read-only connection unless ``--record`` asks to store the
membership diff, which needs the writer's lock (not while ``cdp serve`` runs
on the same data directory). ``run`` lists 10 members in a table and says how
many it left out; with ``--json`` it lists every member unless ``--limit`` is
given. The commands are registered on the group in ``cdp.cli.segments``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdp.cli._app import console, errors, opts_of, params, print_json, table
from cdp.cli.rows import Printed, cut_note
from cdp.cli.segment_definitions import ParamOption, is_definition_file, segment_entry
from cdp.config import Settings

if TYPE_CHECKING:
    import duckdb

    from cdp.services.segment_lang import history
    from cdp.services.segments import SegmentResult

#: Members ``segment run`` lists in a table when no --limit is given.
DEFAULT_MEMBERS = 10


def _record(
    settings: Settings, name: str, overrides: dict[str, str]
) -> tuple[SegmentResult, history.Run]:
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.services.segment_lang import SegmentCatalog, history  # noqa: PLC0415

    with bootstrap.open_data(settings, ", or leave out --record to see the members now") as engine:
        result = SegmentCatalog(settings.data_dir).run(engine.con, name, overrides)
        return result, history.record(engine.con, result)


def segment_run(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Segment name or definition file.")],
    param: ParamOption = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=0, help="Members to list (0: count only) [10 in a table; every one with --json]."
        ),
    ] = None,
    all_members: Annotated[bool, typer.Option("--all", help="List every member.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write all member ids to this CSV.")] = None,
    record: Annotated[
        bool, typer.Option(help="Record who entered and left (needs the writer's lock).")
    ] = False,
    archive: Annotated[
        Path | None, typer.Option(help="Evaluate over this Parquet archive instead.")
    ] = None,
) -> None:
    """Evaluate a segment: count, a sample or every member, optionally a CSV and history."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.adapters.archive.session import ArchiveSession  # noqa: PLC0415
    from cdp.errors import InputFileError  # noqa: PLC0415
    from cdp.services import segments as segment_service  # noqa: PLC0415
    from cdp.services.segment_lang.catalog import execute, fill  # noqa: PLC0415

    opts = opts_of(ctx)
    run: history.Run | None = None
    with errors():
        overrides = params(param)
        entry = segment_entry(opts.settings, target)
        if record:
            if archive is not None:
                raise InputFileError("--record works on the data directory, not on --archive")
            if is_definition_file(target):
                raise InputFileError(
                    "--record needs a saved or built-in segment; save the file first"
                )
            result, run = _record(opts.settings, entry.name, overrides)
        else:
            con: duckdb.DuckDBPyConnection = (
                ArchiveSession.open(archive, opts.settings.runtime_config().scoring).con
                if archive is not None
                else bootstrap.open_read(opts.settings)
            )
            try:
                result = execute(con, entry.name, entry.compile(overrides))
            finally:
                con.close()
        if out is not None:
            _write_csv(out, result.members)
    if all_members or (limit is None and opts.json):
        shown = result.members
    else:
        shown = result.members[: DEFAULT_MEMBERS if limit is None else limit]
    if opts.json:
        payload: dict[str, Any] = {
            "name": result.name,
            "kind": entry.kind,
            "count": result.count,
            "params": result.params,
            "members": shown,
        }
        if out is not None:
            payload["out"] = str(out)
        if run is not None:
            payload["recorded"] = _run_json(run)
        print_json(payload)
        return
    described = (
        fill(entry.definition.description, result.params)
        if entry.definition is not None
        else segment_service.describe(segment_service.get(entry.name), result.params)
    )
    console.print(f"[bold]{entry.name}[/] ({entry.kind}): {described}")
    console.print(f"members: [bold]{result.count:,}[/]")
    for member in shown:
        console.print(f"  {member}")
    if out is not None:
        console.print(f"wrote {result.count:,} ids to {out}")
    elif shown:  # with --limit 0 the count alone was asked for
        note = cut_note(Printed(len(shown), result.count), "members", "--all or --out FILE for all")
        if note is not None:
            console.print(note, style="yellow", highlight=False, soft_wrap=True)
    if run is not None:
        console.print(f"recorded run {run.run_id}: {run.entered:,} entered, {run.left:,} left")


def _write_csv(path: Path, members: list[str]) -> None:
    from cdp.errors import InputFileError  # noqa: PLC0415

    try:
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["customer_id"])
            writer.writerows([m] for m in members)
    except OSError as error:
        raise InputFileError(f"cannot write {path}: {error.strerror}") from None


def _run_json(run: history.Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "run_at": run.run_at,
        "log_as_of": run.log_as_of,
        "params": run.params,
        "members": run.members,
        "entered": run.entered,
        "left": run.left,
    }


def segment_refresh(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Segments to record.")] = None,
    all_segments: Annotated[bool, typer.Option("--all", help="Record every segment.")] = False,
) -> None:
    """Run and record segments with their default parameters (e.g. from cron)."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.errors import InputFileError  # noqa: PLC0415
    from cdp.services.segment_lang import SegmentCatalog, history  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        catalog = SegmentCatalog(opts.settings.data_dir)
        chosen = catalog.names() if all_segments else list(names or [])
        if not chosen:
            raise InputFileError("name the segments to refresh, or pass --all")
        for name in chosen:
            catalog.get(name)  # unknown names fail before the writer's lock is taken
        runs: list[history.Run] = []
        hint = "; `cdp segment run NAME` shows the members now without recording them"
        with bootstrap.open_data(opts.settings, hint) as engine:
            for name in chosen:
                runs.append(history.record(engine.con, catalog.run(engine.con, name)))
    if opts.json:
        print_json([{"name": r.segment, **_run_json(r)} for r in runs])
        return
    console.print(
        table(
            "recorded runs",
            ["segment", "run", "members", "entered", "left"],
            [(r.segment, r.run_id, r.members, r.entered, r.left) for r in runs],
        )
    )


def segment_history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Segment name.")],
    customer: Annotated[
        str | None, typer.Option(help="Show this customer's spells in the segment.")
    ] = None,
) -> None:
    """Recorded runs with entered/left counts; with --customer, that customer's spells."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.services.segment_lang import history  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        con = bootstrap.open_read(opts.settings)
        try:
            runs = history.runs(con, name)
            spells = history.spells(con, name, customer) if customer else []
        finally:
            con.close()
    if opts.json:
        payload: dict[str, Any] = {"name": name, "runs": [_run_json(r) for r in runs]}
        if customer:
            payload["customer_id"] = customer
            payload["spells"] = [
                {
                    "entered_run": s.entered_run,
                    "entered_at": s.entered_at,
                    "entered_as_of": s.entered_as_of,
                    "left_run": s.left_run,
                    "left_at": s.left_at,
                    "left_as_of": s.left_as_of,
                }
                for s in spells
            ]
        print_json(payload)
        return
    if not runs:
        console.print(
            f"no recorded runs of {name}: `cdp segment run {name} --record` "
            "or `cdp segment refresh` records one",
            highlight=False,
            soft_wrap=True,
        )
        return
    console.print(
        table(
            f"runs of {name}",
            ["run", "run at", "log as of", "members", "entered", "left"],
            [(r.run_id, r.run_at, r.log_as_of, r.members, r.entered, r.left) for r in runs],
        )
    )
    if customer:
        console.print(
            table(
                f"{customer} in {name}",
                ["entered run", "entered at", "left run", "left at"],
                [(s.entered_run, s.entered_at, s.left_run, s.left_at) for s in spells],
            )
        )
