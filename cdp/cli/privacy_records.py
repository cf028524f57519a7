"""``cdp privacy records``: the APPI Art. 29 records of provisions to third parties.

Every export and audience push is recorded by
``cdp.services.privacy.provisions``; this command lists them (a table, or
``--json``) and writes them to CSV for an auditor, one row per record, the
people as a count and their pseudonymous tokens.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cdp.cli._app import console, errors, opts_of, print_json, table
from cdp.cli.privacy import privacy_app

if TYPE_CHECKING:
    from cdp.services.privacy.provisions import Provision

CSV_COLUMNS = (
    "id",
    "at",
    "kind",
    "platform",
    "recipient",
    "account",
    "segment",
    "consent",
    "items",
    "people_count",
    "removed_count",
    "people",
    "removed",
    "reference",
)
"""Header of ``--csv``; lists (items, people, removed) are joined by spaces."""


def csv_row(provision: Provision) -> list[str]:
    """One record as a ``CSV_COLUMNS`` row."""
    return [
        provision.id,
        provision.at,
        provision.kind,
        provision.platform,
        provision.recipient,
        provision.account,
        provision.segment,
        provision.consent,
        " ".join(provision.items),
        str(len(provision.people)),
        str(len(provision.removed)),
        " ".join(provision.people),
        " ".join(provision.removed),
        provision.reference,
    ]


def write_csv(path: Path, provisions: list[Provision]) -> None:
    """The records as CSV (UTF-8, one row per record), written atomically."""
    from connectors.destinations.files import atomic_text  # noqa: PLC0415

    with atomic_text(path) as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_row(p) for p in provisions)


@privacy_app.command("records")
def records_command(
    ctx: typer.Context,
    since: Annotated[
        str | None,
        typer.Option(help="Only records from then on: a date (2026-01-01) or a duration (30d)."),
    ] = None,
    csv_file: Annotated[
        Path | None, typer.Option("--csv", help="Write the records to this CSV file.")
    ] = None,
) -> None:
    """APPI provision records: every export and audience sync (when, to whom, who, what)."""
    from cdp.services.privacy import audit, provisions  # noqa: PLC0415

    opts = opts_of(ctx)
    try:
        start = audit.since_of(since) if since is not None else None
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--since") from None
    with errors():
        found = provisions.read(opts.settings.data_dir, start)
        if csv_file is not None:
            write_csv(csv_file, found)
    if opts.json:
        print_json([p.to_json() | {"people_count": len(p.people)} for p in found])
        return
    if csv_file is not None:
        console.print(f"wrote {len(found):,} provision records to {csv_file}")
        return
    rows = [
        (
            p.at,
            p.kind,
            p.platform,
            p.recipient,
            p.segment,
            f"{len(p.people):,}",
            f"{len(p.removed):,}",
            ", ".join(p.items),
            p.consent,
        )
        for p in found
    ]
    console.print(
        table(
            "Provisions of personal data to third parties (APPI Art. 29)",
            [
                "at (UTC)",
                "kind",
                "platform",
                "recipient",
                "segment",
                "people",
                "removed",
                "items",
                "consent",
            ],
            rows,
        )
    )
