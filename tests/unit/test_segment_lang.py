"""The segment language without data: shapes, rule paths in errors, parameters,
binding (no value is ever pasted into SQL) and the raw-SQL guard."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.errors import SegmentError
from cdp.services.segment_lang import SegmentRuleError, compile_definition, parse
from cdp.services.segment_lang.parse import from_data, to_yaml
from cdp.services.segment_lang.rawsql import check


def definition(rules: Any, **extra: Any) -> dict[str, Any]:
    return {"name": "t", "rules": rules, **extra}


def problems_of(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SegmentRuleError) as caught:
        compile_definition(from_data(data))
    return caught.value.problems


EVENT = {"name": "Order Completed"}
TRAIT = {"trait": {"field": "region", "op": "eq", "value": "東京都"}}


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        (
            definition({"all": [TRAIT, TRAIT, {"event": {**EVENT, "within_days": 0}}]}),
            "rules.all[2].event.within_days",
            "must be > 0",
        ),
        (
            definition({"any": [TRAIT, {"trait": {"field": "regoin", "op": "eq", "value": "x"}}]}),
            "rules.any[1].trait.field",
            "did you mean region",
        ),
        (
            definition({"not": {"metric": {"field": "revenue", "op": "contains", "value": 1}}}),
            "rules.not.metric.op",
            "does not apply to a number field",
        ),
        (
            definition({"metric": {"field": "revenue", "op": "gt", "value": "lots"}}),
            "rules.metric.value",
            "must be a number value",
        ),
        (
            definition({"trait": {"field": "region", "op": "between", "value": ["a"]}}),
            "rules.trait.value",
            "exactly 2",
        ),
        (
            definition({"trait": {"field": "region", "op": "is_null", "value": "x"}}),
            "rules.trait.value",
            "takes no value",
        ),
        (
            definition({"trait": {"field": "first_seen", "op": "gt", "value": "yesterday"}}),
            "rules.trait.value",
            "not an ISO 8601 time",
        ),
        (
            definition({"trait": {"field": "last_seen", "op": "gt", "value": "2026-10-01T00:00"}}),
            "rules.trait.value",
            "needs a time zone",
        ),
        (
            definition({"event": {**EVENT, "within_days": "$days"}}),
            "rules.event.within_days",
            "unknown parameter $days",
        ),
        (
            definition({"event": {**EVENT, "count": {"op": "gte", "value": -1}}}),
            "rules.event.count.value",
            ">= 0",
        ),
        (
            definition(
                {"event": {**EVENT, "where": [{"property": "a'); DROP", "op": "eq", "value": 1}]}}
            ),
            "rules.event.where[0].property",
            "not a property path",
        ),
        (
            definition(
                {
                    "event": {
                        **EVENT,
                        "where": [{"property": "products[*].product_id", "op": "gt", "value": "A"}],
                    }
                }
            ),
            "rules.event.where[0].op",
            "does not apply to a list field",
        ),
        (
            definition(
                {"sequence": {"first": EVENT, "not_then": EVENT, "min_days": -2, "within_days": 3}}
            ),
            "rules.sequence.min_days",
            "must be >= 0",
        ),
        (
            definition(
                {"all": [TRAIT, {"sequence": {"first": EVENT, "then": EVENT, "within_days": 0}}]}
            ),
            "rules.all[1].sequence.within_days",
            "must be > 0",
        ),
    ],
)
def test_compile_errors_name_the_rule_path(data: dict[str, Any], path: str, fragment: str) -> None:
    problems = problems_of(data)
    assert problems[0][0] == path
    assert fragment in problems[0][1]


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        (definition({"all": [TRAIT, {"nope": 1}]}), "rules.all[1]", "exactly one key"),
        (
            definition({"all": [TRAIT, {"trait": {"field": "x", "op": "like"}}]}),
            "rules.all[1].trait.op",
            "Input should be",
        ),
        (definition({"event": {"name": "x", "within": 3}}), "rules.event.within", "unknown key"),
        (definition({"all": []}), "rules.all", "at least 1"),
        (definition({"not": {"not": {"event": {}}}}), "rules.not.not.event.name", "required"),
        (definition({"sequence": {"first": EVENT}}), "rules.sequence", "exactly one of then"),
        ({"name": "Bad Name", "rules": TRAIT}, "name", "should match"),
        ({"name": "t"}, "", "exactly one of rules or sql"),
        ({"name": "t", "rules": TRAIT, "sql": "SELECT 1"}, "", "exactly one of rules or sql"),
    ],
)
def test_shape_errors_name_the_rule_path(data: dict[str, Any], path: str, fragment: str) -> None:
    with pytest.raises(SegmentRuleError) as caught:
        from_data(data)
    paths = caught.value.paths
    assert path in paths, caught.value.problems
    message = dict(caught.value.problems)[path]
    assert fragment in message
    assert path in str(caught.value)


def test_yaml_and_json_give_the_same_definition() -> None:
    yaml_text = """
name: t
params: {days: 30}
rules:
  all:
    - trait: {field: region, op: eq, value: 東京都}
    - event: {name: Order Completed, within_days: $days}
"""
    json_text = (
        '{"name": "t", "params": {"days": 30}, "rules": {"all": ['
        '{"trait": {"field": "region", "op": "eq", "value": "東京都"}},'
        '{"event": {"name": "Order Completed", "within_days": "$days"}}]}}'
    )
    assert parse(yaml_text) == parse(json_text, "json")
    with pytest.raises(SegmentRuleError, match="not valid JSON"):
        parse("{", "json")


HOSTILE = "x'); DROP TABLE customers; --"


def test_values_are_bound_never_pasted() -> None:
    data = definition(
        {
            "all": [
                {"trait": {"field": "region", "op": "in", "value": [HOSTILE, "$$dollar"]}},
                {
                    "event": {
                        "name": HOSTILE,
                        "where": [
                            {
                                "property": "products[*].product_id",
                                "op": "contains",
                                "value": HOSTILE,
                            }
                        ],
                    }
                },
            ]
        }
    )
    compiled = compile_definition(from_data(data))
    assert HOSTILE not in compiled.sql
    assert "DROP" not in compiled.sql
    assert list(compiled.values.values()).count(HOSTILE) == 3
    assert "$dollar" in compiled.values.values()  # $$ escapes a literal $


def test_parameters_resolve_with_overrides_typed_like_defaults() -> None:
    data = definition({"event": {**EVENT, "within_days": "$days"}}, params={"days": 30})
    parsed = from_data(data)
    assert 30 in compile_definition(parsed).values.values()
    compiled = compile_definition(parsed, {"days": "7"})
    assert compiled.params == {"days": 7}
    assert 7 in compiled.values.values()
    with pytest.raises(SegmentError, match="must be a whole number"):
        compile_definition(parsed, {"days": "soon"})
    with pytest.raises(SegmentError, match="has no parameter 'weeks'"):
        compile_definition(parsed, {"weeks": "1"})
    # A day-count parameter below 1 is refused by name, before it reaches a rule.
    with pytest.raises(
        SegmentError, match="parameter 'days' is a number of days and must be at least 1"
    ):
        compile_definition(parsed, {"days": "0"})
    # A parameter not named as a day count still meets the rule's own check.
    window = from_data(
        definition({"event": {**EVENT, "within_days": "$window"}}, params={"window": 30})
    )
    with pytest.raises(
        SegmentRuleError, match=r"rules\.event\.within_days: must be > 0 days \(\$window = 0\)"
    ):
        compile_definition(window, {"window": "0"})


@pytest.mark.parametrize(
    ("sql", "fragment"),
    [
        ("DELETE FROM customers", "only SELECT"),
        ("SELECT 1; SELECT 2", "exactly one statement"),
        ("COPY customers TO '/tmp/x.csv'", "only SELECT"),
        ("ATTACH '/tmp/x.db' AS x", "only SELECT"),
        ("SELECT * FROM read_csv('/etc/passwd')", "table function read_csv"),
        ("SELECT * FROM '/etc/passwd'", "reads '/etc/passwd'"),
        ("SELECT * FROM glob('/*')", "table function glob"),
        ("SELECT customer_id FROM profiles WHERE getenv('HOME') = ''", "getenv"),
        ("SELECT * FROM query('DROP TABLE customers')", "table function query"),
        ("SELECT * FROM other.main.customers", "another schema or catalog"),
        ("SELECT * FROM event_log", "may read only"),
        ("SELECT customer_id FROM (SELECT * FROM read_text('/etc/hosts'))", "read_text"),
        ("SELEC customer_id", "not valid SQL"),
    ],
)
def test_raw_sql_refuses_anything_but_a_select_over_the_views(sql: str, fragment: str) -> None:
    with pytest.raises(SegmentRuleError, match="sql: ") as caught:
        check(sql, "t")
    assert fragment in str(caught.value)


def test_raw_sql_accepts_selects_with_ctes_over_the_views() -> None:
    check(
        "WITH big AS (SELECT customer_id FROM profiles WHERE revenue > $min) "
        "SELECT b.customer_id FROM big b JOIN events e USING (customer_id), log_clock k "
        "WHERE e.timestamp > k.as_of - INTERVAL 3 DAY AND b.customer_id IN (SELECT unnest(['a']))"
    )
    compiled = compile_definition(
        from_data(
            {
                "name": "t",
                "params": {"min": 5},
                "sql": "SELECT customer_id FROM profiles WHERE revenue > $min;",
            }
        )
    )
    assert compiled.values == {"min": 5}
    assert not compiled.sql.endswith(";")
    with pytest.raises(SegmentRuleError, match=r"undeclared parameter \$max"):
        compile_definition(
            from_data({"name": "t", "sql": "SELECT customer_id FROM profiles WHERE revenue > $max"})
        )


# -- round trip: definition → YAML / JSON → definition ----------------------------------

_leaves = st.one_of(
    st.builds(
        lambda f, op, v: {"trait": {"field": f, "op": op, "value": v}},
        st.sampled_from(["region", "city", "gender"]),
        st.sampled_from(["eq", "ne", "contains"]),
        # "$name" is a parameter reference, not a literal: literals never start with "$"
        st.text(min_size=1, max_size=8).filter(lambda v: not v.startswith("$")),
    ),
    st.builds(
        lambda n, d, c: {
            "event": {"name": n, "within_days": d, "count": {"op": "gte", "value": c}}
        },
        st.sampled_from(["Order Completed", "Email Opened"]),
        st.integers(1, 400),
        st.integers(0, 5),
    ),
    st.builds(
        lambda d: {
            "sequence": {"first": {"name": "A"}, "not_then": {"name": "B"}, "within_days": d}
        },
        st.integers(1, 90),
    ),
)
_trees = st.recursive(
    _leaves,
    lambda c: st.one_of(
        st.lists(c, min_size=1, max_size=3).map(lambda x: {"all": x}),
        st.lists(c, min_size=1, max_size=3).map(lambda x: {"any": x}),
        c.map(lambda x: {"not": x}),
    ),
    max_leaves=8,
)


@settings(max_examples=60, deadline=None)
@given(rules=_trees)
def test_definitions_round_trip_through_yaml_and_json(rules: dict[str, Any]) -> None:
    parsed = from_data({"name": "t", "rules": rules})
    dumped = parsed.model_dump(by_alias=True, exclude_none=True)
    assert parse(to_yaml(dumped)) == parsed
    assert parse(orjson.dumps(dumped).decode(), "json") == parsed
    assert compile_definition(parsed).sql == compile_definition(parse(yaml.safe_dump(dumped))).sql


def test_yaml_of_a_value_with_a_yaml_line_break_reads_back_equal() -> None:
    """PyYAML emits U+0085 raw with allow_unicode and reads it back as a break."""
    data = {"name": "t", "rules": {"trait": {"field": "region", "op": "eq", "value": "東京\x85"}}}
    assert yaml.safe_load(to_yaml(data)) == data
    plain = {"name": "t", "rules": {"trait": {"field": "region", "op": "eq", "value": "東京都"}}}
    assert "東京都" in to_yaml(plain)  # readable when that is safe
