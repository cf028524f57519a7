"""The ``cdp`` command line (composition module: it may import every layer).

Commands parse their options, call one service, and format the answer as a
rich table or, with ``--json``, as JSON. Errors the platform raises on
purpose (``CdpError``) print one clear line and exit with status 2; bad
ingest lines are listed and exit with status 1 while the good lines stay
accepted.

One module per command group; each registers its commands on ``app`` when
imported below.
"""

from __future__ import annotations

from cdp.cli import (  # noqa: F401  (registers commands)
    analytics,
    archive,
    collect,
    data,
    demo,
    destinations,
    export,
    kafka,
    profile,
    segments,
    tokens,
    worker,
)
from cdp.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``cdp`` script."""
    app()
