"""Shop activity over time: events per day and revenue per month.

- :func:`events_per_day`: every event of the log (page views, tracks,
  identifies...) per calendar day in ``tz``, for the ``days`` days ending on
  the log clock's day (``log_clock.as_of``, the latest event time, so a
  replayed or quiet shop still shows its last months); days without events
  count zero, events dated after the clock do not count. It reads the
  ``timestamp`` column of ``event_log`` with a range filter (DuckDB skips the
  row groups outside it), not the payloads.
- :func:`revenue_per_month`: the net revenue of kept orders (``ORDERS_SQL``:
  the orders the profile fold keeps, net of refunds) per calendar month of
  their placement in ``tz``, in one currency (the most used one unless
  given). Summed over every month it equals the sum of ``profiles.revenue``
  of the customers whose currency it is.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Final

import duckdb

from cdp.services.analytics._base import (
    DEFAULT_TZ,
    ORDERS_SQL,
    Report,
    check_positive,
    check_tz,
    fetch,
    log_clock,
)

EVENTS_PER_DAY_SQL: Final = """
SELECT (timezone($tz, timestamp))::DATE AS day, count(*) AS events
FROM event_log
WHERE timestamp >= $since AND timestamp <= $as_of
GROUP BY ALL
"""

REVENUE_PER_MONTH_SQL: Final = f"""
SELECT date_trunc('month', timezone($tz, placed_at))::DATE AS month,
       currency, count(*) AS orders, sum(revenue) AS revenue
FROM ({ORDERS_SQL})
GROUP BY ALL
"""


def _day_start(con: duckdb.DuckDBPyConnection, day: date, tz: str) -> datetime:
    """The instant ``day`` begins in ``tz``."""
    row = con.execute(
        "SELECT timezone($tz, $day::TIMESTAMP)", {"tz": tz, "day": day.isoformat()}
    ).fetchone()
    assert row is not None
    start: datetime = row[0]
    return start


def events_per_day(con: duckdb.DuckDBPyConnection, days: int = 90, tz: str = DEFAULT_TZ) -> Report:
    """Events per calendar day in ``tz`` over the ``days`` days ending on the log
    clock's day: rows ``(day, events)``, oldest first, every day present."""
    check_positive("days", days)
    check_tz(con, tz)
    as_of = log_clock(con)
    params = {"days": days, "tz": tz}
    if as_of is None:
        return Report("events_per_day", ("day", "events"), [], {"as_of": None}, params)
    row = con.execute("SELECT (timezone($tz, $t))::DATE", {"tz": tz, "t": as_of}).fetchone()
    assert row is not None
    last: date = row[0]
    first = last - timedelta(days=days - 1)
    _, rows = fetch(
        con,
        "events per day",
        EVENTS_PER_DAY_SQL,
        {"tz": tz, "since": _day_start(con, first, tz), "as_of": as_of},
    )
    counts = {day: int(n) for day, n in rows}
    out: list[tuple[date, int]] = [
        (first + timedelta(days=i), counts.get(first + timedelta(days=i), 0)) for i in range(days)
    ]
    summary = {"as_of": as_of, "events": sum(n for _, n in out)}
    return Report("events_per_day", ("day", "events"), list(out), summary, params)


def revenue_per_month(
    con: duckdb.DuckDBPyConnection, tz: str = DEFAULT_TZ, currency: str | None = None
) -> Report:
    """Net revenue of kept orders per calendar month in ``tz``: rows
    ``(month, orders, revenue)`` for every month from the first order's to the
    last one's (months without orders count zero), in ``currency`` (the one
    with the most orders when not given; the summary names it)."""
    check_tz(con, tz)
    _, rows = fetch(con, "revenue per month", REVENUE_PER_MONTH_SQL, {"tz": tz})
    per_currency: dict[str, int] = {}
    for _, cur, orders, _ in rows:
        per_currency[cur] = per_currency.get(cur, 0) + int(orders)
    chosen = currency or (max(per_currency, key=lambda c: (per_currency[c], c)) if rows else "JPY")
    mine = {
        month: (int(orders), Decimal(revenue))
        for month, cur, orders, revenue in rows
        if cur == chosen
    }
    out: list[tuple[date, int, Decimal]] = []
    if mine:
        month, end = min(mine), max(mine)
        while month <= end:
            orders, revenue = mine.get(month, (0, Decimal(0)))
            out.append((month, orders, revenue))
            month = (month.replace(day=28) + timedelta(days=4)).replace(day=1)
    summary = {
        "currency": chosen,
        "other_currencies": sorted(c for c in per_currency if c != chosen),
        "orders": sum(o for _, o, _ in out),
        "revenue": sum((r for _, _, r in out), Decimal(0)),
    }
    params: dict[str, object] = {"tz": tz, "currency": currency}
    return Report("revenue_per_month", ("month", "orders", "revenue"), out, summary, params)
