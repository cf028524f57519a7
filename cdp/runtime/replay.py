"""Replay: rebuild every projection from offset 0 of the log.

``rebuild`` folds the whole log into a fresh runtime, writes it to scratch
tables (``rebuild_*``) and swaps them in for the live tables in one
transaction. With ``verify`` it first proves the rebuilt state equals the live
one: every customer's profile and lead-score state, every identifier's
customer, and the stored rows (``customers`` table) — any difference is
listed. ``as_of`` instead builds a point-in-time copy (``asof_*`` tables) from
the events whose event time is at or before it, leaving the live tables alone.

An ``as_of`` before the first event is refused (``ConfigError`` naming the
first event time): the tables would be empty, which is never what was meant.
One at or after the last event is allowed (a script may ask for "as of now")
and the report says the tables equal the live state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from cdp.adapters.duckdb import store
from cdp.errors import ConfigError
from cdp.ports.log import StoredEvent
from cdp.runtime.bulk import paused_gc
from cdp.runtime.embedded import EmbeddedRuntime
from cdp.runtime.engine import Engine

REBUILD_PREFIX = "rebuild_"
AS_OF_PREFIX = "asof_"
MAX_LISTED = 20


@dataclass(slots=True)
class ReplayReport:
    """What a replay did and, with verify, whether live and rebuilt state agree."""

    events: int
    customers: int
    identifiers: int
    seconds: float
    verified: bool | None = None
    differences: list[str] = field(default_factory=list)
    tables: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _compare(live: EmbeddedRuntime, fresh: EmbeddedRuntime) -> list[str]:
    diffs: list[str] = []
    if live.next_offset != fresh.next_offset:
        diffs.append(f"read position: live {live.next_offset}, rebuilt {fresh.next_offset}")
    for label, a, b in (
        ("profile", live.profiles, fresh.profiles),
        ("lead score", live.leads, fresh.leads),
    ):
        for customer in sorted(a.keys() - b.keys())[:MAX_LISTED]:
            diffs.append(f"{label}: customer {customer} only in live state")
        for customer in sorted(b.keys() - a.keys())[:MAX_LISTED]:
            diffs.append(f"{label}: customer {customer} only in rebuilt state")
        differing = [c for c in sorted(a.keys() & b.keys()) if a[c] != b[c]]
        diffs.extend(f"{label}: customer {c} differs" for c in differing[:MAX_LISTED])
    live_rows, fresh_rows = sorted(live.graph.to_rows()), sorted(fresh.graph.to_rows())
    if live_rows != fresh_rows:
        only_live = sorted(set(live_rows) - set(fresh_rows))[:MAX_LISTED]
        only_fresh = sorted(set(fresh_rows) - set(live_rows))[:MAX_LISTED]
        diffs.extend(f"identity: live has {r}" for r in only_live)
        diffs.extend(f"identity: rebuilt has {r}" for r in only_fresh)
    return diffs


def _table_differences(engine: Engine) -> list[str]:
    columns = ", ".join(f'"{c}"' for c in store.CUSTOMER_COLUMNS)
    diffs: list[str] = []
    for left, right in (("", REBUILD_PREFIX), (REBUILD_PREFIX, "")):
        rows = engine.con.execute(
            f"SELECT customer_id FROM (SELECT {columns} FROM {left}customers "
            f"EXCEPT SELECT {columns} FROM {right}customers) ORDER BY 1 LIMIT {MAX_LISTED}"
        ).fetchall()
        side = "live" if not left else "rebuilt"
        diffs.extend(f"customers table: row of {r[0]} only in {side}" for r in rows)
    return diffs


def _swap(engine: Engine) -> None:
    con = engine.con
    con.execute("BEGIN TRANSACTION")
    try:
        for table in store.TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute(f"ALTER TABLE {REBUILD_PREFIX}{table} RENAME TO {table}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def rebuild(
    engine: Engine, verify: bool = False, progress: Callable[[int], None] | None = None
) -> ReplayReport:
    """Rebuild all projections from the log into fresh tables and switch to them."""
    engine.checkpoint()
    started = time.perf_counter()
    fresh = EmbeddedRuntime(engine.runtime.config)
    fresh.catch_up(engine.log, progress)
    seconds = time.perf_counter() - started
    report = ReplayReport(
        fresh.stats.events,
        len(fresh.profiles),
        len(fresh.graph.to_rows()),
        seconds,
        tables="live tables (customers, identity_graph, merges, identity_rejections, positions)",
    )
    store.drop(engine.con, REBUILD_PREFIX)
    store.create(engine.con, REBUILD_PREFIX)
    fresh.checkpoint(engine.con, prefix=REBUILD_PREFIX)
    if verify:
        report.differences = _compare(engine.runtime, fresh) + _table_differences(engine)
        report.verified = not report.differences
    _swap(engine)
    engine.runtime = fresh
    return report


def _until(engine: Engine, as_of: datetime) -> Iterator[list[StoredEvent]]:
    for batch in engine.log.read(0, batch_size=20_000):
        yield [s for s in batch if s.event.timestamp <= as_of]


def rebuild_as_of(
    engine: Engine, as_of: datetime, progress: Callable[[int], None] | None = None
) -> ReplayReport:
    """Projections as they were at event time ``as_of``, in the ``asof_*`` tables.

    ``ConfigError`` when ``as_of`` is before the first event (or the log is empty)."""
    first, last = event_time_range(engine)
    if first is None or last is None:
        raise ConfigError("the event log is empty: there is nothing to replay as of any time")
    if as_of < first:
        raise ConfigError(
            f"--as-of {as_of.isoformat()} is before the first event "
            f"({first.isoformat()}): the tables would be empty; "
            "give a time at or after the first event"
        )
    notes = []
    if as_of >= last:
        notes.append(
            f"{as_of.isoformat()} is at or after the last event ({last.isoformat()}): "
            "the as-of tables equal the live state"
        )
    started = time.perf_counter()
    fresh = EmbeddedRuntime(engine.runtime.config)
    with paused_gc():
        for batch in _until(engine, as_of):
            fresh.apply(batch)
            if progress is not None:
                progress(len(batch))
        fresh.flush()
    seconds = time.perf_counter() - started
    store.drop(engine.con, AS_OF_PREFIX)
    store.create(engine.con, AS_OF_PREFIX)
    fresh.checkpoint(engine.con, prefix=AS_OF_PREFIX)
    return ReplayReport(
        fresh.stats.events,
        len(fresh.profiles),
        len(fresh.graph.to_rows()),
        seconds,
        tables=f"{AS_OF_PREFIX}customers, {AS_OF_PREFIX}identity_graph, {AS_OF_PREFIX}merges "
        f"(as of {as_of.isoformat()})",
        notes=notes,
    )


def event_time_range(engine: Engine) -> tuple[datetime | None, datetime | None]:
    """The earliest and latest event time in the log (``None`` when it is empty)."""
    row = engine.con.execute("SELECT min(timestamp), max(timestamp) FROM event_log").fetchone()
    if row is None:
        return None, None
    return row[0], row[1]
