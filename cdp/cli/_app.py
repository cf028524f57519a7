"""The typer application and what every command shares: global options, error
handling, JSON and table output, progress bars."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cdp.config import Settings
from cdp.errors import CdpError
from cdp.jsonable import json_default

app = typer.Typer(
    help="Event-sourced customer data platform: ingest events, unify customers, "
    "segment, export, look up, replay.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

console = Console()
err_console = Console(stderr=True)


def sub_app(name: str, help_text: str) -> typer.Typer:
    """A command group (``cdp NAME ...``) registered on the main app."""
    group = typer.Typer(help=help_text, no_args_is_help=True)
    app.add_typer(group, name=name)
    return group


class Options:
    """Global options, shared with every command through the typer context."""

    def __init__(self, data_dir: Path | None, as_json: bool) -> None:
        self.settings = Settings.resolve(data_dir)
        self.json = as_json


@app.callback()
def _global(
    ctx: typer.Context,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="CDP_DATA_DIR", help="Data directory [./.cdp-data]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    ctx.obj = Options(data_dir, as_json)


def opts_of(ctx: typer.Context) -> Options:
    """The global options of the running command."""
    assert isinstance(ctx.obj, Options)
    return ctx.obj


@contextmanager
def errors() -> Iterator[None]:
    """Print a ``CdpError`` as one clear line and exit with status 2."""
    try:
        yield
    except CdpError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def print_json(data: Any) -> None:
    """Indented JSON on stdout (decimals as strings, times in ISO 8601)."""
    sys.stdout.write(
        orjson.dumps(data, default=json_default, option=orjson.OPT_INDENT_2).decode() + "\n"
    )


@contextmanager
def progress(opts: Options, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on the terminal; silent with --json or when piped."""
    enabled = not opts.json and err_console.is_terminal
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not enabled,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


def table(title: str, columns: list[str], rows: list[tuple[Any, ...]] | list[list[Any]]) -> Table:
    """A rich table; ``None`` shows as an empty cell."""
    shown = Table(title=title, title_justify="left")
    for column in columns:
        shown.add_column(column)
    for row in rows:
        shown.add_row(*["" if v is None else str(v) for v in row])
    return shown


def params(values: list[str] | None) -> dict[str, str]:
    """``--param name=value`` options as a dict."""
    out: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise typer.BadParameter(f"--param takes name=value, not {item!r}")
        out[name.strip()] = value
    return out
