"""Segments at scale: the segment language against hand-written SQL, same data, same run.

Runs on the large data directory of ``bench.large_data`` (~10.75M events,
1M customers; built once and cached). For each built-in segment restated in
the segment language (``docs/segments/examples``), and for the sequence
segments, it times the compiled query and the equivalent hand-written SQL
(the built-ins of ``cdp/services/segments.py``, or SQL written here), checks both give
the same members, and prints the best of ``--repeat`` runs and the ratio.
Targets: each built-in under 1 s, a sequence segment under 3 s, ratio ≤ 1.2.

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
from cdp.services.segment_lang.parse import parse

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "segments" / "examples"

_ORDERS = """SELECT customer_id, timestamp,
                    json_extract_string(payload, '$.properties.products[*].product_id') AS products
             FROM events WHERE event = 'Order Completed' AND customer_id IS NOT NULL"""

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
    best, members = float("inf"), set[str]()
    for _ in range(repeat):
        started = time.perf_counter()
        rows = con.execute(sql, params).fetchall()
        best = min(best, time.perf_counter() - started)
        members = {str(r[0]) for r in rows}
    return best, members


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", nargs="?", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    data = build(args.dir)
    con = Engine.open_read_only(Settings(data))
    try:
        events, customers = con.execute(
            "SELECT (SELECT count(*) FROM event_log), (SELECT count(*) FROM customers)"
        ).fetchone() or (0, 0)
        print(f"segments at scale ({machine()}): {events:,} events, {customers:,} customers")
        print(
            f"{'segment':<22} {'language':>10} {'hand SQL':>10} {'ratio':>7} {'members':>10}  target"
        )
        for path in sorted(EXAMPLES.glob("*.yaml")):
            definition = parse(path.read_text(encoding="utf-8"))
            entry = definition_entry(definition, path)
            compiled = entry.compile()
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
            language_s, language_members = best_of(con, compiled.sql, compiled.values, args.repeat)
            hand_s, hand_members = best_of(con, hand[0], _used(hand[0], hand[1]), args.repeat)
            same = "" if language_members == hand_members else "  (MEMBERS DIFFER)"
            target = 3.0 if "sequence" in path.read_text(encoding="utf-8") else 1.0
            verdict = "met" if language_s < target else "MISSED"
            print(
                f"{definition.name:<22} {language_s:>9.3f}s {hand_s:>9.3f}s "
                f"{language_s / hand_s:>7.2f} {len(language_members):>10,}  < {target:.0f} s {verdict}{same}"
            )
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
