"""Segments: named, parameterised SQL over the ``profiles`` and ``facts`` views.

``facts`` holds one narrow row per named event (name, time, customer, order
and product columns extracted once from the log: ``cdp.adapters.duckdb.facts``),
so the built-ins over orders and emails parse no JSON per query.

A segment's query returns one column, ``customer_id``. Parameters are bound
by DuckDB (``$name``), never pasted into SQL. Times are relative to the log
clock (``log_clock.as_of``, the latest event time) so a segment over the same
log always gives the same members. The built-ins cover MISSION items 3–7.
The segment language (``cdp.services.segment_lang``: YAML/JSON rules, sequences, raw
SQL, saved segments, membership history) builds on this module; its
``SegmentCatalog`` serves built-ins and saved segments alike, and
docs/segments/examples restates each built-in in the language (a test checks
they select the same customers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import duckdb

from cdp.config import SEQUENCE_PRODUCT_A, SEQUENCE_PRODUCT_B
from cdp.errors import SegmentError


@dataclass(frozen=True, slots=True)
class Segment:
    """A named audience definition."""

    name: str
    description: str
    sql: str
    params: Mapping[str, int | str] = field(default_factory=dict)
    purpose: str = ""


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """Who is in a segment now."""

    name: str
    count: int
    members: list[str]
    params: dict[str, str | bool | int | float]


_ORDERS = """SELECT customer_id, timestamp, product_ids AS products
             FROM facts WHERE event = 'Order Completed' AND customer_id IS NOT NULL"""

BUILTIN: dict[str, Segment] = {
    s.name: s
    for s in (
        Segment(
            "hot_leads",
            "Known contacts who are not customers yet and whose decayed lead score is at or "
            "above the hot threshold: hand them to sales.",
            "SELECT customer_id FROM profiles WHERE hot_now "
            "ORDER BY lead_score_now DESC, customer_id",
            purpose="sales hand-over (MISSION 5)",
        ),
        Segment(
            "lapsed_repeaters",
            "Repeat buyers (2+ orders) with no order for $lapsed_days days: re-engage them.",
            "SELECT customer_id FROM profiles WHERE orders_count >= 2 "
            "AND days_since_last_order >= $lapsed_days ORDER BY revenue DESC, customer_id",
            {"lapsed_days": 90},
            purpose="win-back campaign (MISSION 7)",
        ),
        Segment(
            "frequent_buyers",
            "Customers with $min_orders+ distinct orders in the last $window_days days: "
            "exclude them from discount promotions.",
            f"""SELECT o.customer_id FROM ({_ORDERS}) o, log_clock k
                WHERE o.timestamp >= k.as_of - to_days(CAST($window_days AS INTEGER))
                GROUP BY o.customer_id HAVING count(*) >= $min_orders
                ORDER BY o.customer_id""",
            {"window_days": 180, "min_orders": 4},
            purpose="promotion suppression (MISSION 7)",
        ),
        Segment(
            "a_buyers_without_b",
            "Bought $product_a $min_days–$max_days days ago and not $product_b since: "
            "offer them $product_b now.",
            # One pass over the orders: each customer's last A and last B.
            f"""WITH o AS (SELECT customer_id,
                                  max(timestamp) FILTER (WHERE list_contains(products, $product_a))
                                      AS a_at,
                                  max(timestamp) FILTER (WHERE list_contains(products, $product_b))
                                      AS b_at
                           FROM ({_ORDERS}) GROUP BY 1)
                SELECT o.customer_id FROM o CROSS JOIN log_clock k
                WHERE o.a_at BETWEEN k.as_of - to_days(CAST($max_days AS INTEGER))
                                 AND k.as_of - to_days(CAST($min_days AS INTEGER))
                  AND (o.b_at IS NULL OR o.b_at < o.a_at)
                ORDER BY o.customer_id""",
            {
                "product_a": SEQUENCE_PRODUCT_A,
                "product_b": SEQUENCE_PRODUCT_B,
                "min_days": 30,
                "max_days": 120,
            },
            purpose="sequence campaign (MISSION 6)",
        ),
        Segment(
            "engaged_never_bought",
            "Opened or clicked an email in the last $days days but never ordered.",
            """SELECT DISTINCT e.customer_id FROM facts e, log_clock k
               JOIN profiles p ON p.customer_id = e.customer_id
               WHERE e.event IN ('Email Opened', 'Email Link Clicked')
                 AND e.timestamp >= k.as_of - to_days(CAST($days AS INTEGER))
                 AND p.orders_count = 0
               ORDER BY e.customer_id""",
            {"days": 30},
            purpose="first-purchase nudge (MISSION 4)",
        ),
        Segment(
            "new_customers",
            "First order in the last $days days: welcome series.",
            "SELECT p.customer_id FROM profiles p, log_clock k "
            "WHERE p.first_order_at >= k.as_of - to_days(CAST($days AS INTEGER)) "
            "ORDER BY p.first_order_at DESC, p.customer_id",
            {"days": 30},
            purpose="onboarding (MISSION 4)",
        ),
    )
}


def get(name: str) -> Segment:
    """A built-in segment by name; ``SegmentError`` listing the names if unknown."""
    try:
        return BUILTIN[name]
    except KeyError:
        raise SegmentError(
            f"no segment named {name!r}; known: {', '.join(sorted(BUILTIN))}"
        ) from None


def day_count_minimum(name: str) -> int | None:
    """The least value of a day-count parameter, or ``None`` if ``name`` is not one.

    A parameter named ``days`` or ``*_days`` is a number of days. A window
    (``days``, ``lapsed_days``, ``window_days``, ``within_days``...) is at least
    1: a window of 0 days selects no one (or, as a lapse, everyone). A lower
    bound (``min_days``, ``min_*_days``) may be 0, meaning "from today".
    """
    if name != "days" and not name.endswith("_days"):
        return None
    return 0 if name.startswith("min_") else 1


def check_day_params(segment: str, params: Mapping[str, object]) -> None:
    """``SegmentError`` naming the parameter when a day count is not a whole
    number at or above its minimum (see ``day_count_minimum``), or when
    ``max_days`` is below ``min_days``."""
    for name, value in params.items():
        minimum = day_count_minimum(name)
        if minimum is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise SegmentError(
                f"segment {segment!r}: parameter {name!r} is a number of days and must be "
                f"a whole number, not {value!r}"
            )
        if value < minimum:
            raise SegmentError(
                f"segment {segment!r}: parameter {name!r} is a number of days and must be "
                f"at least {minimum}, not {value}"
            )
    low, high = params.get("min_days"), params.get("max_days")
    if isinstance(low, int) and isinstance(high, int) and high < low:
        raise SegmentError(
            f"segment {segment!r}: parameter 'max_days' ({high}) is below 'min_days' ({low})"
        )


def bind(segment: Segment, overrides: Mapping[str, str] | None = None) -> dict[str, int | str]:
    """The segment's parameters with ``overrides`` applied (typed like the defaults);
    day counts are checked (``check_day_params``)."""
    params: dict[str, int | str] = dict(segment.params)
    for name, text in (overrides or {}).items():
        if name not in params:
            known = ", ".join(sorted(params)) or "none"
            raise SegmentError(f"segment {segment.name!r} has no parameter {name!r} (has: {known})")
        if isinstance(params[name], int):
            try:
                params[name] = int(text)
            except ValueError:
                raise SegmentError(
                    f"segment {segment.name!r}: parameter {name!r} must be a whole number, "
                    f"not {text!r}"
                ) from None
        else:
            params[name] = text
    check_day_params(segment.name, params)
    return params


def run(
    con: duckdb.DuckDBPyConnection, name: str, overrides: Mapping[str, str] | None = None
) -> SegmentResult:
    """Evaluate a segment; members in the segment's own order (every built-in orders
    by a unique key last, so the same data always lists members the same way)."""
    segment = get(name)
    params = bind(segment, overrides)
    try:
        rows = con.execute(segment.sql, params).fetchall()
    except duckdb.Error as error:
        raise SegmentError(f"segment {name!r} failed: {error}") from None
    members = [str(r[0]) for r in rows]
    return SegmentResult(name, len(members), members, dict(params))


def describe(segment: Segment, params: Mapping[str, Any] | None = None) -> str:
    """The description with parameters filled in, for people."""
    text = segment.description
    for key, value in (params or segment.params).items():
        text = text.replace(f"${key}", str(value))
    return text
