"""The event-facts table binds to the JSON it was extracted from, on random event sets.

Random shops (orders of a few products, emails, views, pages, identifies that
link anonymous browsers to users, so customers merge and events whose user id
is linked only later move to their customer) are ingested in two parts: the
first checkpointed (its facts in the ``event_facts`` table), the second not yet
(its facts read from the log's tail), then both checkpointed. At each point:

- the ``facts`` view equals the ``events`` view row for row (customer and every
  fact column against ``json_extract_string`` of the payload);
- the saved log clock equals the clock over the whole log;
- every segment selects the same members compiled over facts as over events
  (``use_facts=False``: the JSON-based SQL), and the built-ins the same as
  their JSON-based SQL before the facts table (``bench.segments.LEGACY_SQL``).
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.segments import LEGACY_SQL
from cdp.adapters.duckdb import facts
from cdp.config import Settings
from cdp.runtime import replay
from cdp.runtime.clock import AS_OF_SQL
from cdp.runtime.engine import Engine
from cdp.services import segments as builtin_segments
from cdp.services.ingest import ingest
from cdp.services.segment_lang import compile_definition
from cdp.services.segment_lang.parse import from_data
from tests.factories import T0, raw_identify, raw_order, raw_page, raw_track

pytestmark = pytest.mark.integration

USERS = ("u1", "u2", "u3", "u4")
BROWSERS = ("a1", "a2", "a3", "a4", "a5")
PRODUCTS = ("TEA-STARTER", "MATCHA-BULK-500", "CHASEN-80")


def _ids(draw: st.DrawFn) -> dict[str, str]:
    user = draw(st.sampled_from((None, *USERS)))
    browser = draw(st.sampled_from((None, *BROWSERS)) if user else st.sampled_from(BROWSERS))
    return {
        **({"user_id": user} if user else {}),
        **({"anonymous_id": browser} if browser else {}),
    }


@st.composite
def raw_events(draw: st.DrawFn) -> dict[str, Any]:
    at = T0 + timedelta(days=draw(st.integers(0, 120)), minutes=draw(st.integers(0, 1439)))
    kind = draw(st.sampled_from(("order", "order", "email", "view", "page", "link")))
    if kind == "link":  # a browser becomes a known user (a merge when it had a profile)
        user, browser = draw(st.sampled_from(USERS)), draw(st.sampled_from(BROWSERS))
        return raw_identify(user_id=user, anonymous_id=browser, at=at)
    ids = _ids(draw)
    if kind == "page":
        return raw_page("/", at=at, **ids)
    if kind == "view":
        return raw_track(
            "Product Viewed", {"product_id": draw(st.sampled_from(PRODUCTS))}, at=at, **ids
        )
    if kind == "email":
        name = draw(st.sampled_from(("Email Opened", "Email Link Clicked", "Email Delivered")))
        return raw_track(name, {"campaign_id": "c1"}, at=at, **ids)
    items = [
        {"product_id": p, "name": p, "category": c, "price": 1000, "quantity": 1}
        for p, c in draw(
            st.lists(
                st.tuples(st.sampled_from(PRODUCTS), st.sampled_from(("tea", "tools"))), max_size=3
            )
        )
    ]
    revenue = draw(st.integers(0, 20_000))
    return raw_order(f"o-{draw(st.integers(0, 50))}", revenue, items, at=at, **ids)


def _order(first: dict[str, Any], then: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "Order Completed", **first, **({} if then is None else then)}


def _contains(product: str) -> dict[str, Any]:
    return {"where": [{"property": "products[*].product_id", "op": "contains", "value": product}]}


A, B = PRODUCTS[0], PRODUCTS[1]
RULES: list[dict[str, Any]] = [
    {"sequence": {"first": _order(_contains(A)), "then": _order(_contains(B)), "within_days": 30}},
    {"sequence": {"first": _order(_contains(A)), "not_then": _order(_contains(B)), "min_days": 10}},
    {
        "sequence": {
            "first": _order(_contains(A), {"within_days": 90}),
            "not_then": _order(_contains(B)),
            "within_days": 20,
            "min_days": 5,
        }
    },
    {"event": {**_order(_contains(B)), "count": {"op": "gte", "value": 2}}},
    {"event": {"name": "Order Completed", "within_days": 60, "count": {"op": "lt", "value": 2}}},
    {
        "event": {
            "name": "Order Completed",
            "where": [{"property": "revenue", "op": "gte", "value": 5000}],
        }
    },
    {
        "event": {
            "name": "Order Completed",
            "where": [{"property": "order_id", "op": "in", "value": ["o-1", "o-2"]}],
        }
    },
    {
        "event": {
            "name": "Order Completed",
            "where": [{"property": "products[*].category", "op": "contains", "value": "tools"}],
        }
    },
    {"event": {"name": ["Email Opened", "Email Link Clicked"], "within_days": 30}},
    {"not": {"event": {"name": "Product Viewed", "count": {"op": "between", "value": [1, 2]}}}},
    {
        "all": [
            {
                "event": {
                    "name": "Product Viewed",
                    "where": [{"property": "product_id", "op": "eq", "value": A}],
                }
            },
            {
                "sequence": {
                    "first": {"name": "Email Opened"},
                    "then": _order({}),
                    "within_days": 14,
                }
            },
        ]
    },
]


def _members(con: duckdb.DuckDBPyConnection, sql: str, values: dict[str, Any]) -> list[str]:
    return [str(r[0]) for r in con.execute(sql, values).fetchall()]


def _same_everywhere(con: duckdb.DuckDBPyConnection) -> None:
    paths = ", ".join(f"json_extract_string(payload, '{path}')" for path in facts.FACT_PATHS)
    columns = ", ".join(column for column, _ in facts.FACT_PATHS.values())
    by_json = con.execute(
        f'SELECT "offset", event, timestamp, customer_id, {paths} FROM events '
        'WHERE event IS NOT NULL ORDER BY "offset"'
    ).fetchall()
    by_facts = con.execute(
        f'SELECT "offset", event, timestamp, customer_id, {columns} FROM facts ORDER BY "offset"'
    ).fetchall()
    assert by_facts == by_json
    assert (
        con.execute("SELECT as_of FROM log_clock").fetchall()
        == con.execute(f"SELECT {AS_OF_SQL} FROM event_log").fetchall()
    )
    for i, rules in enumerate(RULES):
        definition = from_data({"name": f"s{i}", "rules": rules})
        fast = compile_definition(definition)
        assert "FROM facts" in fast.sql, fast.sql
        slow = compile_definition(definition, use_facts=False)
        assert "FROM facts" not in slow.sql
        assert _members(con, fast.sql, fast.values) == _members(con, slow.sql, slow.values), rules
    for name, legacy in LEGACY_SQL.items():
        segment = builtin_segments.BUILTIN[name]
        params = builtin_segments.bind(segment, _params(name))
        used = {k: v for k, v in params.items() if f"${k}" in legacy}
        assert _members(con, segment.sql, params) == _members(con, legacy, used), name


def _params(name: str) -> dict[str, str]:
    """Parameters that make the built-ins select someone in a 120-day shop."""
    return {
        "frequent_buyers": {"window_days": "60", "min_orders": "2"},
        "a_buyers_without_b": {"min_days": "5", "max_days": "60"},
        "engaged_never_bought": {},
    }[name]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(raw_events(), min_size=1, max_size=60), st.data())
def test_facts_select_what_the_json_selects(
    events: list[dict[str, Any]], data: st.DataObject
) -> None:
    split = data.draw(st.integers(0, len(events)))
    with tempfile.TemporaryDirectory() as directory:
        engine = Engine.open(Settings(Path(directory) / "data"))
        try:
            items = [(f"m{i}", raw) for i, raw in enumerate(events)]
            assert ingest(items[:split], engine).rejected == 0
            engine.checkpoint()
            assert ingest(items[split:], engine).rejected == 0
            _same_everywhere(engine.con)  # the tail past the facts' position: from the log
            engine.checkpoint()
            assert facts.position(engine.con) == engine.log.high_water()
            _same_everywhere(engine.con)
        finally:
            engine.close()


def test_the_table_catches_up_survives_a_rebuild_and_a_replay(tmp_path: Path) -> None:
    """Dropped (an older data directory), it is recreated and refilled on the next
    open for writing; ``cdp replay`` leaves it valid (it derives from the log only)."""
    settings_ = Settings(tmp_path / "data")
    with Engine.open(settings_) as engine:
        raws = [
            raw_order(f"o{i}", 1000, user_id=f"u{i % 3}", at=T0 + timedelta(days=i))
            for i in range(9)
        ]
        assert ingest([(f"m{i}", r) for i, r in enumerate(raws)], engine).rejected == 0
        engine.checkpoint()
        assert engine.con.execute("SELECT count(*) FROM event_facts").fetchall() == [(9,)]
        assert facts.catch_up(engine.con) == 0  # nothing new: nothing read
    con = duckdb.connect(str(settings_.database))
    con.execute("DROP TABLE event_facts")
    con.execute("DROP TABLE event_facts_position")
    con.close()
    with Engine.open(settings_) as engine:
        assert engine.con.execute("SELECT count(*) FROM event_facts").fetchall() == [(9,)]
        report = replay.rebuild(engine, verify=True)
        assert not report.differences
        _same_everywhere(engine.con)
    con = Engine.open_read_only(settings_)
    try:
        _same_everywhere(con)
    finally:
        con.close()
