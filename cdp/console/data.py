"""Where the console's SQL screens read from, per mode.

- Embedded: a cursor of the server's own database, per thread (the read
  API's ``SqlLookups.cursor``: the writer's connection, projections as of the
  last checkpoint, the log as of the last commit).
- Kafka: the Parquet archive named by ``cdp serve --kafka --archive DIR``,
  re-opened when its manifest changes (at most once every ``REFRESH`` seconds);
  without one, ``LogUnavailableError`` saying how to give one (profiles still
  come from the compacted topics).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from cdp.errors import LogUnavailableError

if TYPE_CHECKING:
    import duckdb

    from cdp.config import Settings

REFRESH: Final = 30.0


def embedded(lookups: Any) -> Callable[[], duckdb.DuckDBPyConnection]:
    """This thread's cursor of the server's database (through the lookups)."""
    cursor = getattr(lookups, "cursor", None)
    if cursor is not None:
        return cursor  # type: ignore[no-any-return]

    def none() -> duckdb.DuckDBPyConnection:
        raise LogUnavailableError("this server has no SQL reads (its lookups hold no database)")

    return none


class ArchiveReads:
    """Thread cursors of an archive session, refreshed when the archive grows."""

    def __init__(self, settings: Settings, root: Path | None) -> None:
        self.settings = settings
        self.root = root
        self._session: Any = None
        self._previous: Any = None
        self._opened = 0.0
        self._lock = threading.Lock()
        self._local = threading.local()

    def __call__(self) -> duckdb.DuckDBPyConnection:
        if self.root is None:
            raise LogUnavailableError(
                "segments and analytics in Kafka mode read the Parquet archive: "
                "start `cdp serve --kafka BOOTSTRAP --archive DIR` (the directory `cdp archive` writes)"
            )
        from cdp.adapters.archive.session import ArchiveSession  # noqa: PLC0415

        with self._lock:
            if self._session is None or time.monotonic() - self._opened > REFRESH:
                fresh = ArchiveSession.open(self.root, self.settings.runtime_config().scoring)
                if self._previous is not None:  # unused for a whole period by now
                    self._previous.close()
                self._previous, self._session = self._session, fresh
                self._opened = time.monotonic()
            session = self._session
        local = getattr(self._local, "pair", None)
        if local is None or local[0] is not session:
            local = (session, session.con.cursor())
            self._local.pair = local
        return local[1]  # type: ignore[no-any-return]
