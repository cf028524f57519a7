"""Segments at scale: every built-in, the sequences, and the language against hand SQL.

Runs on the large data directory of ``bench.large_data`` (~10.75M events,
1M customers; built once and cached), or on any data directory built the same
way (``DIR/data``, with ``DIR/BUILT``). Two tables, best of ``--repeat`` runs:

1. every built-in segment of ``cdp/services/segments.py`` (over the ``facts``
   view), beside today's JSON-based SQL where it differed (``LEGACY_SQL``,
   the built-ins as they read ``events`` before the facts table), same run:
   target each under 1 s (a sequence under 2 s);
2. each example of ``docs/segments/examples`` that restates a built-in or has
   a hand-written equivalent here: the compiled language against that hand
   SQL (target ratio ≤ 1.2), and against the language compiled without the
   facts table (``use_facts=False``), same run. Members must agree.

``python -m bench.segments [DIR] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import duckdb

from bench.common import machine
from bench.large_data import build
from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services import segments as builtin_segments
from cdp.services.segment_lang.catalog import definition_entry
from cdp.services.segment_lang.compiler import compile_definition
from cdp.services.segment_lang.parse import parse

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "segments" / "examples"
SEQUENCES = frozenset({"a_buyers_without_b"})
BUILTIN_TARGET_S = 1.0
SEQUENCE_TARGET_S = 2.0

_LEGACY_ORDERS = """SELECT customer_id, timestamp,
                    json_extract_string(payload, '$.properties.products[*].product_id') AS products
             FROM events WHERE event = 'Order Completed' AND customer_id IS NOT NULL"""

#: The built-ins that read ``events`` as they were before the facts table (the
#: baseline of the speed-up; tests/integration/test_segment_facts.py checks
#: that they still select the same members as the built-ins).
LEGACY_SQL: dict[str, str] = {
    "frequent_buyers": f"""SELECT o.customer_id FROM ({_LEGACY_ORDERS}) o, log_clock k
                WHERE o.timestamp >= k.as_of - to_days(CAST($window_days AS INTEGER))
                GROUP BY o.customer_id HAVING count(*) >= $min_orders
                ORDER BY o.customer_id""",
    "a_buyers_without_b": f"""WITH a AS (SELECT customer_id, max(timestamp) AS a_at
                           FROM ({_LEGACY_ORDERS})
                           WHERE list_contains(products, $product_a) GROUP BY 1),
                     b AS (SELECT customer_id, max(timestamp) AS b_at FROM ({_LEGACY_ORDERS})
                           WHERE list_contains(products, $product_b) GROUP BY 1)
                SELECT a.customer_id FROM a CROSS JOIN log_clock k
                LEFT JOIN b ON b.customer_id = a.customer_id
                WHERE a.a_at BETWEEN k.as_of - to_days(CAST($max_days AS INTEGER))
                                 AND k.as_of - to_days(CAST($min_days AS INTEGER))
                  AND (b.b_at IS NULL OR b.b_at < a.a_at)
                ORDER BY a.customer_id""",
    "engaged_never_bought": """SELECT DISTINCT e.customer_id FROM events e, log_clock k
               JOIN profiles p ON p.customer_id = e.customer_id
               WHERE e.event IN ('Email Opened', 'Email Link Clicked')
                 AND e.timestamp >= k.as_of - to_days(CAST($days AS INTEGER))
                 AND p.orders_count = 0
               ORDER BY e.customer_id""",
}

_ORDERS = """SELECT customer_id, timestamp, product_ids AS products
             FROM facts WHERE event = 'Order Completed' AND customer_id IS NOT NULL"""

#: Hand-written equivalents of the sequence examples that have no built-in.
HAND_WRITTEN: dict[str, tuple[str, dict[str, Any]]] = {
    "a_then_b": (
        f"""WITH o AS ({_ORDERS}),
                a AS (SELECT customer_id, timestamp AS a_at FROM o
                      WHERE list_contains(products, $product_a)),
                b AS (SELECT customer_id, timestamp AS b_at FROM o
                      WHERE list_contains(products, $product_b))
            SELECT DISTINCT a.customer_id FROM a JOIN b USING (customer_id)
            WHERE b.b_at > a.a_at AND b.b_at <= a.a_at + to_days(CAST($days AS INTEGER))""",
        {"product_a": "TEA-STARTER", "product_b": "MATCHA-BULK-500"},
    ),
}


def best_of(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any], repeat: int
) -> tuple[float, set[str]]:
    """The fastest of ``repeat`` runs, in seconds, and the members."""
    best, members = float("inf"), set[str]()
    for _ in range(repeat):
        started = time.perf_counter()
        rows = con.execute(sql, params).fetchall()
        best = min(best, time.perf_counter() - started)
        members = {str(r[0]) for r in rows}
    return best, members


def _verdict(seconds: float, target: float) -> str:
    return f"< {target:.0f} s {'met' if seconds < target else 'MISSED'}"


def builtins_table(con: duckdb.DuckDBPyConnection, repeat: int) -> None:
    """Every built-in, and today's JSON-based SQL beside the ones that changed."""
    print(
        f"{'built-in':<22} {'facts':>10} {'JSON SQL':>10} {'speed-up':>9} {'members':>10}  target"
    )
    for name, segment in builtin_segments.BUILTIN.items():
        params = builtin_segments.bind(segment)
        seconds, members = best_of(con, segment.sql, params, repeat)
        target = SEQUENCE_TARGET_S if name in SEQUENCES else BUILTIN_TARGET_S
        old, same = f"{'-':>10} {'-':>9}", ""
        if name in LEGACY_SQL:
            legacy = LEGACY_SQL[name]
            legacy_s, legacy_members = best_of(con, legacy, _used(legacy, params), repeat)
            old = f"{legacy_s:>9.3f}s {legacy_s / seconds:>8.1f}x"
            same = "" if legacy_members == members else "  (MEMBERS DIFFER)"
        print(
            f"{name:<22} {seconds:>9.3f}s {old} {len(members):>10,}  "
            f"{_verdict(seconds, target)}{same}"
        )


def language_table(con: duckdb.DuckDBPyConnection, repeat: int) -> None:
    """Each example with hand SQL: language / hand SQL, and language without facts."""
    print(
        f"{'language example':<22} {'language':>10} {'hand SQL':>10} {'ratio':>7} "
        f"{'no facts':>10} {'speed-up':>9} {'members':>10}  target"
    )
    for path in sorted(EXAMPLES.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        definition = parse(text)
        compiled = definition_entry(definition, path).compile()
        hand: tuple[str, dict[str, Any]] | None = None
        restates = _restated_builtin(path)
        if restates is not None:
            builtin = builtin_segments.BUILTIN[restates]
            hand = (builtin.sql, builtin_segments.bind(builtin))
        elif definition.name in HAND_WRITTEN:
            sql, extra = HAND_WRITTEN[definition.name]
            hand = (sql, {**compiled.params, **extra})
        if hand is None:
            continue
        json_based = compile_definition(definition, use_facts=False)
        language_s, language_members = best_of(con, compiled.sql, compiled.values, repeat)
        hand_s, hand_members = best_of(con, hand[0], _used(hand[0], hand[1]), repeat)
        old_s, old_members = best_of(con, json_based.sql, json_based.values, repeat)
        agree = language_members == hand_members == old_members
        target = SEQUENCE_TARGET_S if "sequence" in text else BUILTIN_TARGET_S
        print(
            f"{definition.name:<22} {language_s:>9.3f}s {hand_s:>9.3f}s "
            f"{language_s / hand_s:>7.2f} {old_s:>9.3f}s {old_s / language_s:>8.1f}x "
            f"{len(language_members):>10,}  {_verdict(language_s, target)}, ratio ≤ 1.2 "
            f"{'met' if language_s / hand_s <= 1.2 else 'MISSED'}"
            f"{'' if agree else '  (MEMBERS DIFFER)'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = build(args.dir)
    # A directory built before the facts table gets it here, as on any open for
    # writing (the one-time fill; later opens find it caught up at once).
    started = time.perf_counter()
    Engine.open(Settings(data)).close()
    print(f"opened for writing (facts caught up) in {time.perf_counter() - started:.1f} s")
    con = Engine.open_read_only(Settings(data))
    try:
        events, customers, facts = con.execute(
            "SELECT (SELECT count(*) FROM event_log), (SELECT count(*) FROM customers), "
            "(SELECT count(*) FROM event_facts)"
        ).fetchone() or (0, 0, 0)
        print(
            f"segments at scale ({machine()}): {events:,} events, {customers:,} customers, "
            f"{facts:,} event facts"
        )
        builtins_table(con, args.repeat)
        language_table(con, args.repeat)
    finally:
        con.close()


def _restated_builtin(path: Path) -> str | None:
    """The built-in a language example restates (its first comment line names it)."""
    first = path.read_text(encoding="utf-8").splitlines()[0]
    for name in builtin_segments.BUILTIN:
        if f"built-in {name}" in first:
            return name
    return None


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """Only the parameters the statement names (DuckDB refuses unused ones)."""
    return {k: v for k, v in params.items() if f"${k}" in sql}


if __name__ == "__main__":
    main()
