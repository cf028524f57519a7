"""An open data directory: the DuckDB file, the event log and the runtime.

``Engine.open`` is the one place the embedded pieces are put together. It
takes DuckDB's single-writer lock on the file: a second writer gets a
``LogUnavailableError`` that says so, instead of a corrupt file. Opening
restores the last checkpoint and folds whatever the log holds past it.
``Engine.open_read_only`` gives a connection that cannot change anything
(no writes, no file access) for ``cdp sql``, lookups and segments.

One owner per data directory: while ``cdp serve`` holds the file, both ask
it over the directory's local socket (``cdp.adapters.socket.client``) instead of
racing for the lock. ``open_read_only`` then returns the server's read
connection; ``open`` refuses with a ``ServerRunningError`` that names it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import cast

import duckdb

from cdp.adapters.duckdb import store, views
from cdp.adapters.duckdb.log import DuckDBEventLog
from cdp.adapters.duckdb.states import DuckDBStateStore
from cdp.adapters.socket import client as local_client
from cdp.closing import Closing
from cdp.config import Settings, duckdb_memory_limit
from cdp.errors import LogUnavailableError
from cdp.ports.log import AppendResult, Record
from cdp.runtime import grouped
from cdp.runtime.config import RuntimeConfig
from cdp.runtime.embedded import EmbeddedRuntime
from cdp.services import deadletters

WAL_CHECKPOINT_THRESHOLD = "256MB"
NO_PROGRESS_BAR = "SET enable_progress_bar = false"
"""DuckDB draws a progress bar on stdout for statements that take seconds (a large
catch-up's last insert), which would land in the CLI's --json output. Per
connection: cursors set it too."""


def _connect(path: Path, read_only: bool) -> duckdb.DuckDBPyConnection:
    # DuckDB's own default is 80% of RAM: cdp.config.DEFAULT_MEMORY_LIMIT says why not.
    config: dict[str, str | bool | int | float | list[str]] = {
        "memory_limit": duckdb_memory_limit()
    }
    if read_only:
        config["enable_external_access"] = False
    else:
        # DuckDB folds its WAL into the file every 16 MB by default; during bulk
        # appends that rewrite cost as much as the appends. 256 MB keeps the
        # replay after a crash short while appends stay cheap.
        config["checkpoint_threshold"] = WAL_CHECKPOINT_THRESHOLD
        config["temp_directory"] = str(path.parent / "duckdb-tmp")
    try:
        con = duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise LogUnavailableError(
                f"data directory {path.parent} is in use by another cdp process "
                "(DuckDB allows one writer); stop it or use another --data-dir"
            ) from None
        raise
    con.execute(NO_PROGRESS_BAR)
    return con


def _served_connection(settings: Settings) -> duckdb.DuckDBPyConnection:
    """The read connection of the ``cdp serve`` owning the directory, or the lock error."""
    remote = local_client.connect(settings.data_dir)
    if remote is None:
        raise LogUnavailableError(
            f"data directory {settings.data_dir} is in use by another cdp process that does "
            f"not answer on {settings.data_dir / 'cdp.sock'} (an ingest, a replay, a server "
            "still starting); wait for it to finish or stop it"
        )
    # Not a DuckDB connection, but the part of its API the read paths call.
    return cast(duckdb.DuckDBPyConnection, remote)


def _raise_if_served(settings: Settings) -> None:
    """``ServerRunningError`` when a ``cdp serve`` answers for the directory."""
    info = local_client.serving(settings.data_dir)
    if info is not None:
        raise local_client.ServerRunningError(
            f"cdp serve (pid {info.get('pid')}) is running on {settings.data_dir}: stop it first",
            settings.data_dir,
            info.get("pid"),
        )


class Engine(Closing):
    """Event log + projections of one data directory, opened for writing."""

    def __init__(
        self, settings: Settings, con: duckdb.DuckDBPyConnection, runtime_config: RuntimeConfig
    ) -> None:
        self.settings = settings
        self.con = con
        self.log = DuckDBEventLog(con)
        store.create(con)
        deadletters.create(con)
        views.create(con, runtime_config.scoring)
        snapshot = store.load(con)
        self.runtime = EmbeddedRuntime.restore(
            DuckDBStateStore(con), snapshot.graph_rows, snapshot.next_offset, runtime_config
        )
        self.rules_changed = self._rules_changed(runtime_config)
        self._deferred = False

    def _rules_changed(self, config: RuntimeConfig) -> bool:
        saved = self.con.execute(
            "SELECT config_hash FROM positions WHERE name = ?", [store.POSITION_NAME]
        ).fetchone()
        return saved is not None and saved[0] != config.fingerprint()

    @classmethod
    def open(
        cls,
        settings: Settings,
        runtime_config: RuntimeConfig | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Engine:
        """Open (creating if needed) a data directory and catch its projections up."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            con = _connect(settings.database, read_only=False)
        except LogUnavailableError:
            _raise_if_served(settings)
            raise
        try:
            engine = cls(settings, con, runtime_config or settings.runtime_config())
            engine.catch_up(progress)
        except BaseException:
            con.close()
            raise
        return engine

    @staticmethod
    def lagging(settings: Settings) -> bool:
        """Whether the projections of the directory's file are behind its log (a
        writer stopped before its checkpoint), read without opening the engine.
        ``LogUnavailableError`` when another process holds the file."""
        probe = _connect(settings.database, read_only=True)
        try:
            row = probe.execute(
                'SELECT (SELECT coalesce(max("offset") + 1, 0) FROM event_log), '
                "(SELECT coalesce(max(next_offset), 0) FROM positions)"
            ).fetchone()
            return row is not None and row[0] > row[1]
        except duckdb.CatalogException:
            return True
        finally:
            probe.close()

    @classmethod
    def catch_up_file(cls, settings: Settings) -> None:
        """Fold the log's tail into the projections and checkpoint, opening the
        engine only when they are behind (at a million customers opening it costs
        8 s even with nothing to fold). ``ServerRunningError`` when a ``cdp
        serve`` holds the directory."""
        try:
            behind = cls.lagging(settings)
        except LogUnavailableError:
            _raise_if_served(settings)
            raise
        if behind:
            cls.open(settings).close()

    @staticmethod
    def open_read_only(settings: Settings) -> duckdb.DuckDBPyConnection:
        """A read-only connection (no writes, no file access), projections caught up first.

        The one way CLI reads reach the data. While ``cdp serve`` owns the
        directory this is its ``RemoteConnection`` (``cdp.adapters.socket.client``):
        the subset of the DuckDB API the read paths use (``execute``,
        ``fetchall``/``fetchone``/``fetchmany``, ``description``, ``close``),
        the same checks (read statements only, no files), data as of the
        server's last commit for the log and last checkpoint for projections.
        """
        if not settings.database.exists():
            raise LogUnavailableError(
                f"no data in {settings.data_dir}: run `cdp ingest` or `cdp demo` first"
            )
        try:
            lagging = Engine.lagging(settings)
        except LogUnavailableError:
            return _served_connection(settings)
        if lagging:  # a writer stopped before its checkpoint: fold the tail first
            Engine.open(settings).close()
        try:
            return _connect(settings.database, read_only=True)
        except LogUnavailableError:  # a server took the directory meanwhile
            return _served_connection(settings)

    def append(self, records: Sequence[Record]) -> AppendResult:
        """Append durably, then fold what was new into the projections (inside
        ``bulk()``: fold later, all at once)."""
        result = self.log.append(records)
        if result.appended and not self._deferred:
            self.runtime.apply(result.new_events(records))
        return result

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Fold and checkpoint whatever the log holds past the saved position;
        a long stretch takes the grouped path (``cdp.runtime.grouped``)."""
        tail = self.log.high_water() - self.runtime.next_offset
        if tail <= 0:
            return 0
        if tail >= grouped.THRESHOLD:
            folded = grouped.fold_grouped(self.runtime, self.con, progress=progress)
            with grouped.bulk_memory(self.con, tail):  # the facts of the whole stretch too
                views.catch_up(self.con)
            return folded
        folded = self.runtime.catch_up(self.log, progress)
        self.checkpoint()
        return folded

    @contextmanager
    def bulk(self) -> Iterator[Engine]:
        """Appends inside the block only go to the log; the projections catch up
        once at the end (``catch_up``), customer by customer for a large import.
        An interrupted block loses nothing: the next open folds the tail."""
        self.runtime.flush()
        self._deferred = True
        try:
            with grouped.bulk_memory(self.con):
                yield self
        finally:
            self._deferred = False
        self.catch_up()

    def checkpoint(self) -> int:
        """Persist projection changes and the read position (one transaction);
        then bring the views' derived tables up to the log (``views.catch_up``)."""
        saved = self.runtime.checkpoint() if self.runtime.dirty else 0
        views.catch_up(self.con)
        return saved

    def close(self) -> None:
        """Checkpoint and release the file lock."""
        try:
            self.checkpoint()
        finally:
            self.con.close()
