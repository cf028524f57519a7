"""The ``cdp`` command line (composition module: it may import every layer).

Commands parse their options, call one service, and format the answer as a
rich table or, with ``--json``, as JSON. Errors the platform raises on
purpose (``CdpError``) print one clear line and exit with status 2; bad
ingest lines are listed and exit with status 1 while the good lines stay
accepted.

One module per command group; each registers its commands on ``app`` when
imported below. Registering must stay cheap: the modules import only typer,
rich and ``cdp.cli._app`` at their top and load the services inside the
command functions (``cdp --help`` starts in a fraction of a second;
tests/e2e/test_cli_hygiene.py checks that fastapi, uvicorn, DuckDB, pydantic,
faust, Kafka clients and pyarrow stay unloaded).

Exit statuses: 0 done; 1 some input was rejected (ingest) or a check failed
(``replay --verify``); 2 an error a user can act on, printed as one line; 70 an
unexpected internal error, printed as one line (``CDP_DEBUG=1`` shows its
traceback).
"""

from __future__ import annotations

from cdp.cli import (  # noqa: F401  (registers commands)
    analytics,
    archive,
    audit,
    collect,
    data,
    demo,
    destinations,
    export,
    kafka,
    kafka_status,
    privacy,
    privacy_records,
    profile,
    sales,
    segments,
    serving,
    sfa,
    tokens,
    users,
    worker,
)
from cdp.cli._app import app, run_main

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``cdp`` script (no traceback for any error)."""
    run_main()
