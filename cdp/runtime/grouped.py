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
from cdp.runtime.embedded import CustomerState, EmbeddedRuntime
from cdp.runtime.heap import paused_gc
from cdp.runtime.pool import WorkerPool
from projections import identity, lead_score
from schemas import AnyEvent
from schemas.events import TYPED_EVENT_NAMES

ASSIGNED = "cdp_grouped_events"
"""Scratch table: (offset, customer at read time) of the stretch being folded."""
FINAL = "cdp_grouped_final"
"""Scratch table: merged-away customer → the customer it ended up in."""
THRESHOLD = 50_000
"""From this many events on, a catch-up takes the grouped path."""
CHUNK = 200_000
POOL_EVENTS = 200_000
"""From this many events on, pass 3 folds on every core (starting workers costs ~1 s)."""
CHUNK_EVENTS = 5_000
"""Events per chunk of customers handed to a worker."""
MEMORY_LIMIT = "512MB"
SMALL_MEMORY_LIMIT = "256MB"
"""DuckDB's memory while bulk work runs: ``SMALL_MEMORY_LIMIT`` for a stretch of
fewer than ``PART_EVENTS`` events (and for appends), ``MEMORY_LIMIT`` above (a
part's join and sort of a million payloads). Sorts and joins spill to
``<data dir>/duckdb-tmp`` beyond it, and the cached blocks of the log stay
within it instead of filling the configured limit
(``cdp.config.DEFAULT_MEMORY_LIMIT``), so a catch-up of any size stays within a
few hundred MB of DuckDB memory."""
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
    found = con.execute('SELECT coalesce(max("offset") + 1, 0) FROM event_log').fetchall()
    stretch = int(found[0][0]) - runtime.next_offset
    try:
        with paused_gc(), bulk_memory(con, stretch):
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
            stretch = runtime.stats.events - before
            rows = _rows(runtime, con, written if track else None, progress, stretch)
            runtime.states.stage(rows)
            runtime.saved((), tuple(sorted(survivors)), tuple(written), staged=True)
            runtime.forget()
    finally:
        for table in (ASSIGNED, FINAL):
            con.execute(f"DROP TABLE IF EXISTS {table}")
        store.drop_staged(con)
    return runtime.stats.events - before


@contextmanager
def bulk_memory(con: duckdb.DuckDBPyConnection, events: int = 0) -> Iterator[None]:
    """DuckDB's memory limited for bulk work on ``events`` events inside the block
    (``MEMORY_LIMIT``; restored after)."""
    found = con.execute("SELECT current_setting('memory_limit')").fetchall()
    limit = SMALL_MEMORY_LIMIT if events < PART_EVENTS else MEMORY_LIMIT
    con.execute(f"SET memory_limit = '{limit}'")
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
    WHERE hash(coalesce(f.final, g.customer)) % $parts = $part
) a ON e."offset" = a."offset"
ORDER BY a.c, e."offset"
"""
_PLAIN_JOINS = "SET disabled_optimizers = 'join_order,build_side_probe_side'"
PART_EVENTS = 1_000_000
"""Events per part of pass 3: each part is one join and sort (by customer hash) that
DuckDB finishes within ``MEMORY_LIMIT``; a larger stretch is folded in several."""


def _saved_sql(prefix: str) -> str:
    return f"""
SELECT c, profile_state, lead_state FROM (
    SELECT coalesce(f.final, s.customer_id) AS c, s.profile_state, s.lead_state
    FROM {prefix}customers s LEFT JOIN {FINAL} f ON f.customer = s.customer_id
    WHERE s.customer_id IN (SELECT customer FROM {ASSIGNED} UNION SELECT customer FROM {FINAL}
                            UNION SELECT final FROM {FINAL})
) WHERE hash(c) % $parts = $part
ORDER BY c
"""


def _stream(
    con: duckdb.DuckDBPyConnection, sql: str, parameters: dict[str, int], *setup: str
) -> Iterator[tuple[Any, ...]]:
    """Rows of ``sql`` on a cursor of their own (after its ``setup`` statements),
    a record batch at a time."""
    cursor = con.cursor()
    try:
        cursor.execute("SET enable_progress_bar = false")  # see cdp.runtime.engine
        for statement in setup:
            cursor.execute(statement)
        reader = cursor.sql(sql, params=parameters).to_arrow_reader(10_000)
        for batch in reader:
            yield from zip(*(column.to_pylist() for column in batch.columns), strict=True)
    finally:
        cursor.close()


Group = tuple[str, list[tuple[Any, ...]], list[tuple[Any, ...]]]
"""One final customer: its id, the saved rows of everyone merged into it
(``(c, profile_state, lead_state)``) and its events (``(c, payload, offset)``)."""


def _groups(
    runtime: EmbeddedRuntime, con: duckdb.DuckDBPyConnection, events: int
) -> Iterator[Group]:
    """Pass 3's input: every final customer with saved states or events, part by
    part (``PART_EVENTS``), in customer order within a part."""
    parts = max(1, -(-events // PART_EVENTS))
    for part in range(parts):
        yield from _part(runtime, con, {"parts": parts, "part": part})


def _part(
    runtime: EmbeddedRuntime, con: duckdb.DuckDBPyConnection, parameters: dict[str, int]
) -> Iterator[Group]:
    prefix = getattr(runtime.states, "prefix", "")
    saved = _grouped(_stream(con, _saved_sql(prefix), parameters))
    events = _grouped(_stream(con, _EVENTS_SQL, parameters, _PLAIN_JOINS))
    saved_key, saved_rows = next(saved, (None, []))
    for customer, rows in events:
        mine: list[tuple[Any, ...]] = []
        while saved_key is not None and saved_key <= customer:
            if saved_key < customer:  # saved states without new events (merges always
                yield saved_key, saved_rows, []  # have an event, but keep them if not)
            else:
                mine = saved_rows
            saved_key, saved_rows = next(saved, (None, []))
        yield customer, mine, rows
    while saved_key is not None:
        yield saved_key, saved_rows, []
        saved_key, saved_rows = next(saved, (None, []))


def fold_groups(groups: list[Group], rules: lead_score.Rules) -> list[dict[str, Any]]:
    """Pass 3's work for a chunk of customers (runs in a worker process for a large
    catch-up): combine each one's saved states, fold its events, make its row."""
    rows = []
    for customer, saved, events in groups:
        state = _combined(saved, rules)
        if events:
            batch: list[AnyEvent] = [
                s.event for s in decode_rows([(o, p) for _, p, o in events], "stored event")
            ]
            state = customer_state.fold(state, batch, rules)
        if state is not None:
            rows.append(customer_state.customer_row(customer, state.profile, state.lead, rules))
    return rows


def _rows(
    runtime: EmbeddedRuntime,
    con: duckdb.DuckDBPyConnection,
    written: list[str] | None,
    progress: Callable[[int], None] | None,
    events: int,
) -> Iterator[dict[str, Any]]:
    """Pass 3: each final customer's row, in customer order; on every core
    (``cdp.runtime.pool``) when the stretch holds ``POOL_EVENTS`` or more."""
    rules = runtime.config.scoring
    chunks = _chunks(_groups(runtime, con, events))
    if events < POOL_EVENTS:
        done: Iterator[tuple[int, list[dict[str, Any]]]] = (
            (n, fold_groups(chunk, rules)) for n, chunk in chunks
        )
        yield from _counted(done, written, progress)
        return
    with WorkerPool() as pool:
        yield from _counted(pool.map(fold_groups, chunks, rules), written, progress)


def _chunks(groups: Iterator[Group]) -> Iterator[tuple[int, list[Group]]]:
    """Groups in chunks of about ``CHUNK_EVENTS`` events, tagged with their event count."""
    chunk: list[Group] = []
    size = 0
    for group in groups:
        chunk.append(group)
        size += len(group[2])
        if size >= CHUNK_EVENTS:
            yield size, chunk
            chunk, size = [], 0
    if chunk:
        yield size, chunk


def _counted(
    done: Iterator[tuple[int, list[dict[str, Any]]]],
    written: list[str] | None,
    progress: Callable[[int], None] | None,
) -> Iterator[dict[str, Any]]:
    for size, rows in done:
        if written is not None:
            written.extend(row["customer_id"] for row in rows)
        if progress is not None:
            progress(size - size // 2)
        yield from rows


def _grouped(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    for key, group in itertools.groupby(rows, key=lambda row: row[0]):
        yield key, list(group)


def _combined(rows: list[tuple[Any, ...]], rules: Any) -> CustomerState | None:
    state: CustomerState | None = None
    for _, profile_json, lead_json in rows:
        p, lead = decode_states(profile_json, lead_json)
        state = customer_state.absorb(state, CustomerState(p, lead), rules)
    return state
