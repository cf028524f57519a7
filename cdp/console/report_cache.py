"""Results of heavy reads (the analytics reports), kept per data mark.

An analytic reads the whole event log (0.2–0.5 s on the demo shop, seconds
at a million customers), more than a page may take. The console computes each
one (per screen, per set of options) once per **data mark**, the state of the
data it read:

- the log's row count and highest offset (``event_log``: the embedded log
  table or the archive's Parquet view), and
- the checkpoint positions (``positions``, embedded mode), since ``profiles``
  and the identity graph move at each checkpoint.

Reading the mark costs two small statements. Then, per request:

- the stored result has the current mark: it is the answer (**fresh**);
- it has an older mark but was computed less than ``max_stale`` seconds ago:
  it is the answer (**stale**, the page says as of when) and one recomputation
  starts in the background (unless the result is younger than ``refresh``
  seconds: a caller may ask a busy shop to recompute at most that often), so
  a busy shop does not pay the full cost on every view;
- else the computation runs on the cache's worker thread and the request
  waits for it up to ``wait`` seconds; if it is not done by then the page
  says it is being computed (:class:`Pending`) and the browser reloads it.

One worker thread runs every computation, one at a time, so the console
never runs more than one whole-log analytic at once beside the writer; two
requests for the same result share one computation. ``prefetch`` starts
computations nobody waits for yet (the analytics index starts every page's
default result, so a page is ready by the time it is opened). At most ``size``
results are kept (least recently used go first).

The console has one cache (``ConsoleContext.reports``) for every screen whose
figures read the whole log: the analytics pages and the overview.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import duckdb

T = TypeVar("T")

MAX_STALE: Final = 60.0
WAIT: Final = 15.0
SIZE: Final = 32

Mark = tuple[Any, ...]


def data_mark(con: duckdb.DuckDBPyConnection) -> Mark:
    """The state of the data an analytic reads: ``(log rows, highest offset,
    checkpoint positions)``; equal marks mean equal results."""
    rows, high = con.execute('SELECT count(*), max("offset") FROM event_log').fetchall()[0]
    has_positions = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'positions'"
    ).fetchall()[0][0]
    checkpoint: tuple[Any, ...] = ()
    if has_positions:
        checkpoint = tuple(
            con.execute("SELECT name, next_offset FROM positions ORDER BY name").fetchall()
        )
    return (int(rows), high, checkpoint)


@dataclass(frozen=True, slots=True)
class Cached(Generic[T]):
    """A result with the mark it was computed at; ``fresh``: that mark is current."""

    value: T
    mark: Mark
    computed_at: float  # time.time()
    seconds: float  # how long the computation took
    fresh: bool = True


@dataclass(frozen=True, slots=True)
class Pending:
    """The computation is still running (the page asks the browser to reload)."""

    started_at: float


@dataclass(slots=True)
class _Entry:
    mark: Mark
    value: Any
    computed_at: float
    seconds: float


class ReportCache:
    """Results per key, each valid for the data mark it was computed at.

    ``connect`` gives the calling thread's DuckDB cursor (the worker thread
    gets its own through it). ``get(key, compute)`` answers as described in
    the module docstring; errors of ``compute`` reach the caller and are not kept.
    """

    def __init__(
        self,
        connect: Callable[[], duckdb.DuckDBPyConnection],
        *,
        max_stale: float = MAX_STALE,
        wait: float = WAIT,
        size: int = SIZE,
    ) -> None:
        self._connect = connect
        self.max_stale = max_stale
        self.wait = wait
        self.size = size
        self._entries: OrderedDict[Hashable, _Entry] = OrderedDict()
        self._running: dict[Hashable, tuple[Future[_Entry], float]] = {}
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None

    def get(
        self,
        key: Hashable,
        compute: Callable[[duckdb.DuckDBPyConnection], T],
        wait: float | None = None,
        *,
        max_stale: float | None = None,
        refresh: float = 0.0,
    ) -> Cached[T] | Pending:
        """The result of ``compute`` for ``key`` at the current data mark (or a
        recent one), computing it when needed; ``Pending`` if that takes longer
        than ``wait`` seconds (default: the cache's). ``max_stale`` (default:
        the cache's) and ``refresh`` as in the module docstring."""
        mark = data_mark(self._connect())
        oldest = self.max_stale if max_stale is None else max_stale
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                if entry.mark == mark:
                    return Cached(entry.value, entry.mark, entry.computed_at, entry.seconds)
                age = time.time() - entry.computed_at
                if age < oldest:
                    if age >= refresh:
                        self._start(key, compute)
                    return Cached(
                        entry.value, entry.mark, entry.computed_at, entry.seconds, fresh=False
                    )
            future, started = self._start(key, compute)
        try:
            done = future.result(timeout=self.wait if wait is None else wait)
        except FutureTimeout:
            return Pending(started)
        return Cached(done.value, done.mark, done.computed_at, done.seconds)

    def prefetch(
        self, wanted: list[tuple[Hashable, Callable[[duckdb.DuckDBPyConnection], Any]]]
    ) -> int:
        """Start computing, in the background, each ``(key, compute)`` that has no
        result at the current mark (a page about to be visited); how many started."""
        mark = data_mark(self._connect())
        started = 0
        with self._lock:
            for key, compute in wanted:
                entry = self._entries.get(key)
                if (entry is None or entry.mark != mark) and key not in self._running:
                    self._start(key, compute)
                    started += 1
        return started

    def _start(
        self, key: Hashable, compute: Callable[[duckdb.DuckDBPyConnection], Any]
    ) -> tuple[Future[_Entry], float]:
        """The running computation of ``key``, started if there is none (lock held)."""
        running = self._running.get(key)
        if running is not None:
            return running
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="console-reports")
        future = self._executor.submit(self._compute, key, compute)
        self._running[key] = (future, time.time())
        return self._running[key]

    def _compute(
        self, key: Hashable, compute: Callable[[duckdb.DuckDBPyConnection], Any]
    ) -> _Entry:
        """On the worker thread: mark first (a change during the run makes it
        stale, never wrongly fresh), then the result, kept."""
        try:
            con = self._connect()
            mark = data_mark(con)
            started = time.perf_counter()
            value = compute(con)
            entry = _Entry(mark, value, time.time(), time.perf_counter() - started)
            with self._lock:
                self._entries[key] = entry
                self._entries.move_to_end(key)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            return entry
        finally:
            with self._lock:
                self._running.pop(key, None)

    def close(self) -> None:
        """Stop the worker (a running computation finishes first)."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
