"""Bulk reads for the lookup read model (``cdp.read.model``): the checkpointed
tables and the log, through Arrow, as rows whose times are aware datetimes in
the model's zone.

``customer_chunks`` reads ``customers`` rows (all, or those named) in chunks;
``load_rings`` every customer's recent-event ring; ``load_unowned`` the
identifiers the log holds that the graph does not know; ``load_segments`` the
current segment memberships. ``EVENT_SQL`` is the statement over
``event_log`` whose rows become ring items.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import duckdb
import pyarrow as pa

from cdp.read.answer import dumps
from cdp.read.entry import ANON_PREFIX, RING, USER_PREFIX, event_json, kept

CHUNK = 10_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UTC = frozenset({"UTC", "Etc/UTC", "Etc/UCT", "UCT", "Etc/GMT", "GMT", "Etc/Universal",
                  "Universal", "Etc/Zulu", "Zulu"})  # fmt: skip
EVENT_SQL = """SELECT "offset", epoch_us(timestamp) AS us, timestamp, type, event, message_id,
                       source, trim(user_id) AS u, trim(anonymous_id) AS a FROM event_log"""


def epoch_us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


def arrow_rows(table: pa.Table | pa.RecordBatch, zone: tzinfo) -> list[dict[str, Any]]:
    """Arrow rows as dicts, times as aware datetimes in ``zone``.

    pyarrow makes an aware datetime in ~10 µs; from the microseconds it takes
    well under one, which is most of the load time of a million customers.
    """
    columns = []
    for column, field in zip(table.columns, table.schema, strict=True):
        if pa.types.is_timestamp(field.type):
            micros = column.cast(pa.int64()).to_pylist()
            values = [None if us is None else _EPOCH + timedelta(microseconds=us) for us in micros]
            if str(zone) not in _UTC:
                values = [None if v is None else v.astimezone(zone) for v in values]
            columns.append(values)
        else:
            columns.append(column.to_pylist())
    names = table.schema.names
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


def customer_chunks(
    con: duckdb.DuckDBPyConnection, customers: list[str] | None, zone: tzinfo
) -> Iterable[list[dict[str, Any]]]:
    """Customers rows (all, or those named), without ``profile_state``."""
    sql = "SELECT * EXCLUDE (profile_state) FROM customers"
    if customers is None:
        reader = con.sql(sql).to_arrow_reader(CHUNK)
        for batch in reader:
            yield arrow_rows(batch, zone)
        return
    for start in range(0, len(customers), CHUNK):
        part = customers[start : start + CHUNK]
        table = con.sql(
            f"{sql} WHERE customer_id IN (SELECT unnest(?))", params=[part]
        ).to_arrow_table()
        yield arrow_rows(table, zone)


def load_rings(con: duckdb.DuckDBPyConnection, next_offset: int, zone: tzinfo) -> dict[str, bytes]:
    """Every customer's ``RING`` newest events below ``next_offset``, as the view
    attributes them (one query; the ranking runs in DuckDB)."""
    reader = con.sql(
        f"""SELECT customer_id, "offset", us, timestamp, type, event, message_id, source
            FROM (SELECT l.*, coalesce(iu.customer_id, ia.customer_id) AS customer_id
                  FROM ({EVENT_SQL} WHERE "offset" < ?) l
                  LEFT JOIN identity_graph iu ON iu.identifier = '{USER_PREFIX}' || l.u
                  LEFT JOIN identity_graph ia ON ia.identifier = '{ANON_PREFIX}' || l.a)
            WHERE customer_id IS NOT NULL
            QUALIFY row_number() OVER (
                PARTITION BY customer_id ORDER BY timestamp DESC, "offset" DESC) <= {RING}
            ORDER BY customer_id, timestamp DESC, "offset" DESC""",
        params=[next_offset],
    ).to_arrow_reader(50_000)
    rings: dict[str, list[Any]] = defaultdict(list)
    assert reader is not None
    for batch in reader:
        for row in arrow_rows(batch, zone):
            rings[row["customer_id"]].append(event_json(row))
    return {c: kept(dumps(ring)) for c, ring in rings.items()}


def load_unowned(con: duckdb.DuckDBPyConnection, next_offset: int) -> set[str]:
    """Identifier keys in the log (user or anonymous ids) the graph does not know."""
    rows = con.execute(
        f"""SELECT DISTINCT k FROM (
                SELECT '{USER_PREFIX}' || trim(user_id) AS k FROM event_log
                WHERE "offset" < $1 AND user_id IS NOT NULL
                UNION ALL SELECT '{ANON_PREFIX}' || trim(anonymous_id) FROM event_log
                WHERE "offset" < $1 AND anonymous_id IS NOT NULL)
            WHERE k NOT IN (SELECT identifier FROM identity_graph)""",
        [next_offset],
    ).fetchall()
    return {str(r[0]) for r in rows}


def load_segments(
    con: duckdb.DuckDBPyConnection,
) -> tuple[dict[str, tuple[str, ...]], object]:
    """Current memberships at the last recorded runs, and a stamp of the runs."""
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'segment_membership'"
    ).fetchall()
    if not exists[0][0]:
        return {}, None
    stamp = tuple(con.execute("SELECT max(run_id), count(*) FROM segment_runs").fetchall()[0])
    rows = con.execute(
        "SELECT customer_id, list(DISTINCT segment ORDER BY segment) FROM segment_membership "
        "WHERE left_run IS NULL GROUP BY customer_id"
    ).fetchall()
    return {str(c): tuple(s) for c, s in rows}, stamp
