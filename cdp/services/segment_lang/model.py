"""Pydantic v2 models of a segment definition (YAML or JSON).

A definition is a name, a description, optional parameters with defaults and
either a rule tree (``rules``) or one read-only SQL query (``sql``)::

    name: tokyo_repeaters
    params: {days: 30}
    rules:
      all:
        - trait: {field: region, op: eq, value: 東京都}
        - metric: {field: orders_count, op: gte, value: 2}
        - not:
            event: {name: Email Delivered, within_days: $days}

A rule is a mapping with exactly one key: ``all`` / ``any`` (lists of rules),
``not`` (one rule), ``trait`` / ``metric`` (a profile field or computed
metric, see ``fields.FIELDS``), ``event`` (a count of events) or ``sequence``
(A then B, or A and not B). Any scalar value may be ``$name``, a parameter
(``$$`` escapes a literal ``$``). Shape is checked here; names, kinds and
values are checked by the compiler, both with the rule path in the message.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

Scalar = str | bool | int | float
Value = Scalar | list[Scalar] | None
DayCount = int | str  # a whole number of days, or a "$param"

Op = Literal[
    "eq",
    "ne",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "contains",
    "is_null",
    "is_not_null",
]
CountOp = Literal["eq", "ne", "gt", "gte", "lt", "lte", "between"]

NAME_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
PARAM_PATTERN = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RULE_KEYS = ("all", "any", "not", "trait", "metric", "event", "sequence")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class FieldCondition(_Strict):
    """``field op value`` on a profile field or computed metric."""

    field: str
    op: Op
    value: Value = None


class PropertyFilter(_Strict):
    """``property op value`` on an event's JSON: ``products[*].product_id``,
    ``revenue``, ``context.campaign.name`` (``properties.`` is the default root)."""

    property: str
    op: Op
    value: Value = None


class CountFilter(_Strict):
    """How many matching events: ``{op: gte, value: 1}`` by default."""

    op: CountOp = "gte"
    value: int | str | list[int | str] = 1


class EventSpec(_Strict):
    """Events by name (one or several), property filters, recent window."""

    name: str | list[str]
    where: list[PropertyFilter] = Field(default_factory=list)
    within_days: DayCount | None = None


class EventCondition(EventSpec):
    """A customer's count of matching events compared with a number."""

    count: CountFilter = Field(default_factory=CountFilter)


class SequenceCondition(_Strict):
    """``first`` then ``then`` (or ``first`` and not ``not_then``) within N days."""

    first: EventSpec
    then: EventSpec | None = None
    not_then: EventSpec | None = None
    within_days: DayCount | None = None
    min_days: DayCount | None = None

    @model_validator(mode="after")
    def _one_follower(self) -> SequenceCondition:
        if (self.then is None) == (self.not_then is None):
            raise ValueError("give exactly one of then (A then B) or not_then (A and not B)")
        return self


class AllRule(_Strict):
    """Every child rule holds."""

    all: list[Rule] = Field(min_length=1)


class AnyRule(_Strict):
    """At least one child rule holds."""

    any: list[Rule] = Field(min_length=1)


class NotRule(_Strict):
    """The child rule does not hold."""

    not_: Rule = Field(alias="not")


class TraitRule(_Strict):
    """A profile trait condition."""

    trait: FieldCondition


class MetricRule(_Strict):
    """A computed-metric condition (same whitelist as ``trait``)."""

    metric: FieldCondition


class EventRule(_Strict):
    """An event-count condition."""

    event: EventCondition


class SequenceRule(_Strict):
    """A sequence condition."""

    sequence: SequenceCondition


_TAGS: dict[type[BaseModel], str] = {
    AllRule: "rule:all",
    AnyRule: "rule:any",
    NotRule: "rule:not",
    TraitRule: "rule:trait",
    MetricRule: "rule:metric",
    EventRule: "rule:event",
    SequenceRule: "rule:sequence",
}


def _rule_key(value: Any) -> str | None:
    """The union's tag: the rule's one key (``rule:`` marks it as not from the document)."""
    if isinstance(value, BaseModel):
        return _TAGS.get(type(value))
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return f"rule:{key}" if key in RULE_KEYS else None
    return None


Rule = Annotated[
    Union[  # noqa: UP007  (a discriminated union needs the Union form with Tag)
        Annotated[AllRule, Tag("rule:all")],
        Annotated[AnyRule, Tag("rule:any")],
        Annotated[NotRule, Tag("rule:not")],
        Annotated[TraitRule, Tag("rule:trait")],
        Annotated[MetricRule, Tag("rule:metric")],
        Annotated[EventRule, Tag("rule:event")],
        Annotated[SequenceRule, Tag("rule:sequence")],
    ],
    Discriminator(
        _rule_key,
        custom_error_type="rule_key",
        custom_error_message="a rule is a mapping with exactly one key: " + ", ".join(RULE_KEYS),
    ),
]


class SegmentDefinition(_Strict):
    """A saved segment: rules compiled to SQL, or one read-only SQL query."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    params: dict[str, Scalar] = Field(default_factory=dict)
    rules: Rule | None = None
    sql: str | None = None

    @model_validator(mode="after")
    def _rules_or_sql(self) -> SegmentDefinition:
        if (self.rules is None) == (self.sql is None):
            raise ValueError("give exactly one of rules or sql")
        for name in self.params:
            if not PARAM_PATTERN.match(name):
                raise ValueError(f"parameter name {name!r} must match {PARAM_PATTERN.pattern}")
        return self

    @property
    def kind(self) -> Literal["saved", "sql"]:
        """``sql`` for a raw-SQL segment, ``saved`` for a rule tree."""
        return "sql" if self.sql is not None else "saved"


for _model in (AllRule, AnyRule, NotRule, SegmentDefinition):
    _model.model_rebuild()
