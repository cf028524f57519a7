"""``cdp sales import``: deals and activities from an SFA export file (docs/sales.md).

Heavy modules are imported inside the command: see cdp/cli/_app.py on start-up cost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cdp.cli._app import console, err_console, errors, opts_of, print_json, sub_app

sales_app = sub_app("sales", "Sales (SFA) data: import deals and activities from an export.")


@sales_app.command("import")
def sales_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="The SFA's CSV export.")],
    mapping: Annotated[
        Path, typer.Option("--mapping", help="TOML file: what the export's columns mean.")
    ],
    source: Annotated[str | None, typer.Option(help="Source name recorded on events.")] = None,
) -> None:
    """Rows → deal events (no stage: Deal Updated) or Sales Activity Logged; re-runs add nothing.

    Bad rows are listed with their line and column (exit status 1); good rows are kept."""
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.services.ingest import IngestReport, ItemError, ingest  # noqa: PLC0415
    from cdp.services.privacy.suppressions import SuppressionGate  # noqa: PLC0415
    from connectors.sources import sales_files  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        export = sales_files.load_mapping(mapping)
        rows = list(sales_files.read_rows(path, export))
        good = [(loc, item) for loc, item in rows if not isinstance(item, sales_files.RowError)]
        bad = [item for _, item in rows if isinstance(item, sales_files.RowError)]
        gate = SuppressionGate.load(opts.settings.data_dir)
        with bootstrap.open_sink(opts.settings) as sink:
            report = (
                ingest(good, sink, source=source or f"file:{path.name}", suppressions=gate)
                if good
                else IngestReport()
            )
    report.read += len(bad)
    report.rejected += len(bad)
    report.errors[:0] = [
        ItemError(e.location, str(e).removeprefix(f"{e.location}:").strip()) for e in bad
    ]
    if opts.json:
        print_json(report.as_dict())
    else:
        console.print(
            f"rows {report.read:,}  accepted [green]{report.accepted:,}[/]  "
            f"duplicates {report.duplicates:,}  rejected [red]{report.rejected:,}[/]"
        )
        for error in report.errors[:50]:
            err_console.print(f"  [red]✗[/] {error}", highlight=False, soft_wrap=True)
    if report.rejected:
        raise typer.Exit(1)
