"""How write commands reach a data directory, alone or beside ``cdp serve``.

Reads need nothing here: ``Engine.open_read_only`` already answers through
a running server's local socket. A command that writes either goes through
the server (``ingest_sink``: ``cdp ingest`` appends via the server's writer)
or refuses in one line that names the server and what to do
(``open_engine``). Engine imports stay inside the functions, so that
``cdp --help`` does not load DuckDB.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cdp.config import Settings

if TYPE_CHECKING:
    from cdp.runtime.engine import Engine
    from cdp.services.ingest import Sink


def open_engine(settings: Settings, instead: str = "") -> Engine:
    """``Engine.open``; beside a running server, a ``ServerRunningError`` whose
    message ends with ``instead`` (what the user can do without stopping it)."""
    from cdp.adapters.socket.client import ServerRunningError  # noqa: PLC0415
    from cdp.runtime.engine import Engine  # noqa: PLC0415

    try:
        return Engine.open(settings)
    except ServerRunningError as error:
        raise ServerRunningError(f"{error}{instead}", error.data_dir, error.pid) from None


@contextmanager
def ingest_sink(settings: Settings, announce: bool) -> Iterator[Sink]:
    """Where ``cdp ingest`` appends: the engine, or the running ``cdp serve``.

    Through the server, records are validated here and appended by its
    group-commit writer (durable when the call returns), and the server saves
    its projections at the end, so the next command sees the new events.
    ``announce`` prints on stderr that the server is taking them."""
    from cdp.adapters.socket import client as local_client  # noqa: PLC0415
    from cdp.cli._app import err_console  # noqa: PLC0415
    from cdp.runtime.engine import Engine  # noqa: PLC0415

    try:
        engine = Engine.open(settings)
    except local_client.ServerRunningError as busy:
        remote = local_client.connect(settings.data_dir)
        if remote is None:  # it stopped between the two calls
            raise busy from None
        if announce:
            err_console.print(
                f"cdp serve (pid {remote.info.get('pid')}) owns {settings.data_dir}: "
                "appending through it",
                highlight=False,
            )
        try:
            yield remote
            remote.checkpoint()
        finally:
            remote.close()
        return
    with engine:
        yield engine
