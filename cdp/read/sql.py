"""``SqlLookups``: the ``ProfileLookups`` port (``cdp.ports.lookups``) answered by SQL
over the checkpointed DuckDB tables.

Each request thread reads through its own cursor of one connection; a profile
is read in one transaction (``cdp.read.lookup``), so it never mixes two
checkpoints. Segments are listed from the catalog and evaluated now, paged by
a cursor in customer-id order. ``cdp.read.reader.ReadModelLookups`` extends it
with the in-memory read model and falls back to it.
"""

from __future__ import annotations

import logging
import threading
from bisect import bisect_right
from collections.abc import Callable
from typing import Any

import duckdb

from cdp.config import Settings
from cdp.errors import CdpError, LogUnavailableError
from cdp.read import lookup
from cdp.read.answer import Freshness, encode
from cdp.read.keys import parse
from cdp.read.model import ReadModel
from cdp.services.segment_lang import SegmentCatalog, current_segments
from cdp.services.segment_lang.history import runs

log = logging.getLogger(__name__)

#: A connection to read from, the log's ``high_water()`` (the next offset,
#: published after each commit) and the read model, when in the same process.
Source = tuple[duckdb.DuckDBPyConnection, Callable[[], int] | None, ReadModel | None]


class SqlLookups:
    """Profile lookups and segments read from DuckDB.

    ``connect`` gives a connection (or a ``Source``) on first use; each
    request thread gets its own cursor of it. ``close`` closes every cursor.
    """

    def __init__(
        self,
        settings: Settings,
        connect: Callable[[], duckdb.DuckDBPyConnection | Source],
    ) -> None:
        self.settings = settings
        self.rules = settings.runtime_config().scoring
        self.catalog = SegmentCatalog(settings.data_dir)
        self._connect = connect
        self._base: duckdb.DuckDBPyConnection | None = None
        self._high_water: Callable[[], int] | None = None
        self.model: ReadModel | None = None
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._closed = False
        self._clock = lookup.LogClock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor (made on first use)."""
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is not None:
            return cursor
        with self._lock:
            if self._closed:
                raise LogUnavailableError("the server is shutting down")
            if self._base is None:
                source = self._connect()
                if isinstance(source, tuple):
                    self._base, self._high_water, self.model = source
                else:
                    self._base = source
            cursor = self._base.cursor()
            self._cursors.append(cursor)
        self._local.cursor = cursor
        return cursor

    def warm(self) -> None:
        """Open the connection (and load the read model, if any) now, not on a request."""
        try:
            self.cursor()
        except CdpError:
            log.warning("profile lookups are unavailable", exc_info=True)

    def close(self) -> None:
        """Close every cursor (the database is released once the engine closes too)."""
        with self._lock:
            self._closed = True
            for cursor in self._cursors:
                cursor.close()
            if self._base is not None:
                self._base.close()
            self._cursors.clear()

    def profile(self, text: str, recent: int) -> tuple[bytes, str]:
        """(the answer as JSON, the identifier key) for ``text``; ``ValueError``/``NotFoundError``."""
        identifier = parse(text)
        return encode(self.from_tables(self.cursor(), identifier, recent)), identifier

    def in_memory(self, recent: int) -> bool:
        """Every answer here runs statements."""
        del recent
        return False

    def from_tables(
        self, con: duckdb.DuckDBPyConnection, identifier: str, recent: int
    ) -> dict[str, Any]:
        """The answer read from the tables, in one read transaction."""
        with lookup.snapshot(con):
            position = con.execute(
                "SELECT next_offset FROM positions WHERE name = 'customers'"
            ).fetchall()
            customer_id = lookup.resolve_key(con, identifier)
            names = frozenset(self.catalog.names())
            exists = con.execute(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'segment_membership'"
            ).fetchall()
            segments = current_segments(con, customer_id, names) if exists[0][0] else []
            last = con.execute('SELECT max("offset") FROM event_log').fetchall()[0][0]
            freshness: Freshness = {
                "checkpoint_offset": int(position[0][0]) if position else None,
                "log_offset": -1 if last is None else int(last),
            }
            return lookup.profile_dict(
                con,
                customer_id,
                identifier,
                self.rules,
                recent,
                self._clock,
                segments=segments,
                freshness=freshness,
            )

    def segment_list(self) -> list[dict[str, Any]]:
        """The catalog with each segment's last recorded run."""
        con = self.cursor()
        items = []
        for entry in self.catalog.entries():
            history = runs(con, entry.name)
            last = history[-1] if history else None
            items.append(
                {
                    "name": entry.name,
                    "description": entry.description,
                    "kind": entry.kind,
                    "last_count": last.members if last else None,
                    "last_run_at": last.run_at if last else None,
                }
            )
        return items

    def segment_page(self, name: str, limit: int, after: str | None) -> dict[str, Any]:
        """Members of ``name`` now, in customer-id order, after ``after``."""
        con = self.cursor()
        with lookup.snapshot(con):
            result = self.catalog.run(con, name)
        members = sorted(result.members)
        members_after = members[bisect_right(members, after) :] if after else members
        page = members_after[:limit]
        more = len(members_after) > limit
        return {
            "name": name,
            "count": result.count,
            "members": page,
            "next_cursor": page[-1] if more and page else None,
            "params": result.params,
        }
