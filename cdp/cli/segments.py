"""``cdp segment``: list, validate, save, explain, run, history, refresh, delete.

A segment is named (a built-in or a saved one, see ``SegmentCatalog``) or given
as a definition file (``.yaml``/``.yml``/``.json``) for ``explain`` and
``run``. Runs use the read-only connection unless ``--record`` asks to store
the membership diff, which needs the writer's lock (not while ``cdp serve``
runs on the same data directory).

``run`` lists 10 members in a table and says how many it left out; with
``--json`` it lists every member unless ``--limit`` is given.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdp.cli._app import console, err_console, errors, opts_of, params, print_json, sub_app, table
from cdp.cli.rows import Printed, cut_note
from cdp.config import Settings

if TYPE_CHECKING:
    import duckdb

    from cdp.services.segment_lang import history
    from cdp.services.segment_lang.catalog import CatalogEntry
    from cdp.services.segments import SegmentResult

segment_app = sub_app(
    "segment", "Segments: list, validate, save, explain, run, record history, delete."
)

_FILE_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
#: Members ``segment run`` lists in a table when no --limit is given.
DEFAULT_MEMBERS = 10
ParamOption = Annotated[
    list[str] | None, typer.Option("--param", help="Override a parameter: name=value.")
]


def _read(path: Path) -> tuple[str, str]:
    from cdp.errors import InputFileError  # noqa: PLC0415

    fmt = _FILE_SUFFIXES.get(path.suffix.lower(), "yaml")
    try:
        return path.read_text(encoding="utf-8"), fmt
    except OSError as error:
        raise InputFileError(f"cannot read {path}: {error.strerror}") from None


def is_definition_file(target: str) -> bool:
    """True when a SEGMENT argument names a definition file rather than a segment."""
    return Path(target).suffix.lower() in _FILE_SUFFIXES


def segment_entry(settings: Settings, target: str) -> CatalogEntry:
    """A catalog entry by name, or the definition in a file (``.yaml``/``.yml``/``.json``).

    ``cdp export`` resolves its SEGMENT argument with this too, so a file
    works wherever a segment name does.
    """
    from cdp.services.segment_lang import SegmentCatalog  # noqa: PLC0415
    from cdp.services.segment_lang.catalog import definition_entry  # noqa: PLC0415
    from cdp.services.segment_lang.parse import parse  # noqa: PLC0415

    if is_definition_file(target):
        text, fmt = _read(Path(target))
        return definition_entry(parse(text, fmt), Path(target))
    return SegmentCatalog(settings.data_dir).get(target)


def _entry_json(entry: CatalogEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "kind": entry.kind,
        "description": entry.description,
        "purpose": entry.purpose,
        "params": entry.params,
    }


@segment_app.command("list")
def segment_list(ctx: typer.Context) -> None:
    """Built-in and saved segments, their kind and parameters (a broken file shows as invalid)."""
    from cdp.errors import CdpError  # noqa: PLC0415
    from cdp.services.segment_lang import SegmentCatalog  # noqa: PLC0415

    opts = opts_of(ctx)
    catalog = SegmentCatalog(opts.settings.data_dir)
    items = []
    for name in catalog.names():
        try:
            items.append(_entry_json(catalog.get(name)))
        except CdpError as error:  # one hand-edited file must not hide the others
            items.append(
                {
                    "name": name,
                    "kind": "invalid",
                    "description": str(error),
                    "purpose": "",
                    "params": {},
                }
            )
    if opts.json:
        print_json(items)
        return
    rows = [
        (
            i["name"],
            i["kind"],
            i["description"],
            ", ".join(f"{k}={v}" for k, v in i["params"].items()),
        )
        for i in items
    ]
    console.print(table("segments", ["name", "kind", "description", "params"], rows))


@segment_app.command("fields")
def segment_fields(ctx: typer.Context) -> None:
    """The profile fields and metrics a trait/metric rule may test, with their kinds."""
    from cdp.services.segment_lang.fields import FIELDS  # noqa: PLC0415

    opts = opts_of(ctx)
    items = [{"field": f.name, "kind": f.kind, "meaning": f.doc} for f in FIELDS.values()]
    if opts.json:
        print_json(items)
    else:
        console.print(
            table("fields", ["field", "kind", "meaning"], [tuple(i.values()) for i in items])
        )


@segment_app.command("validate")
def segment_validate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Definition file (.yaml, .yml or .json).")],
) -> None:
    """Check a definition: shape, names, values, and (with data) that its SQL binds.

    Says whether the file is saved (validating does not save it), and warns
    about event names that never occur in the data, with the closest one."""
    from cdp.runtime.engine import Engine  # noqa: PLC0415
    from cdp.services.segment_lang import SegmentCatalog  # noqa: PLC0415
    from cdp.services.segment_lang.catalog import definition_entry, dry_run  # noqa: PLC0415
    from cdp.services.segment_lang.checks import EventWarning, event_warnings, save_state  # noqa: PLC0415
    from cdp.services.segment_lang.parse import parse  # noqa: PLC0415

    opts = opts_of(ctx)
    warnings: list[EventWarning] = []
    with errors():
        text, fmt = _read(file)
        definition = parse(text, fmt)
        entry = definition_entry(definition, file)
        state = save_state(SegmentCatalog(opts.settings.data_dir), definition)
        checked = opts.settings.database.exists()
        if checked:
            con = Engine.open_read_only(opts.settings)
            try:
                dry_run(con, entry.name, entry.compile())
                warnings = event_warnings(con, definition)
            finally:
                con.close()
    if opts.json:
        print_json(
            {
                "valid": True,
                **_entry_json(entry),
                "save_state": state.value,
                "checked_against_data": checked,
                "warnings": [str(w) for w in warnings],
            }
        )
        return
    shape = "sql" if definition.sql is not None else "rules"
    against = ", checked against the data" if checked else ", not checked against data (none yet)"
    console.print(f"[green]valid[/]: {entry.name} ({shape}{against})", highlight=False)
    console.print(_save_advice(state.name, entry.name, file), highlight=False, soft_wrap=True)
    for warning in warnings:
        err_console.print(f"[yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)


def _save_advice(state: str, name: str, file: Path) -> str:
    """What validate can truly say about saving (``SaveState`` names)."""
    if state == "SAVED":
        return f"saved as {name} (the saved definition is identical)"
    if state == "SAVED_DIFFERENT":
        return (
            f"not saved: a different definition is saved as {name}; "
            f"`cdp segment save {file} --replace` replaces it"
        )
    if state == "BUILTIN_NAME":
        return f"not saved: {name} is a built-in segment's name; rename it to save it"
    return f"not saved: `cdp segment save {file}` saves it as {name}"


@segment_app.command("save")
def segment_save(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Definition file (.yaml, .yml or .json).")],
    replace: Annotated[bool, typer.Option(help="Overwrite a saved segment of that name.")] = False,
) -> None:
    """Validate a definition and store it under <data-dir>/segments/NAME.yaml."""
    from cdp.services.segment_lang import SegmentCatalog  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        text, fmt = _read(file)
        entry = SegmentCatalog(opts.settings.data_dir).save(text, fmt, replace=replace)
    if opts.json:
        print_json({**_entry_json(entry), "path": str(entry.path)})
    else:
        console.print(f"saved [bold]{entry.name}[/] ({entry.kind}) to {entry.path}")


@segment_app.command("explain")
def segment_explain(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="Segment name or definition file.")],
    param: ParamOption = None,
) -> None:
    """The SQL a segment runs and the values bound to it."""
    opts = opts_of(ctx)
    with errors():
        entry = segment_entry(opts.settings, target)
        compiled = entry.compile(params(param))
    if opts.json:
        print_json(
            {
                **_entry_json(entry),
                "params": compiled.params,
                "sql": compiled.sql,
                "values": compiled.values,
            }
        )
        return
    console.print(f"[bold]{entry.name}[/] ({entry.kind}): {entry.description}")
    console.print(compiled.sql, highlight=False, markup=False)
    for key, value in compiled.values.items():
        console.print(f"  ${key} = {value!r}", highlight=False, markup=False)


def _record(
    settings: Settings, name: str, overrides: dict[str, str]
) -> tuple[SegmentResult, history.Run]:
    from cdp.cli._data import open_engine  # noqa: PLC0415
    from cdp.services.segment_lang import SegmentCatalog, history  # noqa: PLC0415

    with open_engine(settings, ", or leave out --record to see the members now") as engine:
        result = SegmentCatalog(settings.data_dir).run(engine.con, name, overrides)
        return result, history.record(engine.con, result)


@segment_app.command("run")
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
    from cdp.adapters.archive.session import ArchiveSession  # noqa: PLC0415
    from cdp.errors import InputFileError  # noqa: PLC0415
    from cdp.runtime.engine import Engine  # noqa: PLC0415
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
                else Engine.open_read_only(opts.settings)
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


@segment_app.command("refresh")
def segment_refresh(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Segments to record.")] = None,
    all_segments: Annotated[bool, typer.Option("--all", help="Record every segment.")] = False,
) -> None:
    """Run and record segments with their default parameters (e.g. from cron)."""
    from cdp.cli._data import open_engine  # noqa: PLC0415
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
        with open_engine(opts.settings, hint) as engine:
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


@segment_app.command("history")
def segment_history(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Segment name.")],
    customer: Annotated[
        str | None, typer.Option(help="Show this customer's spells in the segment.")
    ] = None,
) -> None:
    """Recorded runs with entered/left counts; with --customer, that customer's spells."""
    from cdp.runtime.engine import Engine  # noqa: PLC0415
    from cdp.services.segment_lang import history  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        con = Engine.open_read_only(opts.settings)
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


@segment_app.command("delete")
def segment_delete(
    ctx: typer.Context, name: Annotated[str, typer.Argument(help="Saved segment name.")]
) -> None:
    """Delete a saved segment (its recorded history stays)."""
    from cdp.services.segment_lang import SegmentCatalog  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        SegmentCatalog(opts.settings.data_dir).delete(name)
    if opts.json:
        print_json({"deleted": name})
    else:
        console.print(f"deleted {name}")
