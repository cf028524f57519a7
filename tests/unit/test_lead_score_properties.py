"""Fold laws of the lead score: order independence (with pruning), halves, combine, JSON."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from functools import reduce
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.runtime.columns import LEAD_SCORE_COLUMNS, lead_score_summary
from projections import lead_score as ls
from projections.lead_score import DEFAULT_RULES, Rule, Rules
from projections.outbound import SHOP_EVENTS
from schemas import decode
from tests import factories as f

PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# A short half-life so that the horizon (3 days x 2 = 6 days) is crossed often.
SHORT = Rules(DEFAULT_RULES.rules, half_life_days=3, horizon_half_lives=2)
# A catch-all track rule would match the shop's events if the fold let it.
CATCH_ALL = Rules((*DEFAULT_RULES.rules, Rule("any_track", 1, type="track", daily_cap=5)))
RULES = st.sampled_from([DEFAULT_RULES, SHORT, CATCH_ALL])
ZONES = [UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5))]
IDS = [{"anonymous_id": "a1"}, {"user_id": "u1"}, {"anonymous_id": "a2", "user_id": "u1"}]

# Raw events that exercise every branch: rules with paths, props and caps, stage
# facts, orders (repeated ids, equal amounts written differently) and refunds.
KINDS: list[Any] = [
    lambda: f.raw_page("/"),  # the path is drawn in raw_event
    lambda: f.envelope("screen", name="Home"),
    lambda: f.raw_track("Product Viewed", {"product_id": "p1", "category": "tea"}),
    lambda: f.raw_track("Product Added", {"product_id": "p1"}),
    lambda: f.raw_track("Form Submitted", {"form_id": "f1"}),
    lambda: f.raw_track("Email Delivered", {"campaign_id": "c1"}),
    lambda: f.raw_track("Email Opened", {"campaign_id": "c1"}),
    lambda: f.raw_track("Email Link Clicked", {"campaign_id": "c1"}),
    lambda: f.raw_track("Message Received", {"channel": "line", "channel_user_id": "L1"}),
    lambda: f.raw_track("Message Sent", {"channel": "x", "channel_user_id": "X1"}),
    lambda: f.raw_track("Survey Answered", {"survey_id": "s1", "nps": 9}),
    lambda: f.raw_track("Consent Updated", {"consents": {"email": True, "ads": False}}),
    lambda: f.raw_track("Consent Updated", {"consents": {"line": False}}),
    lambda: f.raw_identify(traits={"email": "hanako@shop.jp"}),
    lambda: f.raw_identify(traits={"first_name": "花子"}),
    lambda: f.raw_track("Custom Event", {"x": 1}),
    lambda: f.raw_track("Email Bounced", {"campaign_id": "c1"}),  # the shop's, not a contact
    lambda: f.raw_track("Push Notification Received", {}),  # the shop's contact
    # Sales events (schemas.sales): the latest deal event decides a deal's status.
    lambda: f.raw_track("Deal Created", {"deal_id": "d1", "amount": 500000}),
    lambda: f.raw_track("Deal Stage Changed", {"deal_id": "d1", "stage": "proposal"}),
    lambda: f.raw_track("Deal Won", {"deal_id": "d1"}),
    lambda: f.raw_track("Deal Won", {"deal_id": "d2", "amount": 90000}),
    lambda: f.raw_track("Deal Lost", {"deal_id": "d2", "lost_reason": "price"}),
    # An edit implies no status: it neither wins nor reopens d1 or d2, nor makes d3 won.
    lambda: f.raw_track("Deal Updated", {"deal_id": "d1", "amount": 450000}),
    lambda: f.raw_track("Deal Updated", {"deal_id": "d3", "owner": "sato"}),
    lambda: f.raw_track("Sales Activity Logged", {"activity_id": "v1", "activity_type": "visit"}),
]
PATHS = ["/", "/items/1", "/cart", "/checkout/confirm", "/pricing", "/cartoon"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@st.composite
def raw_event(draw: st.DrawFn, index: int) -> dict[str, Any]:
    minutes = draw(st.integers(min_value=0, max_value=40 * 24 * 60))
    at = (f.T0 + timedelta(minutes=minutes)).astimezone(draw(st.sampled_from(ZONES)))
    common: dict[str, Any] = {"at": at, "message_id": f"m{index:04d}", **draw(st.sampled_from(IDS))}
    choice = draw(st.integers(min_value=0, max_value=len(KINDS) + 1))
    if choice < len(KINDS):
        raw = KINDS[choice]()
        if raw["type"] == "page":
            raw["properties"] = {"path": draw(st.sampled_from(PATHS))}
    elif choice == len(KINDS):
        order_id = draw(st.sampled_from(["o1", "o2", "o3"]))
        revenue = draw(st.sampled_from(["1200", "1200.0", "980.50"]))
        raw = f.raw_track("Order Completed", {"order_id": order_id, "revenue": revenue})
    else:
        props: dict[str, Any] = {"order_id": draw(st.sampled_from(["o1", "o2", "o3"]))}
        total = draw(st.sampled_from([None, "300", "300.00", "1200"]))
        if total is not None:
            props["total"] = total
        raw = f.raw_track("Order Refunded", props)
    # The envelope fields of this example: identity, time, message id.
    return {**raw, **f.envelope(raw["type"], **common)}


@st.composite
def event_lists(draw: st.DrawFn, max_size: int = 30, offset: int = 0) -> list[Any]:
    size = draw(st.integers(min_value=0, max_value=max_size))
    return [decode(draw(raw_event(offset + i))) for i in range(size)]


def reference(events: list[Any], rules: Rules) -> ls.State:
    """One event at a time through ``apply``: the definition ``fold`` must meet."""
    return reduce(lambda state, event: ls.apply(state, event, rules), events, ls.initial())


def roundtrip(state: ls.State) -> ls.State:
    return ls.from_json(orjson.loads(orjson.dumps(ls.to_json(state))))


@PROPERTY
@given(events=event_lists(), rules=RULES, data=st.data())
def test_any_permutation_gives_an_equal_state(
    events: list[Any], rules: Rules, data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(events))
    state = ls.project(events, rules)
    assert ls.project(shuffled, rules) == state
    assert ls.to_json(ls.project(shuffled, rules)) == ls.to_json(state)  # same text too
    assert reference(shuffled, rules) == state


@PROPERTY
@given(early=event_lists(max_size=10), late=event_lists(max_size=10, offset=100), data=st.data())
def test_permutation_invariance_with_pruning_in_play(
    early: list[Any], late: list[Any], data: st.DataObject
) -> None:
    # A form long before everything else and a page view well after it: the
    # horizon (6 days) then cuts through the events, wherever they fall.
    first = f.track(
        "Form Submitted",
        {"form_id": "f0"},
        at=f.at_days(-30),
        message_id="first",
        anonymous_id="a1",
    )
    last = f.page("/", at=f.at_days(45), message_id="last", anonymous_id="a1")
    events = [first, *early, *late, last]
    state = ls.project(events, SHORT)
    last_day = (f.at_days(45) - EPOCH).days
    assert all(b.day >= last_day - 6 for b in state.buckets)
    assert "first" not in {m for b in state.buckets for _, m in b.examples}  # pruned
    shuffled = data.draw(st.permutations(events))
    assert ls.project(shuffled, SHORT) == state
    assert reference(shuffled, SHORT) == state
    assert (
        ls.combine(ls.project(shuffled[:5], SHORT), ls.project(shuffled[5:], SHORT), SHORT) == state
    )


@PROPERTY
@given(events=event_lists(), rules=RULES, data=st.data())
def test_two_halves_equal_all_at_once(events: list[Any], rules: Rules, data: st.DataObject) -> None:
    cut = data.draw(st.integers(min_value=0, max_value=len(events)))
    halves = ls.fold(ls.project(events[:cut], rules), events[cut:], rules)
    assert halves == ls.project(events, rules)


@PROPERTY
@given(a=event_lists(max_size=15), b=event_lists(max_size=15, offset=100), rules=RULES)
def test_combine_equals_folding_the_union_and_commutes(
    a: list[Any], b: list[Any], rules: Rules
) -> None:
    state_a, state_b = ls.project(a, rules), ls.project(b, rules)
    combined = ls.combine(state_a, state_b, rules)
    assert combined == ls.project(a + b, rules)
    assert combined == ls.combine(state_b, state_a, rules)
    assert ls.combine(state_a, ls.initial(), rules) == state_a


@PROPERTY
@given(events=event_lists(), rules=RULES)
def test_fold_equals_reduce_apply(events: list[Any], rules: Rules) -> None:
    assert ls.fold(ls.initial(), events, rules) == reference(events, rules)


@PROPERTY
@given(events=event_lists(), rules=RULES)
def test_json_round_trip_through_orjson(events: list[Any], rules: Rules) -> None:
    state = ls.project(events, rules)
    assert roundtrip(state) == state
    data = orjson.loads(orjson.dumps(ls.to_json(state)))
    assert ls.to_json(ls.from_json(data)) == data
    # What is read from the state survives the round trip exactly too.
    assert lead_score_summary(roundtrip(state), rules) == lead_score_summary(state, rules)


@PROPERTY
@given(events=event_lists(), rules=RULES)
def test_readings_are_well_formed(events: list[Any], rules: Rules) -> None:
    state = ls.project(events, rules)
    row = lead_score_summary(state, rules)
    assert set(row) == set(LEAD_SCORE_COLUMNS)
    assert row["lifecycle_stage"] in ls.LIFECYCLE_STAGES
    assert row["funnel_stage"] in ls.FUNNEL_STAGES
    items = ls.explain(state, rules, top=100)
    assert [abs(i["decayed_points"]) for i in items] == sorted(
        (abs(i["decayed_points"]) for i in items), reverse=True
    )
    assert all(1 <= len(i["message_ids"]) <= ls.EXAMPLES_PER_BUCKET for i in items)
    if state.last_activity is not None:  # one exponential: "score now" needs no state
        later = ls.score_at(state, state.last_activity + timedelta(days=10), rules)
        factor = 0.5 ** (10 / rules.half_life_days)
        assert later == pytest.approx(row["lead_score"] * factor, rel=1e-9, abs=1e-12)


@PROPERTY
@given(events=event_lists(), rules=RULES)
def test_the_shops_events_neither_move_the_last_activity_nor_score(
    events: list[Any], rules: Rules
) -> None:
    state = ls.project(events, rules)
    own = [e for e in events if getattr(e, "event", None) not in SHOP_EVENTS]
    assert state.last_activity == max((e.timestamp for e in own), default=None)
    without = ls.project(own, rules)
    assert (state.buckets, state.views, state.signals) == (
        without.buckets,
        without.views,
        without.signals,
    )
    assert (
        lead_score_summary(state, rules)["lead_score"]
        == lead_score_summary(without, rules)["lead_score"]
    )
