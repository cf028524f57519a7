"""``cdp demo``."""

from __future__ import annotations

from typing import Annotated

import typer

from cdp.cli._app import (
    app,
    console,
    errors,
    opts_of,
    print_json,
    progress,
)
from cdp.cli.profile import print_profile


# ---------------------------------------------------------------------- demo
@app.command("demo")
def demo_command(
    ctx: typer.Context,
    fresh: Annotated[bool, typer.Option(help="Start from an empty data directory.")] = False,
    seed: Annotated[int, typer.Option(help="Random seed of the generated shop.")] = 42,
    customers: Annotated[int | None, typer.Option(min=1)] = None,
) -> None:
    """The whole platform in one run: generate, ingest, unify, segment, export, look up, replay."""
    from cdp.demo.run import run_demo  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        run_demo(
            opts.settings,
            console=console,
            as_json=opts.json,
            fresh=fresh,
            seed=seed,
            customers=customers,
            print_json=print_json,
            print_profile=print_profile,
            progress=lambda label, total: progress(opts, label, total),
        )
