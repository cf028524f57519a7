"""What the Segments screen reads: sizes, live counts, member pages, history, vocabulary.

Every query runs the segment's own compiled statement (``cdp.services.segment_lang``,
the one ``cdp segment run`` executes) wrapped in a bounded outer query:

- :func:`count`: ``count(DISTINCT customer_id)`` of it, on a cursor of its own
  that a timer interrupts after ``seconds`` (``CountTimeout``), so a heavy
  definition typed in the builder cannot hold a server thread; ``CountCache``
  keeps counts until the data moves (``report_cache.data_mark``, the mark the
  console's other caches use);
- :func:`members_page`: the count and one page in one statement (the segment
  evaluated once), keyset paging in customer-id order (``after`` / ``before``
  an id, ``LIMIT n + 1``), joined to ``profiles`` for the columns shown;
- :func:`member_rows`: every member with the same columns, fetched in batches
  (the CSV download streams them, ``web.csv_stream``);
- :func:`last_runs`: each segment's last recorded run in one query over
  ``segment_runs`` (``cdp.services.segment_lang.history``);
- :class:`Vocabulary`: the event names and product ids the data holds (for
  the builder's suggestions and the "never occurs" warnings), one pass over
  ``facts`` at most every ``Vocabulary.ttl`` seconds.
"""

from __future__ import annotations

import difflib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import duckdb

from cdp.console.report_cache import Mark, data_mark
from cdp.errors import CdpError, SegmentError
from cdp.services.segment_lang.checks import event_names
from cdp.services.segment_lang.compiler import CompiledSegment
from cdp.services.segment_lang.model import SegmentDefinition

#: The columns of ``profiles`` the members table and the CSV show, in order.
MEMBER_COLUMNS: Final = (
    "customer_id",
    "name",
    "email",
    "region",
    "lifecycle_stage",
    "orders_count",
    "revenue",
    "last_seen",
)
BATCH: Final = 5_000


class CountTimeout(SegmentError):
    """The live count took longer than its bound and was interrupted."""


def _members_sql(compiled: CompiledSegment) -> str:
    return f"SELECT DISTINCT customer_id FROM ({compiled.sql}) AS segment_rows"


@contextmanager
def timed_cursor(
    cursor_of: Callable[[], duckdb.DuckDBPyConnection], name: str, seconds: float
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A cursor of its own (so the timer interrupts only this work), interrupted
    after ``seconds`` (``CountTimeout``); DuckDB's errors become ``SegmentError``
    naming the segment."""
    cursor = cursor_of().cursor()
    timer = threading.Timer(seconds, cursor.interrupt)
    timer.start()
    try:
        yield cursor
    except duckdb.InterruptException:
        raise CountTimeout(
            f"segment {name!r}: the query took longer than {seconds:g} s and was stopped"
        ) from None
    except duckdb.Error as error:
        raise SegmentError(f"segment {name!r} failed: {str(error).strip()}") from None
    finally:
        timer.cancel()
        cursor.close()


def count(
    cursor_of: Callable[[], duckdb.DuckDBPyConnection],
    name: str,
    compiled: CompiledSegment,
    seconds: float,
) -> int:
    """Members of ``compiled`` (as ``cdp segment run`` counts them: distinct,
    non-null ids); ``CountTimeout`` after ``seconds``, ``SegmentError`` when the
    statement does not run (the message is DuckDB's, naming the segment)."""
    with timed_cursor(cursor_of, name, seconds) as cursor:
        row = cursor.execute(
            f"SELECT count(customer_id) FROM ({_members_sql(compiled)}) AS members",
            compiled.values,
        ).fetchone()
    return int(row[0]) if row else 0


@dataclass(frozen=True, slots=True)
class MembersPage:
    """One page of members: rows in customer-id order and the ids to page from."""

    count: int
    rows: list[tuple[Any, ...]]
    next_after: str | None
    prev_before: str | None


def members_page(
    cursor_of: Callable[[], duckdb.DuckDBPyConnection],
    name: str,
    compiled: CompiledSegment,
    limit: int,
    seconds: float,
    after: str | None = None,
    before: str | None = None,
) -> MembersPage:
    """The member count and ``limit`` members after ``after`` (or before
    ``before``) with their profile columns: one statement, the segment evaluated
    once (a materialised CTE), bounded like :func:`count`."""
    columns = ", ".join(f"p.{c}" for c in MEMBER_COLUMNS)
    values = dict(compiled.values)
    where, order = "", "ASC"
    if before is not None:
        where, order = "WHERE m.customer_id < $console_key", "DESC"
        values["console_key"] = before
    elif after is not None:
        where = "WHERE m.customer_id > $console_key"
        values["console_key"] = after
    sql = (
        f"WITH m AS MATERIALIZED ({_members_sql(compiled)}),\n"
        "n AS (SELECT count(customer_id) AS members FROM m),\n"
        f"page AS (SELECT {columns} FROM m JOIN profiles p ON p.customer_id = m.customer_id "
        f"{where} ORDER BY m.customer_id {order} LIMIT {int(limit) + 1})\n"
        f"SELECT n.members, page.* FROM n LEFT JOIN page ON true "
        f"ORDER BY page.customer_id {order}"
    )
    with timed_cursor(cursor_of, name, seconds) as cursor:
        found = cursor.execute(sql, values).fetchall()
    total = int(found[0][0]) if found else 0
    rows = [r[1:] for r in found if r[1] is not None]
    more = len(rows) > limit
    rows = rows[:limit]
    if before is not None:
        rows.reverse()
        return MembersPage(
            total, rows, rows[-1][0] if rows else None, rows[0][0] if more and rows else None
        )
    return MembersPage(
        total, rows, rows[-1][0] if more and rows else None, rows[0][0] if after and rows else None
    )


class CountCache:
    """Live counts by statement, values and the data's mark (``data_mark``: the
    log's rows and last offset, the folds' positions): the builder asks again
    for the same statement as one types a name; a new event or checkpoint
    changes the mark."""

    size: int = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: OrderedDict[tuple[Any, ...], int] = OrderedDict()

    @staticmethod
    def mark(con: duckdb.DuckDBPyConnection) -> Mark | None:
        """The data's mark, ``None`` where it cannot be read (nothing is kept then)."""
        try:
            return data_mark(con)
        except duckdb.Error:
            return None

    def get(self, key: tuple[Any, ...]) -> int | None:
        """The count kept for ``key``, if any."""
        with self._lock:
            found = self._counts.get(key)
            if found is not None:
                self._counts.move_to_end(key)
            return found

    def put(self, key: tuple[Any, ...], members: int) -> None:
        """Keep a count (the oldest go beyond ``size``)."""
        with self._lock:
            self._counts[key] = members
            self._counts.move_to_end(key)
            while len(self._counts) > self.size:
                self._counts.popitem(last=False)


def member_rows(
    cursor_of: Callable[[], duckdb.DuckDBPyConnection], compiled: CompiledSegment
) -> Iterator[tuple[Any, ...]]:
    """Every member with ``MEMBER_COLUMNS``, in customer-id order, ``BATCH`` rows at a time,
    on a cursor of its own (closed when the iteration ends)."""
    columns = ", ".join(f"p.{c}" for c in MEMBER_COLUMNS)
    cursor = cursor_of().cursor()
    try:
        cursor.execute(
            f"SELECT {columns} FROM ({_members_sql(compiled)}) AS m "
            "JOIN profiles p ON p.customer_id = m.customer_id ORDER BY m.customer_id",
            compiled.values,
        )
        while batch := cursor.fetchmany(BATCH):
            yield from batch
    finally:
        cursor.close()


@dataclass(frozen=True, slots=True)
class LastRun:
    """A segment's last recorded run (``cdp segment run --record`` / refresh)."""

    members: int
    run_at: datetime


def last_runs(con: duckdb.DuckDBPyConnection) -> dict[str, LastRun]:
    """Each recorded segment's last run, in one query (empty before any record)."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'segment_runs'"
    ).fetchone()
    if not exists or not exists[0]:
        return {}
    rows = con.execute(
        "SELECT segment, arg_max(members, run_id), max(run_at) FROM segment_runs GROUP BY 1"
    ).fetchall()
    return {str(r[0]): LastRun(int(r[1]), r[2]) for r in rows}


class Vocabulary:
    """The event names and product ids in the data, most frequent first, cached."""

    ttl: float = 60.0

    def __init__(self, cursor_of: Callable[[], duckdb.DuckDBPyConnection]) -> None:
        self._cursor_of = cursor_of
        self._lock = threading.Lock()
        self._at = -1e9
        self._events: list[str] = []
        self._products: list[str] = []

    def _refresh(self) -> None:
        with self._lock:
            if time.monotonic() - self._at < self.ttl:
                return
            con = self._cursor_of()
            events = con.execute(
                "SELECT event FROM facts WHERE event IS NOT NULL "
                "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 300"
            ).fetchall()
            products = con.execute(
                "SELECT p FROM (SELECT unnest(product_ids) AS p FROM facts "
                "WHERE event = 'Order Completed') WHERE p IS NOT NULL "
                "GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1000"
            ).fetchall()
            self._events = [str(r[0]) for r in events]
            self._products = [str(r[0]) for r in products]
            self._at = time.monotonic()

    def events(self) -> list[str]:
        """Event names (at most 300), most frequent first; empty if unreadable."""
        try:
            self._refresh()
        except (CdpError, duckdb.Error):
            return []
        return list(self._events)

    def products(self) -> list[str]:
        """Ordered product ids (at most 1,000), most ordered first; empty if unreadable."""
        try:
            self._refresh()
        except (CdpError, duckdb.Error):
            return []
        return list(self._products)

    def warnings(self, definition: SegmentDefinition) -> list[str]:
        """One line per event name of the rules that no stored event carries
        (as ``cdp segment validate`` warns), with the closest known name."""
        known = self.events()
        if not known or len(known) >= 300:  # an empty or cut list cannot tell
            return []
        out = []
        for name in event_names(definition):
            if name in known:
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            if not close:
                folded = {k.casefold(): k for k in known}
                close = [folded[name.casefold()]] if name.casefold() in folded else []
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append(f"event {name!r} never occurs in the data{hint}")
        return out
