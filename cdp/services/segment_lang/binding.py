"""Values in a compiled segment: bound as ``$p0``, ``$p1``…, checked for a field's kind.

``ValueBinder`` is the base of the compiler (``compiler._Compiler``, through
``event_sql.EventSql``): it resolves ``$param`` references against the
segment's parameters, binds every value (a name or a value never enters the
SQL text), checks values against a field kind, and builds the comparison of a
column with them, wrapped in ``coalesce(…, false)`` so that ``not`` is an exact
complement. Every failure is a ``SegmentRuleError`` naming the rule path.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from cdp.services.segment_lang.errors import SegmentRuleError
from cdp.services.segment_lang.fields import Kind
from cdp.services.segment_lang.model import Scalar, Value

_OPS: dict[Kind, set[str]] = {
    "text": {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "contains"},
    "number": {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between"},
    "bool": {"eq", "ne"},
    "date": {"eq", "ne", "gt", "gte", "lt", "lte", "between"},
    "time": {"eq", "ne", "gt", "gte", "lt", "lte", "between"},
    "list": {"contains", "in", "not_in"},
}
SQL_OP = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}


class ValueBinder:
    """Bound values and the checks and comparisons that use them (one per compilation)."""

    def __init__(self, params: Mapping[str, Scalar], segment: str) -> None:
        self.params = params
        self.segment = segment
        self.values: dict[str, Any] = {}

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
            expr = f"{column} {SQL_OP[op]} {bound[0]}"
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
