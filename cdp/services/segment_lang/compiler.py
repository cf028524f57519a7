"""Compile a segment definition to ONE parameterised DuckDB statement.

The statement returns ``customer_id`` (sorted). Every value is bound as
``$p0``, ``$p1``… and field names come from ``fields.FIELDS`` only. The shape:

- each leaf is a boolean expression over the profile row ``p``, wrapped in
  ``coalesce(…, false)`` so that ``not`` is an exact complement (a customer
  with no region is *not* ``region eq 東京都`` and *is* ``not region eq 東京都``);
- an ``event`` condition is one CTE: a single pass over ``events`` filtered on
  the event name first, grouped by customer; the leaf is a semi-join
  (``p.customer_id IN (…)``), or an anti-join when zero events satisfy the
  count (``count lt 3`` includes customers with none);
- a ``sequence`` is two such CTEs joined with an ``ASOF LEFT JOIN`` that finds,
  for each A event, the customer's next B event after it: one sort-merge pass,
  no correlated subquery;
- times are relative to the log clock (``log_clock.as_of``), read once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from cdp.errors import SegmentError
from cdp.services.segment_lang import rawsql
from cdp.services.segment_lang.errors import SegmentRuleError
from cdp.services.segment_lang.fields import FIELDS, RFM_CTE, Kind
from cdp.services.segment_lang.model import (
    AllRule,
    AnyRule,
    CountFilter,
    EventCondition,
    EventRule,
    EventSpec,
    FieldCondition,
    MetricRule,
    NotRule,
    PropertyFilter,
    Rule,
    Scalar,
    SegmentDefinition,
    SequenceCondition,
    SequenceRule,
    TraitRule,
    Value,
)
from cdp.services.segments import check_day_params

_OPS: dict[Kind, set[str]] = {
    "text": {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "contains"},
    "number": {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between"},
    "bool": {"eq", "ne"},
    "date": {"eq", "ne", "gt", "gte", "lt", "lte", "between"},
    "time": {"eq", "ne", "gt", "gte", "lt", "lte", "between"},
    "list": {"contains", "in", "not_in"},
}
_SQL_OP = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
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


@dataclass(frozen=True, slots=True)
class CompiledSegment:
    """The statement, the values bound to it, and the segment's resolved parameters."""

    sql: str
    values: dict[str, Any]
    params: dict[str, Scalar] = field(default_factory=dict)


def resolve_params(
    declared: Mapping[str, Scalar], overrides: Mapping[str, str] | None, segment: str
) -> dict[str, Scalar]:
    """Declared defaults with text overrides applied, typed like each default;
    day-count parameters (``days``, ``*_days``) are checked like the built-ins'."""
    out: dict[str, Scalar] = dict(declared)
    for name, text in (overrides or {}).items():
        if name not in out:
            known = ", ".join(sorted(out)) or "none"
            raise SegmentError(f"segment {segment!r} has no parameter {name!r} (has: {known})")
        default = out[name]
        try:
            if isinstance(default, bool):
                if text.lower() not in {"true", "false"}:
                    raise ValueError(text)
                out[name] = text.lower() == "true"
            elif isinstance(default, int):
                out[name] = int(text)
            elif isinstance(default, float):
                out[name] = float(text)
            else:
                out[name] = text
        except ValueError:
            wanted = {bool: "true or false", int: "whole number", float: "number"}
            raise SegmentError(
                f"segment {segment!r}: parameter {name!r} must be a "
                f"{wanted.get(type(default), 'text')}, not {text!r}"
            ) from None
    check_day_params(segment, out)
    return out


def compile_definition(
    definition: SegmentDefinition, overrides: Mapping[str, str] | None = None
) -> CompiledSegment:
    """The SQL and bound values of a definition; ``SegmentRuleError`` names the bad rule."""
    params = resolve_params(definition.params, overrides, definition.name)
    if definition.sql is not None:
        sql, values = rawsql.prepare(definition.sql, params, definition.name)
        return CompiledSegment(sql, values, params)
    assert definition.rules is not None
    compiler = _Compiler(params, definition.name)
    where = compiler.rule(definition.rules, "rules")
    ctes = ["k AS MATERIALIZED (SELECT as_of FROM log_clock)"]
    if compiler.rfm:
        ctes.append(RFM_CTE)
    ctes.extend(compiler.ctes)
    rfm_join = " LEFT JOIN rfm r ON r.customer_id = p.customer_id" if compiler.rfm else ""
    sql = (
        "WITH " + ",\n".join(ctes) + "\n"
        f"SELECT p.customer_id FROM profiles p CROSS JOIN k{rfm_join}\n"
        f"WHERE {where}\nORDER BY p.customer_id"
    )
    return CompiledSegment(sql, compiler.values, params)


class _Compiler:
    def __init__(self, params: Mapping[str, Scalar], segment: str) -> None:
        self.params = params
        self.segment = segment
        self.values: dict[str, Any] = {}
        self.ctes: list[str] = []
        self.rfm = False

    # -- helpers --------------------------------------------------------------------

    def fail(self, path: str, message: str) -> SegmentRuleError:
        return SegmentRuleError([(path, message)], self.segment)

    def bind(self, value: Any) -> str:
        key = f"p{len(self.values)}"
        self.values[key] = value
        return f"${key}"

    def resolve(self, value: Value, path: str) -> Value:
        if isinstance(value, list):
            return [self.resolve_scalar(v, f"{path}[{i}]") for i, v in enumerate(value)]
        return None if value is None else self.resolve_scalar(value, path)

    def resolve_scalar(self, value: Scalar, path: str) -> Scalar:
        if isinstance(value, str) and value.startswith("$"):
            if value.startswith("$$"):
                return value[1:]
            name = value[1:]
            if name not in self.params:
                known = ", ".join(f"${p}" for p in sorted(self.params)) or "none declared"
                raise self.fail(path, f"unknown parameter {value} ({known})")
            return self.params[name]
        return value

    def days(self, value: int | str, path: str, minimum: int) -> str:
        resolved = self.resolve_scalar(value, path)
        if not isinstance(resolved, int) or isinstance(resolved, bool):
            raise self.fail(path, f"must be a whole number of days, not {resolved!r}")
        if resolved < minimum:
            bound = "must be > 0" if minimum == 1 else f"must be >= {minimum}"
            origin = f" ({value} = {resolved})" if isinstance(value, str) else ""
            raise self.fail(path, f"{bound} days{origin}")
        return f"to_days(CAST({self.bind(resolved)} AS INTEGER))"

    # -- rules ----------------------------------------------------------------------

    def rule(self, node: Rule, path: str) -> str:
        match node:
            case AllRule():
                parts = [self.rule(r, f"{path}.all[{i}]") for i, r in enumerate(node.all)]
                return "(" + " AND ".join(parts) + ")"
            case AnyRule():
                parts = [self.rule(r, f"{path}.any[{i}]") for i, r in enumerate(node.any)]
                return "(" + " OR ".join(parts) + ")"
            case NotRule():
                return f"(NOT {self.rule(node.not_, f'{path}.not')})"
            case TraitRule():
                return self.field(node.trait, f"{path}.trait")
            case MetricRule():
                return self.field(node.metric, f"{path}.metric")
            case EventRule():
                return self.event(node.event, f"{path}.event")
            case SequenceRule():
                return self.sequence(node.sequence, f"{path}.sequence")
        raise AssertionError(node)  # pragma: no cover  (the union is closed)

    def field(self, condition: FieldCondition, path: str) -> str:
        known = FIELDS.get(condition.field)
        if known is None:
            close = difflib.get_close_matches(condition.field, FIELDS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else " (see docs/segments.md)"
            raise self.fail(f"{path}.field", f"unknown field {condition.field!r}{hint}")
        self.rfm = self.rfm or known.rfm
        value = self.resolve(condition.value, f"{path}.value")
        return self.compare(known.sql, known.kind, condition.op, value, path)

    def compare(self, column: str, kind: Kind, op: str, value: Value, path: str) -> str:
        """``coalesce(column op value, false)`` with the value checked for ``kind``."""
        if op in {"is_null", "is_not_null"}:
            if value is not None:
                raise self.fail(f"{path}.value", f"{op} takes no value")
            empty = f"coalesce(len({column}), 0) = 0" if kind == "list" else f"{column} IS NULL"
            return f"({empty})" if op == "is_null" else f"(NOT ({empty}))"
        if op not in _OPS[kind]:
            allowed = ", ".join(sorted(_OPS[kind] | {"is_null", "is_not_null"}))
            raise self.fail(f"{path}.op", f"{op} does not apply to a {kind} field (use {allowed})")
        if op in {"in", "not_in"}:
            items = self.values_list(value, kind, path, minimum=1)
        elif op == "between":
            items = self.values_list(value, kind, path, minimum=2, maximum=2)
        else:
            if isinstance(value, list) or value is None:
                raise self.fail(f"{path}.value", f"{op} takes one value")
            items = [self.check_value(value, kind, f"{path}.value")]
        bound = [self.cast(self.bind(v), kind) for v in items]
        if kind == "list":
            listed = "[" + ", ".join(bound) + "]"
            if op == "contains":
                return f"coalesce(list_contains({column}, {bound[0]}), false)"
            has_any = f"coalesce(list_has_any({column}, {listed}), false)"
            return has_any if op == "in" else f"(NOT {has_any})"
        if op == "contains":
            expr = f"contains({column}, {bound[0]})"
        elif op == "between":
            expr = f"{column} BETWEEN {bound[0]} AND {bound[1]}"
        elif op in {"in", "not_in"}:
            negate = "NOT " if op == "not_in" else ""
            expr = f"{column} {negate}IN ({', '.join(bound)})"
        else:
            expr = f"{column} {_SQL_OP[op]} {bound[0]}"
        return f"coalesce({expr}, false)"

    def values_list(
        self, value: Value, kind: Kind, path: str, minimum: int, maximum: int | None = None
    ) -> list[Scalar]:
        size = f"exactly {minimum}" if maximum == minimum else f"at least {minimum}"
        if (
            not isinstance(value, list)
            or len(value) < minimum
            or (maximum is not None and len(value) > maximum)
        ):
            raise self.fail(f"{path}.value", f"must be a list of {size} values")
        return [self.check_value(v, kind, f"{path}.value[{i}]") for i, v in enumerate(value)]

    def check_value(self, value: Scalar, kind: Kind, path: str) -> Scalar:
        if kind in {"text", "list"} and isinstance(value, str):
            return value
        if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
            return value
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "date" and isinstance(value, str):
            try:
                date.fromisoformat(value)
            except ValueError:
                raise self.fail(path, f"{value!r} is not an ISO 8601 date") from None
            return value
        if kind == "time" and isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                raise self.fail(path, f"{value!r} is not an ISO 8601 time") from None
            if moment.tzinfo is None:  # else the answer would depend on the machine's zone
                raise self.fail(path, f"{value!r} needs a time zone (Z or +09:00)")
            return value
        wanted = {"list": "text", "time": "ISO 8601 time", "date": "ISO 8601 date"}.get(kind, kind)
        raise self.fail(path, f"must be a {wanted} value, not {value!r}")

    @staticmethod
    def cast(placeholder: str, kind: Kind) -> str:
        if kind == "date":
            return f"CAST({placeholder} AS DATE)"
        if kind == "time":
            return f"CAST({placeholder} AS TIMESTAMPTZ)"
        if kind == "number":
            return f"CAST({placeholder} AS DOUBLE)"
        return placeholder

    # -- events ---------------------------------------------------------------------

    def events_where(self, spec: EventSpec, path: str) -> tuple[list[str], str]:
        """The bound event names and the whole predicate on an ``events`` row."""
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
        parts.extend(self.property(f, f"{path}.where[{i}]") for i, f in enumerate(spec.where))
        return bound, " AND ".join(parts)

    def property(self, condition: PropertyFilter, path: str) -> str:
        if not _PROPERTY.match(condition.property) or condition.property.count("[*]") > 1:
            raise self.fail(
                f"{path}.property",
                f"{condition.property!r} is not a property path like products[*].product_id",
            )
        root, _, rest = condition.property.partition(".")
        if root.split("[")[0] not in _ROOTS or not rest:
            root, rest = "properties", condition.property
        # Straight from the raw payload: one JSON parse instead of two (the view's
        # ``properties`` column is itself extracted from ``payload``).
        json_path = f"$.{root}.{rest}"
        listed = "[*]" in rest
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
        # The path is a literal, not a bound value: DuckDB then parses it once per
        # query instead of once per row. Safe: it matched _PROPERTY (letters,
        # digits, '_', '.', '[n]' and '[*]' only), so it holds no quote.
        extracted = f"json_extract_string(payload, '{json_path}')"
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
        return f"n {_SQL_OP[count.op]} {self.bind(numbers[0])}", _PY_OP[count.op](0, numbers[0])

    def event(self, condition: EventCondition, path: str) -> str:
        _, where = self.events_where(condition, path)
        predicate, zero_matches = self.count(condition.count, f"{path}.count")
        name = f"e{len(self.ctes)}"
        self.ctes.append(
            f"{name} AS (SELECT customer_id, count(*) AS n FROM events WHERE {where} "
            "GROUP BY customer_id)"
        )
        if zero_matches:  # customers without any matching event are members too
            return (
                f"(p.customer_id NOT IN (SELECT customer_id FROM {name} WHERE NOT ({predicate})))"
            )
        return f"(p.customer_id IN (SELECT customer_id FROM {name} WHERE {predicate}))"

    def sequence(self, condition: SequenceCondition, path: str) -> str:
        first_names, first = self.events_where(condition.first, f"{path}.first")
        key, follower = (
            ("then", condition.then)
            if condition.then is not None
            else ("not_then", condition.not_then)
        )
        assert follower is not None
        second_names, second = self.events_where(follower, f"{path}.{key}")
        name = f"s{len(self.ctes)}"
        # One pass over the events of both kinds, then A and B as subsets of it.
        names = ", ".join(dict.fromkeys(first_names + second_names))
        self.ctes.append(
            f"{name}e AS MATERIALIZED (SELECT customer_id, timestamp AS ts, "
            f"({first}) AS is_a, ({second}) AS is_b FROM events "
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
