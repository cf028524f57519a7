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
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from cdp.adapters.duckdb import store
from cdp.adapters.duckdb.states import DuckDBStateStore
from cdp.errors import ConfigError
from cdp.runtime.embedded import EmbeddedRuntime
from cdp.runtime.engine import Engine
from cdp.runtime.grouped import bulk_memory, fold_grouped
from projections import identity

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


def _fresh(engine: Engine, prefix: str) -> EmbeddedRuntime:
    """An empty runtime whose states go to the ``prefix`` tables (created empty)."""
    store.drop(engine.con, prefix)
    store.create(engine.con, prefix)
    fresh = EmbeddedRuntime(engine.runtime.config, DuckDBStateStore(engine.con, prefix))
    fresh.live = False
    return fresh


def _counts(engine: Engine, prefix: str) -> tuple[int, int]:
    row = engine.con.execute(
        f"SELECT (SELECT count(*) FROM {prefix}customers), "
        f"(SELECT count(*) FROM {prefix}identity_graph)"
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _one_sided(engine: Engine, table: str, select: str) -> list[tuple[str, tuple[object, ...]]]:
    """Rows of ``SELECT {select} FROM table`` found on one side only, as ("live" or
    "rebuilt", row), at most ``MAX_LISTED`` per side."""
    found: list[tuple[str, tuple[object, ...]]] = []
    for left, right in (("", REBUILD_PREFIX), (REBUILD_PREFIX, "")):
        rows = engine.con.execute(
            f"SELECT * FROM (SELECT {select} FROM {left}{table} EXCEPT "
            f"SELECT {select} FROM {right}{table}) ORDER BY ALL LIMIT {MAX_LISTED}"
        ).fetchall()
        found.extend(("live" if not left else "rebuilt", tuple(r)) for r in rows)
    return found


def _graph_differences(engine: Engine) -> list[str]:
    select = "identifier, customer_id, seq, merged_into"
    return [
        f"identity: {side} has {row}" for side, row in _one_sided(engine, "identity_graph", select)
    ]


def _table_differences(engine: Engine) -> list[str]:
    """Customers whose rows differ, compared by an MD5 of each whole row (every
    column, the fold states included) so that a million rows of ~5 KB compare
    within the bulk memory limit instead of hashing the rows themselves."""
    columns = ", ".join(f'"{c}" := "{c}"' for c in store.CUSTOMER_COLUMNS)
    select = f"customer_id, md5(CAST(struct_pack({columns}) AS VARCHAR))"
    return [
        f"customers table: row of {row[0]} only in {side}"
        for side, row in _one_sided(engine, "customers", select)
    ]


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
    fresh = _fresh(engine, REBUILD_PREFIX)
    # The live graph is saved and not needed to rebuild or verify (tables are
    # compared): free it while the rebuilt one grows (~1 KB per customer).
    live = engine.runtime
    live.graph = identity.IdentityGraph(live.config.identity)
    try:
        fold_grouped(fresh, engine.con, progress=progress)
    except BaseException:
        live.graph = identity.IdentityGraph.from_rows(
            store.load(engine.con).graph_rows, live.config.identity
        )
        raise
    seconds = time.perf_counter() - started
    customers, identifiers = _counts(engine, REBUILD_PREFIX)
    report = ReplayReport(
        fresh.stats.events,
        customers,
        identifiers,
        seconds,
        tables="live tables (customers, identity_graph, merges, identity_rejections, positions)",
    )
    if verify:
        with bulk_memory(engine.con, fresh.stats.events):
            report.differences = _differences(engine, fresh)
        report.verified = not report.differences
    _swap(engine)
    fresh.states = DuckDBStateStore(engine.con)
    fresh.live = True
    fresh.on_checkpoint = engine.runtime.on_checkpoint
    engine.runtime = fresh
    return report


def _differences(engine: Engine, fresh: EmbeddedRuntime) -> list[str]:
    """What differs between the live tables and the rebuilt ones: read position,
    every customer's row (its fold states included) and the identity graph."""
    diffs: list[str] = []
    live = engine.runtime.next_offset
    if live != fresh.next_offset:
        diffs.append(f"read position: live {live}, rebuilt {fresh.next_offset}")
    return diffs + _table_differences(engine) + _graph_differences(engine)


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
    fresh = _fresh(engine, AS_OF_PREFIX)
    fold_grouped(fresh, engine.con, until=as_of, progress=progress)
    seconds = time.perf_counter() - started
    customers, identifiers = _counts(engine, AS_OF_PREFIX)
    return ReplayReport(
        fresh.stats.events,
        customers,
        identifiers,
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
