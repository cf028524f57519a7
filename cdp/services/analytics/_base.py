"""What every analytic shares: the result type, the orders relation, periods, errors.

``ORDERS_SQL`` and ``ORDER_LINES_SQL`` rebuild, in one pass over the
``events`` view, the orders the profile fold keeps (``projections.profile.
kept_orders``): one row per ``(customer, order_id)``, the latest version's
content, placed at the earliest version's time, net of refunds, and without
orders refunded in full. Order Completed v1 events (``orderId``, ``total``,
``products[].id``) are read through the same renames as the v1 → v2 upcaster,
because the log keeps the bytes as received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import duckdb

from cdp.config import MEMORY_LIMIT_ENV, duckdb_memory_limit
from cdp.errors import AnalyticsError

DEFAULT_TZ: Final = "Asia/Tokyo"
"""Calendar periods (cohort months, weeks) are cut in the shop's time zone."""
PERIODS: Final = ("week", "month", "quarter")


@dataclass(frozen=True, slots=True)
class Report:
    """The result of one analytic: a table plus a few headline figures.

    ``columns`` name the values of each row of ``rows``; ``summary`` holds
    the figures that describe the whole table (customers counted, the log
    clock, tests run ...); ``params`` the options it was computed with.
    Money is ``Decimal``, times are aware ``datetime`` (UTC).
    """

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]
    summary: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)

    def records(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-ready apart from ``Decimal``/``datetime`` values."""
        return {
            "analytic": self.name,
            "params": self.params,
            "summary": self.summary,
            "columns": list(self.columns),
            "rows": self.records(),
        }


_ORDER_VERSIONS = """
    SELECT customer_id, message_id, timestamp, v1,
           coalesce(json_extract_string(payload, '$.properties.order_id'),
                    CASE WHEN v1 THEN json_extract_string(payload, '$.properties.orderId') END)
             AS order_id,
           CAST(coalesce(json_extract_string(payload, '$.properties.revenue'),
                         CASE WHEN v1 THEN json_extract_string(payload, '$.properties.total') END)
                AS DECIMAL(18, 4)) AS gross,
           coalesce(json_extract_string(payload, '$.properties.currency'), 'JPY') AS currency
    FROM (SELECT customer_id, message_id, timestamp, payload,
                 coalesce(json_extract_string(payload, '$.schemaVersion'), '') = '1' AS v1
          FROM events
          WHERE event = 'Order Completed' AND type = 'track' AND customer_id IS NOT NULL)
"""
# What an order needs is read out of the payload once, per version, so the
# window that picks each order's latest version carries narrow rows, never the
# payloads (at a million customers they would not fit the server's memory).

ORDERS_SQL: Final = f"""
WITH latest AS (
    SELECT customer_id, order_id, message_id, v1, gross, currency,
           min(timestamp) OVER (PARTITION BY customer_id, order_id) AS placed_at,
           row_number() OVER (PARTITION BY customer_id, order_id
                              ORDER BY timestamp DESC, message_id DESC) AS version_rank
    FROM ({_ORDER_VERSIONS}) WHERE order_id IS NOT NULL
), refunds AS (
    SELECT customer_id, json_extract_string(payload, '$.properties.order_id') AS order_id,
           bool_or(json_extract_string(payload, '$.properties.total') IS NULL) AS whole,
           sum(CAST(json_extract_string(payload, '$.properties.total') AS DECIMAL(18, 4)))
             AS refunded
    FROM events
    WHERE event = 'Order Refunded' AND type = 'track' AND customer_id IS NOT NULL
    GROUP BY ALL
)
SELECT o.customer_id, o.order_id, o.placed_at, o.currency,
       o.gross - coalesce(r.refunded, 0) AS revenue, o.message_id, o.v1
FROM latest o
LEFT JOIN refunds r ON r.customer_id = o.customer_id AND r.order_id = o.order_id
WHERE o.version_rank = 1
  AND NOT coalesce(r.whole, false) AND (r.refunded IS NULL OR r.refunded < o.gross)
"""
"""Kept orders: ``customer_id, order_id, placed_at, currency, revenue`` (net,
DECIMAL(18,4)), the latest version's ``message_id`` (its event holds the content:
``ORDER_LINES_SQL`` reads the products there) and whether it is a v1 event."""

ORDER_LINES_SQL: Final = f"""
SELECT customer_id, order_id, placed_at,
       coalesce(json_extract_string(item, '$.product_id'),
                CASE WHEN v1 THEN json_extract_string(item, '$.id') END) AS product_id,
       coalesce(CAST(json_extract_string(item, '$.quantity') AS INTEGER), 1) AS quantity
FROM (SELECT o.customer_id, o.order_id, o.placed_at, o.v1,
             unnest(json_extract(e.payload, '$.properties.products[*]')) AS item
      FROM ({ORDERS_SQL}) o
      JOIN events e ON e.message_id = o.message_id AND e.customer_id = o.customer_id
       AND e.event = 'Order Completed' AND e.type = 'track')
"""
"""One row per product line of a kept order: ``customer_id, order_id, placed_at,
product_id, quantity``."""


def check_period(period: str) -> str:
    """``period`` if it is one of ``PERIODS`` (it is pasted into SQL, so only those)."""
    if period not in PERIODS:
        raise AnalyticsError(f"period {period!r} is not supported; use one of {', '.join(PERIODS)}")
    return period


def check_positive(name: str, value: float, *, zero: bool = False) -> None:
    """``AnalyticsError`` naming the option when ``value`` is negative (or zero)."""
    if value < 0 or (value == 0 and not zero):
        bound = "zero or more" if zero else "more than zero"
        raise AnalyticsError(f"{name} must be {bound}, not {value}")


def check_tz(con: duckdb.DuckDBPyConnection, tz: str) -> str:
    """``tz`` if DuckDB knows the time zone, else ``AnalyticsError``."""
    try:
        con.execute("SELECT timezone($tz, TIMESTAMPTZ '2000-01-01 00:00:00+00')", {"tz": tz})
    except duckdb.Error:
        raise AnalyticsError(
            f"unknown time zone {tz!r}; use an IANA name like Asia/Tokyo"
        ) from None
    return tz


def fetch(
    con: duckdb.DuckDBPyConnection, analytic: str, sql: str, params: dict[str, Any] | None = None
) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
    """Run one query; columns and rows, or ``AnalyticsError`` naming the analytic."""
    try:
        cursor = con.execute(sql, params or {})
        rows = cursor.fetchall()
    except duckdb.OutOfMemoryException:
        raise AnalyticsError(
            f"{analytic} needs more memory than DuckDB may use here "
            f"({_memory_limit(con)}): narrow the options, or raise "
            f"{MEMORY_LIMIT_ENV} (docs/operations.md)"
        ) from None
    except duckdb.Error as error:
        raise AnalyticsError(f"{analytic} failed: {str(error).strip()}") from None
    return tuple(d[0] for d in cursor.description or []), rows


def _memory_limit(con: duckdb.DuckDBPyConnection) -> str:
    """The connection's DuckDB memory limit as DuckDB words it (``953.6 MiB``)."""
    try:
        row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    except duckdb.Error:
        row = None
    return str(row[0]) if row else duckdb_memory_limit()


def log_clock(con: duckdb.DuckDBPyConnection) -> datetime | None:
    """The latest event time in the log (``log_clock.as_of``); ``None`` for an empty log."""
    row = con.execute("SELECT as_of FROM log_clock").fetchone()
    return None if row is None else row[0]


def ratio(part: float, whole: float, digits: int = 4) -> float | None:
    """``part / whole`` rounded, ``None`` when ``whole`` is zero."""
    return None if not whole else round(part / whole, digits)
