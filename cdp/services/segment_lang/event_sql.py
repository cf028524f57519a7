"""Event and sequence conditions of a segment, compiled to CTEs over ``facts`` or ``events``.

- an ``event`` condition is one CTE: a single pass over the events filtered on
  the event name first, grouped by customer; the leaf is a semi-join
  (``p.customer_id IN (…)``), or an anti-join when zero events satisfy the
  count (``count lt 3`` includes customers with none);
- a ``sequence`` is two such CTEs joined with an ``ASOF LEFT JOIN`` that finds,
  for each A event, the customer's next B event after it: one sort-merge pass,
  no correlated subquery;
- the pass reads the ``facts`` view (narrow rows extracted once from the log,
  ``cdp.adapters.duckdb.facts``) when every ``where`` filter of the condition
  names a path it holds (``products[*].product_id``, ``revenue``…), else the
  ``events`` view, whose filters read property paths from the raw payload.
  Both give the same rows: a fact column is the very ``json_extract_string``
  of its path, and both views attribute events to customers the same way
  (a property test compiles both ways and compares members).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from cdp.adapters.duckdb.facts import column as fact_column
from cdp.services.segment_lang.binding import SQL_OP, ValueBinder
from cdp.services.segment_lang.fields import Kind
from cdp.services.segment_lang.model import (
    CountFilter,
    EventCondition,
    EventSpec,
    PropertyFilter,
    Scalar,
    SequenceCondition,
)

_PY_OP = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
}
_SEGMENT = r"[A-Za-z_][A-Za-z0-9_]*(?:\[(?:\*|\d+)\])?"
_PROPERTY = re.compile(rf"^{_SEGMENT}(?:\.{_SEGMENT})*$")
_ROOTS = ("properties", "context", "traits")


def _json_path(property_path: str) -> str:
    """The payload JSON path of a filter's property (``properties.`` is the default root)."""
    root, _, rest = property_path.partition(".")
    if root.split("[")[0] not in _ROOTS or not rest:
        root, rest = "properties", property_path
    return f"$.{root}.{rest}"


class EventSql(ValueBinder):
    """Compiles event and sequence conditions; ``ctes`` collects the CTEs they need.

    ``use_facts=False`` reads every condition from ``events`` (the JSON-based
    SQL; the tests compare it with the facts-based one)."""

    def __init__(self, params: Mapping[str, Scalar], segment: str, use_facts: bool = True) -> None:
        super().__init__(params, segment)
        self.ctes: list[str] = []
        self.use_facts = use_facts

    def source(self, *specs: EventSpec) -> str:
        """``facts`` when it holds every property the specs filter on, else ``events``."""
        paths = [_json_path(f.property) for spec in specs for f in spec.where]
        if self.use_facts and all(fact_column(p) is not None for p in paths):
            return "facts"
        return "events"

    def events_where(self, spec: EventSpec, path: str, source: str) -> tuple[list[str], str]:
        """The bound event names and the whole predicate on a row of ``source``."""
        names = [spec.name] if isinstance(spec.name, str) else spec.name
        if not names:
            raise self.fail(f"{path}.name", "name at least one event")
        bound = []
        for i, name in enumerate(names):
            where = f"{path}.name" if isinstance(spec.name, str) else f"{path}.name[{i}]"
            value = self.resolve_scalar(name, where)
            if not isinstance(value, str) or not value:
                raise self.fail(where, "an event name is non-empty text")
            bound.append(self.bind(value))
        parts = [f"event IN ({', '.join(bound)})", "customer_id IS NOT NULL"]
        if spec.within_days is not None:
            window = self.days(spec.within_days, f"{path}.within_days", minimum=1)
            parts.append(f"timestamp >= (SELECT as_of FROM k) - {window}")
        parts.extend(
            self.property(f, f"{path}.where[{i}]", source) for i, f in enumerate(spec.where)
        )
        return bound, " AND ".join(parts)

    def property(self, condition: PropertyFilter, path: str, source: str) -> str:
        if not _PROPERTY.match(condition.property) or condition.property.count("[*]") > 1:
            raise self.fail(
                f"{path}.property",
                f"{condition.property!r} is not a property path like products[*].product_id",
            )
        json_path = _json_path(condition.property)
        listed = "[*]" in json_path
        value = self.resolve(condition.value, f"{path}.value")
        sample = value[0] if isinstance(value, list) and value else value
        kind: Kind
        if listed:
            kind = "list"
        elif isinstance(sample, bool):
            kind = "bool"
        elif isinstance(sample, int | float):
            kind = "number"
        else:
            kind = "text"
        # On ``events``, straight from the raw payload: one JSON parse instead of
        # two (the view's ``properties`` column is itself extracted from it). The
        # path is a literal, not a bound value: DuckDB then parses it once per
        # query instead of once per row. Safe: it matched _PROPERTY (letters,
        # digits, '_', '.', '[n]' and '[*]' only), so it holds no quote.
        column = fact_column(json_path) if source == "facts" else None
        extracted = column or f"json_extract_string(payload, '{json_path}')"
        if kind == "number":
            extracted = f"TRY_CAST({extracted} AS DOUBLE)"
        elif kind == "bool":
            extracted = f"TRY_CAST({extracted} AS BOOLEAN)"
        return self.compare(extracted, kind, condition.op, value, path)

    def count(self, count: CountFilter, path: str) -> tuple[str, bool]:
        """The predicate on ``n`` and whether a customer with no events satisfies it."""
        raw: list[int | str] = count.value if isinstance(count.value, list) else [count.value]
        numbers = []
        for i, item in enumerate(raw):
            where = f"{path}.value[{i}]" if isinstance(count.value, list) else f"{path}.value"
            value = self.resolve_scalar(item, where)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise self.fail(where, f"must be a whole number >= 0, not {value!r}")
            numbers.append(value)
        if count.op == "between":
            if len(numbers) != 2:
                raise self.fail(f"{path}.value", "between takes a list of exactly 2 numbers")
            low, high = numbers
            return f"n BETWEEN {self.bind(low)} AND {self.bind(high)}", low <= 0 <= high
        if len(numbers) != 1 or isinstance(count.value, list):
            raise self.fail(f"{path}.value", f"{count.op} takes one number")
        return f"n {SQL_OP[count.op]} {self.bind(numbers[0])}", _PY_OP[count.op](0, numbers[0])

    def event(self, condition: EventCondition, path: str) -> str:
        source = self.source(condition)
        _, where = self.events_where(condition, path, source)
        predicate, zero_matches = self.count(condition.count, f"{path}.count")
        name = f"e{len(self.ctes)}"
        self.ctes.append(
            f"{name} AS (SELECT customer_id, count(*) AS n FROM {source} WHERE {where} "
            "GROUP BY customer_id)"
        )
        if zero_matches:  # customers without any matching event are members too
            return (
                f"(p.customer_id NOT IN (SELECT customer_id FROM {name} WHERE NOT ({predicate})))"
            )
        return f"(p.customer_id IN (SELECT customer_id FROM {name} WHERE {predicate}))"

    def sequence(self, condition: SequenceCondition, path: str) -> str:
        key, follower = (
            ("then", condition.then)
            if condition.then is not None
            else ("not_then", condition.not_then)
        )
        assert follower is not None
        source = self.source(condition.first, follower)
        first_names, first = self.events_where(condition.first, f"{path}.first", source)
        second_names, second = self.events_where(follower, f"{path}.{key}", source)
        name = f"s{len(self.ctes)}"
        # One pass over the events of both kinds, then A and B as subsets of it.
        names = ", ".join(dict.fromkeys(first_names + second_names))
        self.ctes.append(
            f"{name}e AS MATERIALIZED (SELECT customer_id, timestamp AS ts, "
            f"({first}) AS is_a, ({second}) AS is_b FROM {source} "
            f"WHERE event IN ({names}) AND customer_id IS NOT NULL "
            f"AND (({first}) OR ({second})))"
        )
        self.ctes.append(f"{name}a AS (SELECT customer_id, ts FROM {name}e WHERE is_a)")
        self.ctes.append(f"{name}b AS (SELECT customer_id, ts FROM {name}e WHERE is_b)")
        conditions = []
        if condition.min_days is not None:
            gap = self.days(condition.min_days, f"{path}.min_days", minimum=0)
            conditions.append(f"a.ts <= (SELECT as_of FROM k) - {gap}")
        within = None
        if condition.within_days is not None:
            window = self.days(condition.within_days, f"{path}.within_days", minimum=1)
            within = f"b.ts <= a.ts + {window}"
        if key == "then":
            conditions.append("b.ts IS NOT NULL" + (f" AND {within}" if within else ""))
        else:
            conditions.append(f"(b.ts IS NULL OR NOT ({within}))" if within else "b.ts IS NULL")
        self.ctes.append(
            f"{name} AS (SELECT DISTINCT a.customer_id FROM {name}a a "
            f"ASOF LEFT JOIN {name}b b ON a.customer_id = b.customer_id AND a.ts < b.ts "
            f"WHERE {' AND '.join(conditions)})"
        )
        return f"(p.customer_id IN (SELECT customer_id FROM {name}))"
