"""Large catch-ups folded customer by customer: replay, bulk ingest, a long tail.

Folding a long stretch of the log in log order touches customers at random,
so with states off the heap (``cdp.runtime.embedded``) every batch would read
and write most states again. The grouped path does it in three passes and
folds each customer exactly once:

1. **identity**, in log order (the order of truth): every event's customer at
   the time it was read, and the merges, exactly as ``EmbeddedRuntime.apply``
   decides them. The pairs (offset, customer) go to a scratch table, so
   memory holds only the identity graph.
2. **survivors**: each merged-away customer is mapped to the customer it
   finally ended up in.
3. **fold**: DuckDB sorts the events of the stretch by final customer (it
   spills to disk when it must); for each customer the saved states of every
   customer merged into it are combined (``combine``) and all its events are
   folded at once (``fold``), and the row is written. One pass, one customer
   in memory at a time.

This equals folding event by event because the folds are order-independent
and ``combine`` equals folding the union of two customers' events
(tests/unit/test_*_properties.py); tests/integration/test_grouped.py binds
this path to ``EmbeddedRuntime.apply`` on random logs with merges, and
``cdp replay --verify`` compares the two on real data.

Everything is written by one checkpoint transaction at the end
(``EmbeddedRuntime.saved``): a crash leaves the previous checkpoint and the
next open folds the stretch again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from cdp.adapters.duckdb import store
from cdp.adapters.duckdb.log import decode_rows
from cdp.adapters.duckdb.states import decode_states
from cdp.runtime import customer as customer_state
from cdp.runtime.bulk import paused_gc
from cdp.runtime.embedded import CustomerState, EmbeddedRuntime
from projections import identity
from schemas import AnyEvent
from schemas.events import TYPED_EVENT_NAMES

ASSIGNED = "cdp_grouped_events"
"""Scratch table: (offset, customer at read time) of the stretch being folded."""
FINAL = "cdp_grouped_final"
"""Scratch table: merged-away customer → the customer it ended up in."""
THRESHOLD = 50_000
"""From this many events on, a catch-up takes the grouped path."""
CHUNK = 200_000
MEMORY_LIMIT = "256MB"
"""DuckDB's memory while the grouped path runs: its sort and join spill to
``<data dir>/duckdb-tmp`` beyond it, so a catch-up of any size stays within a
few hundred MB (the cached blocks of the log would otherwise fill the
configured limit, ``cdp.config.DEFAULT_MEMORY_LIMIT``)."""
_ASSIGNED_SCHEMA = pa.schema([("offset", pa.int64()), ("customer", pa.string())])
_FINAL_SCHEMA = pa.schema([("customer", pa.string()), ("final", pa.string())])


def fold_grouped(
    runtime: EmbeddedRuntime,
    con: duckdb.DuckDBPyConnection,
    *,
    until: datetime | None = None,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 20_000,
) -> int:
    """Fold the log past ``runtime.next_offset`` into ``runtime``'s store (one
    checkpoint); with ``until``, only events whose event time is at or before it.
    Returns how many events were folded. The runtime must have nothing unsaved."""
    if runtime.dirty:
        runtime.checkpoint()
    before = runtime.stats.events
    try:
        with paused_gc(), bulk_memory(con):
            losers = _identity_pass(runtime, con, until, progress, batch_size)
            survivors = _survivors(losers)
            _write(
                con,
                FINAL,
                _FINAL_SCHEMA,
                {"customer": list(survivors), "final": list(survivors.values())},
            )
            written: list[str] = []
            track = runtime.on_checkpoint is not None and runtime.live
            assert runtime.states is not None
            runtime.states.stage(_rows(runtime, con, written if track else None, progress))
            runtime.saved((), tuple(sorted(survivors)), tuple(written), staged=True)
            runtime.forget()
    finally:
        for table in (ASSIGNED, FINAL):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        store.drop_staged(con)
    return runtime.stats.events - before


@contextmanager
def bulk_memory(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB's memory limited to ``MEMORY_LIMIT`` inside the block (restored after)."""
    found = con.execute("SELECT current_setting('memory_limit')").fetchall()
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    try:
        yield
    finally:
        con.execute(f"SET memory_limit = '{found[0][0]}'")


def _write(
    con: duckdb.DuckDBPyConnection, table: str, schema: pa.Schema, columns: dict[str, list[Any]]
) -> None:
    con.register("_cdp_grouped_rows", pa.table(columns, schema=schema))
    con.execute(f"INSERT INTO {table} SELECT * FROM _cdp_grouped_rows")
    con.unregister("_cdp_grouped_rows")


_COLUMNS_SQL = """
SELECT "offset", type, event, user_id, anonymous_id, message_id, epoch_us(timestamp),
       contains(payload, '"traits"')
FROM event_log WHERE "offset" >= ? AND "offset" < ? ORDER BY "offset"
"""
_PAYLOADS_SQL = """
SELECT "offset", encode(payload) FROM event_log
WHERE "offset" >= ? AND "offset" < ? AND "offset" IN (SELECT unnest(?)) ORDER BY "offset"
"""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _identity_pass(
    runtime: EmbeddedRuntime,
    con: duckdb.DuckDBPyConnection,
    until: datetime | None,
    progress: Callable[[int], None] | None,
    batch_size: int,
) -> list[tuple[str, str]]:
    """Pass 1: resolve every event of the stretch; return the merges (loser, survivor).

    Most events link nothing but their envelope's ids (``identity.envelope_only``):
    they are resolved from the log's columns, and only the others are decoded."""
    con.execute(f'CREATE OR REPLACE TABLE {ASSIGNED} ("offset" BIGINT, customer VARCHAR)')
    con.execute(f"CREATE OR REPLACE TABLE {FINAL} (customer VARCHAR, final VARCHAR)")
    graph, stats = runtime.graph, runtime.stats
    merges: list[tuple[str, str]] = []
    offsets: list[int] = []
    customers: list[str] = []
    last = runtime.next_offset - 1
    found = con.execute('SELECT coalesce(max("offset") + 1, 0) FROM event_log').fetchone()
    high = int(found[0]) if found else 0
    limit = None if until is None else int((until - _EPOCH) / timedelta(microseconds=1))
    for low in range(runtime.next_offset, high, batch_size):
        rows = con.execute(_COLUMNS_SQL, [low, low + batch_size]).fetchall()
        linking = [
            row[0]
            for row in rows
            if not identity.envelope_only(_tag(row[1], row[2]), bool(row[7]))
            and (limit is None or row[6] <= limit)
        ]
        decoded = {}
        if linking:
            payloads = con.execute(_PAYLOADS_SQL, [low, low + batch_size, linking]).fetchall()
            decoded = {s.offset: s.event for s in decode_rows(payloads, "stored event")}
        for offset, _, _, user_id, anonymous_id, message_id, micros, _ in rows:
            if limit is not None and micros > limit:
                continue
            last = offset
            event = decoded.get(offset)
            if event is None:
                at = _EPOCH + timedelta(microseconds=micros)
                resolution = identity.apply_envelope(
                    graph, user_id, anonymous_id, message_id, at, offset
                )
            else:
                resolution = identity.apply(graph, event, offset)
            stats.events += 1
            for merge in resolution.merges:
                stats.merges += 1
                merges.append((merge.from_customer, merge.into_customer))
            stats.rejections += len(resolution.rejections)
            if resolution.customer_id is None:
                stats.unresolved += 1
                continue
            offsets.append(offset)
            customers.append(resolution.customer_id)
        if len(offsets) >= CHUNK:
            _write(con, ASSIGNED, _ASSIGNED_SCHEMA, {"offset": offsets, "customer": customers})
            offsets, customers = [], []
        if progress is not None:
            progress(len(rows) // 2)
    _write(con, ASSIGNED, _ASSIGNED_SCHEMA, {"offset": offsets, "customer": customers})
    runtime.next_offset = last + 1
    return merges


def _tag(kind: str, name: str | None) -> str:
    """The union tag (``schemas.events.tag_of``) from the log's type and event columns."""
    return name if kind == "track" and name in TYPED_EVENT_NAMES else kind


def _survivors(merges: list[tuple[str, str]]) -> dict[str, str]:
    """Each merged-away customer → the live customer it ended up in (merge chains
    followed: a survivor may itself be merged away later)."""
    into = dict(merges)
    final: dict[str, str] = {}
    for loser, survivor in into.items():
        end = survivor
        while end in into:
            end = into[end]
        final[loser] = end
    return final


# The join must hash the narrow side (offset, customer), not the log's payloads:
# DuckDB's join-order and build-side optimizers pick the log (both sides have
# about as many rows), so they are turned off on this query's own cursor and
# the written order (build = the right side) stands.
_EVENTS_SQL = f"""
SELECT a.c, encode(e.payload) AS payload, e."offset"
FROM event_log e JOIN (
    SELECT coalesce(f.final, g.customer) AS c, g."offset"
    FROM {ASSIGNED} g LEFT JOIN {FINAL} f ON f.customer = g.customer
) a ON e."offset" = a."offset"
ORDER BY a.c, e."offset"
"""
_PLAIN_JOINS = "SET disabled_optimizers = 'join_order,build_side_probe_side'"


def _saved_sql(prefix: str) -> str:
    return f"""
SELECT coalesce(f.final, s.customer_id) AS c, s.profile_state, s.lead_state
FROM {prefix}customers s LEFT JOIN {FINAL} f ON f.customer = s.customer_id
WHERE s.customer_id IN (SELECT customer FROM {ASSIGNED} UNION SELECT customer FROM {FINAL}
                        UNION SELECT final FROM {FINAL})
ORDER BY c
"""


def _stream(con: duckdb.DuckDBPyConnection, sql: str, *setup: str) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` on a cursor of their own (after its ``setup`` statements),
    a record batch at a time."""
    cursor = con.cursor()
    try:
        for statement in setup:
            cursor.execute(statement)
        reader = cursor.sql(sql).to_arrow_reader(10_000)
        for batch in reader:
            yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)
    finally:
        cursor.close()


def _rows(
    runtime: EmbeddedRuntime,
    con: duckdb.DuckDBPyConnection,
    written: list[str] | None,
    progress: Callable[[int], None] | None,
) -> Iterator[dict[str, Any]]:
    """Pass 3: each final customer's row, in customer order."""
    rules = runtime.config.scoring
    prefix = getattr(runtime.states, "prefix", "")
    saved = _grouped(_stream(con, _saved_sql(prefix)))
    events = _grouped(_stream(con, _EVENTS_SQL, _PLAIN_JOINS))
    saved_key, saved_rows = next(saved, (None, []))
    for customer, rows in events:
        state: CustomerState | None = None
        while saved_key is not None and saved_key <= customer:
            if saved_key < customer:  # merged customers without new events: none exist,
                state_only = _combined(saved_rows, rules)  # but keep them if they did
                if state_only is not None:
                    yield customer_state.customer_row(
                        saved_key, state_only.profile, state_only.lead, rules
                    )
            else:
                state = _combined(saved_rows, rules)
            saved_key, saved_rows = next(saved, (None, []))
        batch: list[AnyEvent] = [
            s.event for s in decode_rows([(o, p) for _, p, o in rows], "stored event")
        ]
        folded = customer_state.fold(state, batch, rules)
        if written is not None:
            written.append(customer)
        if progress is not None:
            progress(len(rows) - len(rows) // 2)
        yield customer_state.customer_row(customer, folded.profile, folded.lead, rules)
    while saved_key is not None:
        state_only = _combined(saved_rows, rules)
        if state_only is not None:
            yield customer_state.customer_row(saved_key, state_only.profile, state_only.lead, rules)
        saved_key, saved_rows = next(saved, (None, []))


def _grouped(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    for key, group in itertools.groupby(rows, key=lambda row: row[0]):
        yield key, list(group)


def _combined(rows: list[tuple[Any, ...]], rules: Any) -> CustomerState | None:
    state: CustomerState | None = None
    for _, profile_json, lead_json in rows:
        p, lead = decode_states(profile_json, lead_json)
        state = customer_state.absorb(state, CustomerState(p, lead), rules)
    return state
