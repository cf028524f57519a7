"""``cdp.console.report_cache``: results kept per data mark, on a real (in-memory) DuckDB."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import duckdb
import pytest

from cdp.console.report_cache import Cached, Pending, ReportCache, data_mark


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect(":memory:")
    con.execute('CREATE TABLE event_log ("offset" BIGINT, x INTEGER)')
    con.execute("INSERT INTO event_log VALUES (0, 1), (1, 2)")
    yield con
    con.close()


def _connector(con: duckdb.DuckDBPyConnection) -> Callable[[], duckdb.DuckDBPyConnection]:
    local = threading.local()

    def connect() -> duckdb.DuckDBPyConnection:
        if not hasattr(local, "cursor"):
            local.cursor = con.cursor()
        cursor: duckdb.DuckDBPyConnection = local.cursor
        return cursor

    return connect


def _total(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT sum(x) FROM event_log").fetchall()[0][0])


def test_the_mark_moves_with_the_log_and_the_checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    first = data_mark(con)
    assert first == (2, 1, ())
    con.execute("INSERT INTO event_log VALUES (2, 3)")
    assert data_mark(con) == (3, 2, ())
    con.execute("CREATE TABLE positions (name VARCHAR, next_offset BIGINT)")
    con.execute("INSERT INTO positions VALUES ('customers', 2)")
    before = data_mark(con)
    con.execute("UPDATE positions SET next_offset = 3")
    assert data_mark(con) != before


def test_a_result_is_computed_once_per_mark(con: duckdb.DuckDBPyConnection) -> None:
    cache = ReportCache(_connector(con), max_stale=0)
    runs: list[int] = []

    def compute(c: duckdb.DuckDBPyConnection) -> int:
        runs.append(1)
        return _total(c)

    first = cache.get("k", compute)
    again = cache.get("k", compute)
    assert isinstance(first, Cached) and isinstance(again, Cached)
    assert (first.value, again.value, again.fresh, len(runs)) == (3, 3, True, 1)
    con.execute("INSERT INTO event_log VALUES (2, 4)")
    moved = cache.get("k", compute)  # too old to serve stale: computed again now
    assert isinstance(moved, Cached) and (moved.value, moved.fresh, len(runs)) == (7, True, 2)
    assert cache.get("other", compute).value == 7 and len(runs) == 3  # type: ignore[union-attr]
    cache.close()


def test_a_recent_result_is_served_stale_while_it_is_recomputed(
    con: duckdb.DuckDBPyConnection,
) -> None:
    cache = ReportCache(_connector(con), max_stale=3600)
    release = threading.Event()
    done = threading.Event()

    def compute(c: duckdb.DuckDBPyConnection) -> int:
        if _total(c) > 3:
            release.wait()
            done.set()
        return _total(c)

    assert cache.get("k", compute).value == 3  # type: ignore[union-attr]
    con.execute("INSERT INTO event_log VALUES (2, 4)")
    stale = cache.get("k", compute)
    assert isinstance(stale, Cached) and (stale.value, stale.fresh) == (3, False)
    release.set()
    assert done.wait(30)
    deadline = time.monotonic() + 30  # the worker stores the entry right after compute returns
    fresh = cache.get("k", compute)
    while not (isinstance(fresh, Cached) and fresh.fresh) and time.monotonic() < deadline:
        time.sleep(0.01)
        fresh = cache.get("k", compute)
    assert isinstance(fresh, Cached) and (fresh.value, fresh.fresh) == (7, True)
    cache.close()


def test_a_slow_computation_answers_pending_and_errors_reach_the_caller(
    con: duckdb.DuckDBPyConnection,
) -> None:
    cache = ReportCache(_connector(con), wait=0)
    release = threading.Event()

    def slow(c: duckdb.DuckDBPyConnection) -> int:
        release.wait()
        return _total(c)

    assert isinstance(cache.get("slow", slow), Pending)
    release.set()
    assert cache.get("slow", slow, wait=30).value == 3  # type: ignore[union-attr]

    def broken(c: duckdb.DuckDBPyConnection) -> int:
        raise ValueError("no such analytic")

    with pytest.raises(ValueError, match="no such analytic"):
        cache.get("broken", broken, wait=30)
    cache.close()


def test_prefetch_starts_only_what_is_missing(con: duckdb.DuckDBPyConnection) -> None:
    cache = ReportCache(_connector(con))
    assert cache.get("a", _total).value == 3  # type: ignore[union-attr]
    assert cache.prefetch([("a", _total), ("b", _total)]) == 1
    assert cache.get("b", _total, wait=30).value == 3  # type: ignore[union-attr]
    cache.close()


def test_a_caller_may_keep_any_old_result_and_recompute_it_at_most_every_so_often(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """The overview's way: ``max_stale`` per call (its figures at hand, however
    old) and ``refresh`` (no recomputation of a result younger than that)."""
    cache = ReportCache(_connector(con), max_stale=0)
    runs: list[int] = []

    def compute(c: duckdb.DuckDBPyConnection) -> int:
        runs.append(1)
        return _total(c)

    assert cache.get("k", compute).value == 3  # type: ignore[union-attr]
    con.execute("INSERT INTO event_log VALUES (2, 4)")
    kept = cache.get("k", compute, max_stale=float("inf"), refresh=3600)
    assert isinstance(kept, Cached) and (kept.value, kept.fresh, len(runs)) == (3, False, 1)
    started = cache.get("k", compute, max_stale=float("inf"), refresh=0)
    assert isinstance(started, Cached) and (started.value, started.fresh) == (3, False)
    deadline = time.monotonic() + 30  # the recomputation runs on the worker
    while len(runs) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    fresh = cache.get("k", compute, max_stale=float("inf"), refresh=3600)
    while not (isinstance(fresh, Cached) and fresh.fresh) and time.monotonic() < deadline:
        time.sleep(0.01)
        fresh = cache.get("k", compute, max_stale=float("inf"), refresh=3600)
    assert isinstance(fresh, Cached) and (fresh.value, fresh.fresh, len(runs)) == (7, True, 2)
    cache.close()
