"""The typer application and what every command shares: global options, error
handling, JSON and table output, progress bars.

Start-up cost matters here (``cdp --help`` runs this module): it imports only
typer, rich and the standard library at module level. Everything the commands
need (the engine, DuckDB, the web server, analytics, Kafka) is imported inside
the command functions, so a command pays only for what it uses;
tests/e2e/test_cli_hygiene.py guards this.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import orjson
import typer
from rich.console import Console

from cdp import config
from cdp.config import Settings
from cdp.jsonable import json_default

if TYPE_CHECKING:
    from rich.table import Table

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
        typer.Option(
            "--data-dir", envvar=config.DATA_DIR_ENV, help="Data directory [./.cdp-data]."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    ctx.obj = Options(data_dir, as_json)


def opts_of(ctx: typer.Context) -> Options:
    """The global options of the running command."""
    assert isinstance(ctx.obj, Options)
    return ctx.obj


#: Exit status of an error the platform expects (bad input, missing data, a
#: refused file or port): one line on stderr, no traceback.
EXIT_ERROR = 2
#: Exit status of an unexpected exception (a bug): one line, and the traceback
#: only when ``CDP_DEBUG`` is set.
EXIT_INTERNAL = 70
DEBUG_ENV = config.DEBUG_ENV


def expected_error(error: BaseException) -> str | None:
    """The one-line message of an error a user can act on, else ``None``.

    Expected are the platform's own ``CdpError`` (its messages name the id,
    file or line), the operating system's refusals (``OSError``: a directory
    that cannot be created, a file that cannot be read or written; the message
    names the path) and DuckDB's errors (a damaged or foreign database file).
    """
    from cdp.errors import CdpError  # noqa: PLC0415  (loaded only when something failed)

    if isinstance(error, CdpError):
        return str(error)
    if isinstance(error, OSError):
        reason = error.strerror or str(error)
        return f"{error.filename}: {reason}" if error.filename is not None else reason
    duckdb = sys.modules.get("duckdb")  # never import it just to test a type
    if duckdb is not None and isinstance(error, duckdb.Error):
        return f"database: {str(error).strip()}"
    return None


def fail(message: str) -> typer.Exit:
    """Print ``error: MESSAGE`` on stderr; the caller raises the returned ``Exit(2)``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(EXIT_ERROR)


@contextmanager
def errors() -> Iterator[None]:
    """Print an expected error (see ``expected_error``) as one line and exit with
    status 2; anything else propagates (``main`` reports it without a traceback)."""
    try:
        yield
    except BrokenPipeError:
        raise _reader_gone() from None
    except Exception as error:
        message = expected_error(error)
        if message is None:
            raise
        raise fail(message) from None


def _reader_gone() -> typer.Exit:
    """Stdout's reader left (``cdp --json sql ... | head``): stop quietly, as
    command-line tools do, and keep Python from failing again when it flushes
    stdout at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return typer.Exit(1)


def print_json(data: Any) -> None:
    """Indented JSON on stdout (decimals as strings, times in ISO 8601)."""
    sys.stdout.write(
        orjson.dumps(data, default=json_default, option=orjson.OPT_INDENT_2).decode() + "\n"
    )


@contextmanager
def progress(opts: Options, label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on the terminal; silent with --json or when piped."""
    from rich.progress import (  # noqa: PLC0415  (only commands with a bar pay for it)
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

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
    from rich.table import Table  # noqa: PLC0415

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


def run_main() -> None:
    """Run the app as the ``cdp`` script: an unexpected exception (a bug) prints
    one line and exits 70; ``CDP_DEBUG=1`` shows its traceback instead."""
    try:
        app()
    except BrokenPipeError:
        raise SystemExit(_reader_gone().exit_code) from None
    except Exception as error:
        if config.debug():
            raise
        message = expected_error(error)
        if message is not None:  # raised outside an errors() block
            raise SystemExit(fail(message).exit_code) from None
        err_console.print(
            f"[bold red]internal error:[/] {type(error).__name__}: {error} "
            f"(a bug; {DEBUG_ENV}=1 shows the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        raise SystemExit(EXIT_INTERNAL) from None
