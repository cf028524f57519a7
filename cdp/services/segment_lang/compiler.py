"""Compile a segment definition to ONE parameterised DuckDB statement.

The statement returns ``customer_id`` (sorted). Every value is bound as
``$p0``, ``$p1``… and field names come from ``fields.FIELDS`` only. The shape:

- each leaf is a boolean expression over the profile row ``p``, wrapped in
  ``coalesce(…, false)`` so that ``not`` is an exact complement (a customer
  with no region is *not* ``region eq 東京都`` and *is* ``not region eq 東京都``);
  values are bound and checked by ``binding.ValueBinder``;
- an ``event`` condition is one CTE, a ``sequence`` an ``ASOF LEFT JOIN`` of
  two, over the ``facts`` view when it holds every filtered property, else over
  ``events`` (``event_sql.EventSql``);
- times are relative to the log clock (``log_clock.as_of``), read once.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cdp.errors import SegmentError
from cdp.services.segment_lang import rawsql
from cdp.services.segment_lang.event_sql import EventSql
from cdp.services.segment_lang.fields import FIELDS, RFM_CTE
from cdp.services.segment_lang.model import (
    AllRule,
    AnyRule,
    EventRule,
    FieldCondition,
    MetricRule,
    NotRule,
    Rule,
    Scalar,
    SegmentDefinition,
    SequenceRule,
    TraitRule,
)
from cdp.services.segments import check_day_params


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
    definition: SegmentDefinition,
    overrides: Mapping[str, str] | None = None,
    *,
    use_facts: bool = True,
) -> CompiledSegment:
    """The SQL and bound values of a definition; ``SegmentRuleError`` names the bad rule.
    ``use_facts=False`` reads event conditions from ``events`` only (same members)."""
    params = resolve_params(definition.params, overrides, definition.name)
    if definition.sql is not None:
        sql, values = rawsql.prepare(definition.sql, params, definition.name)
        return CompiledSegment(sql, values, params)
    assert definition.rules is not None
    compiler = _Compiler(params, definition.name, use_facts)
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


class _Compiler(EventSql):
    """Rules to one WHERE clause; event CTEs and the RFM join are collected on the way."""

    def __init__(self, params: Mapping[str, Scalar], segment: str, use_facts: bool) -> None:
        super().__init__(params, segment, use_facts)
        self.rfm = False

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
