"""Lead score, lifecycle and funnel stages: examples of each rule and stage."""

from __future__ import annotations

import tomllib
from datetime import UTC, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from cdp.runtime.columns import LEAD_SCORE_COLUMNS, lead_score_summary
from projections import lead_score as ls
from projections.lead_score import DEFAULT_RULES, Rule, Rules
from schemas import decode
from tests import factories as f

SCORING_TOML = Path(__file__).parents[2] / "cdp" / "defaults" / "scoring.toml"
ANON: dict[str, Any] = {"anonymous_id": "anon-1"}


def noon(day: float) -> Any:
    """Midday UTC of T0's day plus ``day`` days: where a bucket's age is zero."""
    return f.T0.replace(hour=12) + timedelta(days=day)


def points_by_rule(events: list[Any], rules: Rules = DEFAULT_RULES) -> dict[str, float]:
    state = ls.project(events, rules)
    out: dict[str, float] = {}
    for item in ls.explain(state, rules, top=100):
        out[item["rule"]] = out.get(item["rule"], 0.0) + item["points"]
    return out


def form(**kw: Any) -> Any:
    return f.track("Form Submitted", {"form_id": "catalogue"}, **kw)


def email(event: str, **kw: Any) -> Any:
    return f.track(event, {"campaign_id": "spring"}, **kw)


def product(event: str, **kw: Any) -> Any:
    return f.track(event, {"product_id": "matcha-1"}, **kw)


def refund(order_id: str, *, total: float | None = None, **kw: Any) -> Any:
    props: dict[str, Any] = {"order_id": order_id}
    if total is not None:
        props["total"] = total
    return f.track("Order Refunded", props, **kw)


# ── the default rules ───────────────────────────────────────────────────────

RULE_EXAMPLES = [
    ("page_view", lambda: f.page("/items/1", **ANON), 1),
    ("screen_view", lambda: decode(f.envelope("screen", name="Home", **ANON)), 1),
    ("product_viewed", lambda: product("Product Viewed", **ANON), 2),
    ("product_added", lambda: product("Product Added", **ANON), 5),
    ("cart_page", lambda: f.page("/cart", **ANON), 5),
    ("checkout_page", lambda: f.page("/checkout/confirm", **ANON), 5),
    ("form_submitted", lambda: form(**ANON), 10),
    ("email_opened", lambda: email("Email Opened", **ANON), 2),
    ("email_link_clicked", lambda: email("Email Link Clicked", **ANON), 5),
    ("sns_message_received", lambda: f.message("line", "U1", **ANON), 8),
    ("survey_answered", lambda: f.track("Survey Answered", {"survey_id": "s1"}, **ANON), 5),
    (
        "consent_granted",
        lambda: f.track("Consent Updated", {"consents": {"ads": False, "email": True}}, **ANON),
        3,
    ),
]


@pytest.mark.parametrize(
    ("rule", "build", "points"), RULE_EXAMPLES, ids=[r[0] for r in RULE_EXAMPLES]
)
def test_each_default_rule_scores_its_event(rule: str, build: Any, points: float) -> None:
    assert points_by_rule([build()])[rule] == points


def test_every_default_rule_has_an_example() -> None:
    assert {r.name for r in DEFAULT_RULES.rules} == {r[0] for r in RULE_EXAMPLES}


def test_rules_add_up_a_cart_page_is_also_a_page_view() -> None:
    assert points_by_rule([f.page("/cart/items", **ANON)]) == {"page_view": 1, "cart_page": 5}


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(
            lambda: f.page("/cartoon", **ANON), {"page_view": 1}, id="prefix is whole segments"
        ),
        pytest.param(
            lambda: f.track("Consent Updated", {"consents": {"email": False}}, **ANON),
            {},
            id="withdrawn consent",
        ),
        pytest.param(lambda: email("Email Delivered", **ANON), {}, id="email delivered"),
        pytest.param(lambda: f.order("o1", 1200, **ANON), {}, id="orders do not score"),
        pytest.param(
            lambda: f.track("Custom Thing", {"path": "/cart"}, **ANON), {}, id="custom track"
        ),
        pytest.param(lambda: f.identify(email="hanako@shop.jp", **ANON), {}, id="identify"),
    ],
)
def test_what_the_default_rules_do_not_score(event: Any, expected: dict[str, float]) -> None:
    assert points_by_rule([event()]) == expected


def test_page_path_comes_from_context_when_properties_lack_it() -> None:
    raw = f.envelope("page", context={"page": {"path": "/checkout"}}, **ANON)
    assert points_by_rule([decode(raw)]) == {"page_view": 1, "checkout_page": 5}


def test_daily_cap_bounds_a_rule_per_utc_day() -> None:
    views = [f.page("/", at=f.T0 + timedelta(minutes=i), **ANON) for i in range(40)]
    next_day = f.page("/", at=f.at_days(1), **ANON)
    assert points_by_rule(views) == {"page_view": 10}
    assert points_by_rule([*views, next_day]) == {"page_view": 11}


def test_prop_matching_is_strict_about_booleans() -> None:
    rules = Rules((Rule("flag", 1, event="Thing", prop="a.*", equals=True),))
    assert points_by_rule([f.track("Thing", {"a": {"x": 1}}, **ANON)], rules) == {}
    assert points_by_rule([f.track("Thing", {"a": {"x": True}}, **ANON)], rules) == {"flag": 1}


def test_prop_matching_reads_typed_properties_and_list_items() -> None:
    rules = Rules(
        (
            Rule("tea", 4, event="Product Viewed", prop="category", equals="tea"),
            Rule("tea_order", 1, event="Order Completed", prop="products.*.category", equals="tea"),
        )
    )
    viewed = f.track("Product Viewed", {"product_id": "p1", "category": "tea"}, **ANON)
    ordered = f.order("o1", 1200, **ANON)  # the factory's product is in category "tea"
    assert points_by_rule([viewed, ordered], rules) == {"tea": 4, "tea_order": 1}


def test_buckets_count_events_so_new_points_rescore_without_replay() -> None:
    state = ls.project([form(**ANON), form(**ANON)])
    doubled = Rules((Rule("form_submitted", 20, event="Form Submitted"),))
    assert ls.score_at(state, f.T0, doubled) == 2 * ls.score_at(state, f.T0)
    assert ls.score_at(state, f.T0, Rules(())) == 0.0  # rule gone: scores nothing


# ── decay ───────────────────────────────────────────────────────────────────


def test_score_halves_after_one_half_life() -> None:
    state = ls.project([form(at=noon(0), **ANON)])
    assert ls.score_at(state, noon(0)) == 10.0
    assert ls.score_at(state, noon(30)) == 5.0
    assert ls.score_at(state, noon(60)) == 2.5


def test_half_life_comes_from_the_rules() -> None:
    rules = Rules(DEFAULT_RULES.rules, half_life_days=7)
    state = ls.project([form(at=noon(0), **ANON)], rules)
    assert ls.score_at(state, noon(7), rules) == 5.0


def test_an_event_is_worth_its_points_at_noon_of_its_day() -> None:
    morning = ls.project([form(at=f.T0, **ANON)])  # 09:00 UTC
    assert ls.score_at(morning, noon(0)) == 10.0
    assert lead_score_summary(morning)["lead_score"] == pytest.approx(10 * 2 ** (3 / 24 / 30))


def test_the_score_is_one_exponential_in_time() -> None:
    # What lets SQL compute "the score now" from lead_score and score_time alone.
    events = [form(at=f.at_days(-3.3), **ANON), f.page("/cart", at=f.at_days(0), **ANON)]
    state = ls.project(events)
    row = lead_score_summary(state)
    for days in (0.25, 1, 7.5, 30, 365):
        later = row["score_time"] + timedelta(days=days)
        assert ls.score_at(state, later) == pytest.approx(
            row["lead_score"] * 0.5 ** (days / 30), rel=1e-12
        )


def test_score_before_the_last_activity_is_the_score_at_it() -> None:
    state = ls.project([form(at=noon(0), **ANON), form(at=noon(10), **ANON)])
    assert ls.score_at(state, noon(-5)) == ls.score_at(state, noon(10))


def test_decay_uses_event_time_only() -> None:
    old = ls.project([form(at=noon(0), **ANON), f.page("/", at=noon(30), **ANON)])
    assert lead_score_summary(old)["lead_score"] == 5.0 + 1.0


def test_buckets_beyond_the_horizon_are_dropped_also_when_late() -> None:
    rules = Rules(DEFAULT_RULES.rules, half_life_days=1, horizon_half_lives=10)
    first, late_old = form(at=noon(0), **ANON), form(at=noon(1), **ANON)
    recent = f.page("/", at=noon(20), **ANON)
    state = ls.project([first, recent], rules)
    assert [b.rule for b in state.buckets] == ["page_view"]
    assert ls.apply(state, late_old, rules) == ls.project([first, late_old, recent], rules)
    assert ls.apply(state, late_old, rules).buckets == state.buckets


# ── lifecycle ladder ────────────────────────────────────────────────────────


def test_lifecycle_ladder_unknown_lead_hot_customer_repeater() -> None:
    at: dict[str, Any] = {"at": noon(0), **ANON}  # noon: every event worth its points
    events: list[Any] = [f.page("/", **at)]
    assert ls.lifecycle_stage(ls.project(events)) == "unknown"
    events.append(f.identify(email="hanako@shop.jp", **at))
    assert ls.lifecycle_stage(ls.project(events)) == "lead"
    events += [form(**at), product("Product Added", **at), f.page("/cart", **at)]
    events += [f.page("/", **at) for _ in range(2)]
    assert lead_score_summary(ls.project(events))["lead_score"] == 24.0
    assert ls.lifecycle_stage(ls.project(events)) == "lead"
    events.append(f.page("/", **at))
    assert lead_score_summary(ls.project(events))["lead_score"] == 25.0  # the threshold is hot
    assert ls.lifecycle_stage(ls.project(events)) == "hot_lead"
    events.append(f.order("o1", 1200, **at))
    assert ls.lifecycle_stage(ls.project(events)) == "customer"
    events.append(f.order("o2", 800, **at))
    assert ls.lifecycle_stage(ls.project(events)) == "repeater"


def test_hot_lead_cools_down_as_of_a_later_time() -> None:
    events = [
        form(at=noon(0), **ANON),
        f.message("line", "U1", at=noon(0), **ANON),
        product("Product Added", at=noon(0), **ANON),
        f.page("/cart", at=noon(0), **ANON),
    ]
    state = ls.project(events)
    assert ls.score_at(state, noon(0)) == 10 + 8 + 5 + 5 + 1
    assert ls.lifecycle_stage(state) == "hot_lead"
    assert ls.lifecycle_stage(state, at=noon(30)) == "lead"  # 14.5 by then


@pytest.mark.parametrize(
    "event",
    [
        pytest.param(lambda: f.page("/", user_id="u1"), id="userId"),
        pytest.param(lambda: f.identify(phone="090-1234-5678", **ANON), id="phone trait"),
        pytest.param(
            lambda: f.page("/", context={"traits": {"email": "a@shop.jp"}}, **ANON),
            id="context.traits",
        ),
        pytest.param(lambda: form(**ANON), id="form"),
        pytest.param(lambda: f.message("instagram", "ig1", **ANON), id="SNS message"),
        pytest.param(lambda: email("Email Delivered", **ANON), id="email event"),
    ],
)
def test_a_known_contact_is_a_lead(event: Any) -> None:
    assert ls.lifecycle_stage(ls.project([event()])) == "lead"


def test_an_anonymous_visitor_stays_unknown_however_hot() -> None:
    events = [product("Product Added", at=f.T0 + timedelta(hours=h), **ANON) for h in range(3)]
    events += [f.page("/cart", **ANON), f.page("/checkout", **ANON)]
    state = ls.project(events)
    assert lead_score_summary(state)["hot"] is True
    assert ls.lifecycle_stage(state) == "unknown"


def test_refunds_undo_orders_for_the_stages() -> None:
    orders = [f.order("o1", 1200, **ANON), f.order("o2", 800, **ANON)]
    assert ls.lifecycle_stage(ls.project([*orders, refund("o2", **ANON)])) == "customer"
    assert ls.lifecycle_stage(ls.project([*orders, refund("o2", total=300, **ANON)])) == "repeater"
    two_partials = [refund("o2", total=300, **ANON), refund("o2", total=500, **ANON)]
    assert ls.lifecycle_stage(ls.project([*orders, *two_partials])) == "customer"
    state = ls.project([*orders, refund("o1", **ANON), refund("o2", total=800, **ANON)])
    assert ls.lifecycle_stage(state) == "lead"  # an order makes a known contact
    assert ls.funnel_stage(state) == "awareness"


def test_a_repeated_order_id_counts_once() -> None:
    state = ls.project([f.order("o1", 1200, **ANON), f.order("o1", 1200, **ANON)])
    assert ls.order_count(state) == 1
    assert ls.lifecycle_stage(state) == "customer"


def test_an_empty_state() -> None:
    state = ls.initial()
    assert ls.lifecycle_stage(state) == "unknown"
    assert ls.score_at(state, f.T0) == 0.0
    assert ls.explain(state) == []
    assert lead_score_summary(state) == {
        "lead_score": 0.0,
        "score_time": None,
        "lifecycle_stage": "unknown",
        "funnel_stage": "awareness",
        "hot": False,
        "score_reasons": "",
    }


# ── funnel ──────────────────────────────────────────────────────────────────

FUNNEL = [
    ("awareness", lambda: [f.page("/", **ANON), email("Email Delivered", **ANON)]),
    ("interest", lambda: [f.page("/", **ANON) for _ in range(3)]),
    ("interest", lambda: [product("Product Viewed", **ANON)]),
    ("interest", lambda: [f.message("x", "x1", **ANON)]),
    ("interest", lambda: [email("Email Opened", **ANON)]),
    ("interest", lambda: [email("Email Link Clicked", **ANON)]),
    ("consideration", lambda: [product("Product Added", **ANON)]),
    ("consideration", lambda: [form(**ANON)]),
    ("consideration", lambda: [f.page("/pricing", **ANON)]),
    ("consideration", lambda: [f.page("/checkout/address", **ANON)]),
    ("purchase", lambda: [f.order("o1", 500, **ANON)]),
    ("retention", lambda: [f.order("o1", 500, **ANON), f.order("o2", 500, **ANON)]),
]


@pytest.mark.parametrize(("stage", "build"), FUNNEL)
def test_funnel_stage(stage: str, build: Any) -> None:
    assert ls.funnel_stage(ls.project(build())) == stage


def test_funnel_highest_stage_wins_whatever_the_order() -> None:
    events = [f.order("o1", 500, **ANON), f.page("/", **ANON), product("Product Added", **ANON)]
    assert ls.funnel_stage(ls.project(events)) == "purchase"
    assert ls.funnel_stage(ls.project(events[::-1])) == "purchase"


def test_two_page_views_are_not_yet_interest() -> None:
    assert ls.funnel_stage(ls.project([f.page("/", **ANON)] * 2)) == "awareness"


# ── explain and summary ─────────────────────────────────────────────────────


def test_explain_orders_by_decayed_points_then_rule_name() -> None:
    views = [
        f.page("/", at=noon(30) - timedelta(minutes=i), message_id=f"v{i}", **ANON)
        for i in range(4)
    ]
    events = [
        f.track("Survey Answered", {"survey_id": "s1"}, at=noon(-30), **ANON),
        form(at=noon(0), message_id="form-old", **ANON),
        *views,
        product("Product Added", at=noon(30), message_id="add", **ANON),
    ]
    items = ls.explain(ls.project(events))
    assert [(i["rule"], i["decayed_points"]) for i in items] == [
        ("form_submitted", 5.0),
        ("product_added", 5.0),
        ("page_view", 4.0),
        ("survey_answered", 1.25),
    ]
    page_item = items[2]
    assert page_item["message_ids"] == ["v0", "v1", "v2"]  # the newest three
    assert page_item["events"] == 4
    assert page_item["day"] == "2026-01-31"
    assert items[0] == {
        "rule": "form_submitted",
        "day": "2026-01-01",
        "events": 1,
        "points": 10.0,
        "decayed_points": 5.0,
        "message_ids": ["form-old"],
    }
    assert [i["rule"] for i in ls.explain(ls.project(events), top=2)] == [
        "form_submitted",
        "product_added",
    ]


def test_explain_as_of_a_later_time() -> None:
    state = ls.project([form(at=noon(0), **ANON)])
    assert ls.explain(state, at=noon(30))[0]["decayed_points"] == 5.0


def test_summary_fills_the_summary_columns() -> None:
    state = ls.project([form(at=noon(0), user_id="u1"), f.page("/cart", at=noon(0), user_id="u1")])
    row = lead_score_summary(state)
    assert set(row) == set(LEAD_SCORE_COLUMNS)
    assert row == {
        "lead_score": 16.0,
        "score_time": noon(0).astimezone(UTC),
        "lifecycle_stage": "lead",
        "funnel_stage": "consideration",
        "hot": False,
        "score_reasons": "form_submitted +10.0, cart_page +5.0, page_view +1.0",
    }
    assert LEAD_SCORE_COLUMNS == {
        "lead_score": "DOUBLE",
        "score_time": "TIMESTAMPTZ",
        "lifecycle_stage": "VARCHAR",
        "funnel_stage": "VARCHAR",
        "hot": "BOOLEAN",
        "score_reasons": "VARCHAR",
    }


def test_last_activity_is_utc_whatever_the_event_offset() -> None:
    jst = timezone(timedelta(hours=9))
    state = ls.project([f.page("/", at=f.T0.astimezone(jst), **ANON)])
    assert state.last_activity == f.T0
    assert state.last_activity is not None and state.last_activity.tzinfo is UTC


def test_to_json_is_orjson_safe_and_exactly_inverse() -> None:
    events = [
        form(**ANON),
        f.order("o1", 1200.5, **ANON),
        refund("o1", total=200, **ANON),
        refund("o2", **ANON),
        f.page("/cart", **ANON),
    ]
    state = ls.project(events)
    data = orjson.loads(orjson.dumps(ls.to_json(state)))
    assert ls.from_json(data) == state
    assert ls.to_json(ls.from_json(data)) == data


def test_from_json_refuses_another_version() -> None:
    with pytest.raises(ValueError, match="version 99"):
        ls.from_json({**ls.to_json(ls.initial()), "version": 99})


# ── rules files ─────────────────────────────────────────────────────────────


def test_default_toml_equals_default_rules() -> None:
    with SCORING_TOML.open("rb") as file:
        data = tomllib.load(file)
    assert Rules.from_mapping(data, "scoring.toml") == DEFAULT_RULES
    assert DEFAULT_RULES.half_life_days == 30
    assert DEFAULT_RULES.hot_threshold == 25


def toml_with(**changes: Any) -> dict[str, Any]:
    """The default TOML with top-level keys replaced (``None`` deletes)."""
    with SCORING_TOML.open("rb") as file:
        data = tomllib.load(file)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def with_rule(index: int, **changes: Any) -> dict[str, Any]:
    data = toml_with()
    rule = data["rule"][index]
    for key, value in changes.items():
        if value is None:
            rule.pop(key)
        else:
            rule[key] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (with_rule(3, points="five"), "scoring.toml: rule[3].points: must be a number"),
        (with_rule(3, points=True), "scoring.toml: rule[3].points: must be a number"),
        (with_rule(0, name=None), "scoring.toml: rule[0].name: is required"),
        (with_rule(1, name="page_view"), "scoring.toml: rule[1].name: 'page_view' is used twice"),
        (with_rule(2, type="click"), "scoring.toml: rule[2].type: must be one of"),
        (with_rule(0, event="Clicked"), "scoring.toml: rule[0].event: only track messages"),
        (
            with_rule(7, event="Email Delivered"),
            "scoring.toml: rule[7].event: 'Email Delivered' is recorded by the shop",
        ),
        (
            with_rule(4, path_prefix="cart"),
            'scoring.toml: rule[4].path_prefix: must start with "/"',
        ),
        (with_rule(5, colour="red"), "scoring.toml: rule[5].colour: unknown key"),
        (with_rule(6, daily_cap=0), "scoring.toml: rule[6].daily_cap: must be a positive number"),
        (with_rule(11, equals=None), "scoring.toml: rule[11].equals: prop and equals go together"),
        (with_rule(11, equals=[1]), "scoring.toml: rule[11].equals: must be a string, number"),
        (with_rule(0, type=None), "scoring.toml: rule[0].type: give a message type"),
        (toml_with(half_life_days=0), "scoring.toml: half_life_days: must be a positive number"),
        (toml_with(hot_threshold="high"), "scoring.toml: hot_threshold: must be a number"),
        (toml_with(half_life=3), "scoring.toml: half_life: unknown key"),
        (toml_with(rule={"name": "x"}), "scoring.toml: rule: must be an array of tables"),
        (toml_with(rule=["x"]), "scoring.toml: rule[0]: must be a table"),
        (toml_with(funnel={"interest_views": 2.5}), "scoring.toml: funnel.interest_views: must be"),
        (toml_with(funnel={"interest_views": 0}), "scoring.toml: funnel.interest_views: must be"),
        (
            toml_with(funnel={"consideration_paths": ["/cart", "checkout"]}),
            "scoring.toml: funnel.consideration_paths[1]: must start with",
        ),
        (toml_with(funnel={"stages": 3}), "scoring.toml: funnel.stages: unknown key"),
    ],
)
def test_from_mapping_errors_name_the_key_path(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as error:
        Rules.from_mapping(data, "scoring.toml")
    assert str(error.value).startswith(message)


def test_from_mapping_defaults_and_funnel_settings() -> None:
    rules = Rules.from_mapping(
        {"funnel": {"interest_views": 5, "consideration_paths": ["/quote"]}, "rule": []}
    )
    assert rules == Rules((), interest_views=5, consideration_paths=("/quote",))
    assert ls.funnel_stage(ls.project([f.page("/quote", **ANON)], rules), rules) == "consideration"
    assert ls.funnel_stage(ls.project([f.page("/", **ANON)] * 4, rules), rules) == "awareness"


def test_rules_default_source_in_messages() -> None:
    with pytest.raises(ValueError, match=r"^<rules>: rule\[0\]\.points: is required"):
        Rules.from_mapping({"rule": [{"name": "x", "type": "page"}]})


# ── the shop's events are not the customer's activity ──────────────────────


def test_a_newsletter_neither_scores_nor_moves_the_last_activity() -> None:
    visit = f.page("/items/1", at=noon(0), **ANON)
    newsletter = email("Email Delivered", at=noon(40), **ANON)
    reply = f.track(
        "Message Sent", {"channel": "line", "channel_user_id": "U1"}, at=noon(41), **ANON
    )
    bounce = f.track("Email Bounced", {"campaign_id": "spring"}, at=noon(42), **ANON)
    state = ls.project([visit, newsletter, reply, bounce])
    assert state.last_activity == noon(0)  # decay starts at the visit, not the newsletter
    assert state == ls.project([visit, newsletter]) == ls.apply(ls.project([visit]), reply)
    assert lead_score_summary(state)["score_time"] == noon(0)
    assert (
        lead_score_summary(state)["lead_score"]
        == lead_score_summary(ls.project([visit]))["lead_score"]
    )
    assert state.known  # we hold their address: the shop emailed them


def test_a_catch_all_track_rule_skips_the_shops_events() -> None:
    rules = Rules((Rule("any_track", 1, type="track"),))
    events = [
        email("Email Delivered", at=noon(0), **ANON),
        f.track("Push Notification Received", {}, at=noon(0), **ANON),
        email("Email Opened", at=noon(1), **ANON),
    ]
    assert points_by_rule(events, rules) == {"any_track": 1.0}  # the open only


def test_a_customer_the_shop_only_contacted_is_a_lead_without_activity() -> None:
    contacted = [email("Email Delivered", at=noon(0), user_id="u1")]
    state = ls.project(contacted)
    assert state.last_activity is None
    assert state.known
    row = lead_score_summary(state)
    assert (row["lead_score"], row["score_time"], row["lifecycle_stage"]) == (0.0, None, "lead")
    # Activity later folds onto it one event at a time as in a batch.
    later = f.page("/", at=noon(3), user_id="u1")
    assert ls.apply(state, later) == ls.project([*contacted, later])
    assert ls.from_json(orjson.loads(orjson.dumps(ls.to_json(state)))) == state
