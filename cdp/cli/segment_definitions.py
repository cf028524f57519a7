"""The definition commands of ``cdp segment``: list, fields, validate, save, explain, delete.

Also how a SEGMENT argument is resolved (``segment_entry``): a built-in or saved
segment by name (see ``SegmentCatalog``), or a definition file
(``.yaml``/``.yml``/``.json``); ``cdp segment run`` and ``cdp export`` use it
too. The commands are registered on the group in ``cdp.cli.segments``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdp.cli._app import console, err_console, errors, opts_of, params, print_json, table
from cdp.config import Settings

if TYPE_CHECKING:
    from cdp.services.segment_lang.catalog import CatalogEntry

_FILE_SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}
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


def entry_json(entry: CatalogEntry) -> dict[str, Any]:
    """The JSON every segment command shows for a catalog entry."""
    return {
        "name": entry.name,
        "kind": entry.kind,
        "description": entry.description,
        "purpose": entry.purpose,
        "params": entry.params,
    }


def segment_list(ctx: typer.Context) -> None:
    """Built-in and saved segments, their kind and parameters (a broken file shows as invalid)."""
    from cdp.errors import CdpError  # noqa: PLC0415
    from cdp.services.segment_lang import SegmentCatalog  # noqa: PLC0415

    opts = opts_of(ctx)
    catalog = SegmentCatalog(opts.settings.data_dir)
    items = []
    for name in catalog.names():
        try:
            items.append(entry_json(catalog.get(name)))
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


def segment_validate(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="Definition file (.yaml, .yml or .json).")],
) -> None:
    """Check a definition: shape, names, values, and (with data) that its SQL binds.

    Says whether the file is saved (validating does not save it), and warns
    about event names that never occur in the data, with the closest one."""
    from cdp import bootstrap  # noqa: PLC0415
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
            con = bootstrap.open_read(opts.settings)
            try:
                dry_run(con, entry.name, entry.compile())
                warnings = event_warnings(con, definition)
            finally:
                con.close()
    if opts.json:
        print_json(
            {
                "valid": True,
                **entry_json(entry),
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
        print_json({**entry_json(entry), "path": str(entry.path)})
    else:
        console.print(f"saved [bold]{entry.name}[/] ({entry.kind}) to {entry.path}")


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
                **entry_json(entry),
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
