"""Fold laws of the customer profile, on generated event histories of one customer.

Order independence is what makes replay deterministic and lets partitions and
merges fold in any order, so it is tested as laws: any permutation gives an
equal state, folding in two halves equals folding at once, combining two
customers equals folding all their events, ``fold`` equals ``reduce(apply)``;
and the JSON snapshot is an exact inverse.
"""

from __future__ import annotations

import functools
from collections import Counter
from datetime import UTC, timedelta, timezone
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.runtime.columns import PROFILE_COLUMNS, profile_summary
from projections import profile
from projections.outbound import CONTACT_EVENTS, CONTACT_HORIZON_DAYS, SHOP_EVENTS
from schemas import AnyEvent, decode
from tests.factories import at_days, envelope, raw_identify, raw_order, raw_page, raw_track
from tests.unit.test_profile import conforms

LAWS = settings(max_examples=100, deadline=None)
JST = timezone(timedelta(hours=9))
ID = {"user_id": "u1"}

# Few days and few keys on purpose: ties in event time (broken by messageId),
# resent orders, refunds of the same order and reopened tickets all happen.
# Days 95 and 200 put contacts beyond the contact horizon of earlier ones.
times = st.builds(
    lambda day, hour, tz: (at_days(day) + timedelta(hours=hour)).astimezone(tz),
    st.sampled_from([0, 1, 2, 3, 0, 1, 95, 200]),
    st.sampled_from([0, 0, 5]),
    st.sampled_from([UTC, JST]),
)
money = st.sampled_from(["0", "1000", "2500.5", "99.9999"])


@st.composite
def contexts(draw: st.DrawFn) -> dict[str, Any] | None:
    context: dict[str, Any] = {}
    if draw(st.booleans()):
        context["campaign"] = {
            "source": draw(st.sampled_from(["google", "line", None])),
            "medium": draw(st.sampled_from(["cpc", None])),
            "name": draw(st.sampled_from(["spring", "sale"])),
        }
    if draw(st.integers(0, 3)) == 0:
        context["traits"] = {"email": draw(st.sampled_from(["c1@shop.jp", "c2@shop.jp"]))}
    return context or None


@st.composite
def trait_sets(draw: st.DrawFn) -> dict[str, Any]:
    pool: dict[str, st.SearchStrategy[Any]] = {
        "email": st.sampled_from(["a@shop.jp", "b@shop.jp"]),
        "phone": st.sampled_from(["090-1234-5678", "+81 80 1111 2222"]),
        "firstName": st.sampled_from(["花子", "太郎"]),
        "lastName": st.sampled_from(["山田", "佐藤"]),
        "gender": st.sampled_from(["female", "male"]),
        "birthday": st.sampled_from(["1990-04-01", "1985-12-24"]),
        "preferredChannel": st.sampled_from(["email", "line"]),
        "address": st.fixed_dictionaries(
            {}, optional={"state": st.sampled_from(["東京都", "大阪府"]), "ward": st.just("中央")}
        ),
        "tier": st.sampled_from(["gold", "silver", None]),
        "tags": st.lists(st.sampled_from(["vip", "b2b"]), max_size=2),
    }
    names = draw(st.sets(st.sampled_from(sorted(pool)), max_size=4))
    return {name: draw(pool[name]) for name in sorted(names)}


#: One tag per event class the profile folds (message types, then typed tracks).
KINDS = [
    "identify",
    "page",
    "screen",
    "group",
    "alias",
    "track",
    "Product Viewed",
    "Product Added",
    "Order Completed",
    "Order Refunded",
    "Form Submitted",
    "Message Received",
    "Message Sent",
    "Email Delivered",
    "Email Opened",
    "Email Link Clicked",
    "Survey Answered",
    "Support Ticket Opened",
    "Support Ticket Closed",
    "Consent Updated",
    "Deal Created",
    "Deal Stage Changed",
    "Deal Won",
    "Deal Lost",
    "Deal Updated",
    "Sales Activity Logged",
]
#: Deal property pools: few deals and values, so ties and overwrites happen.
DEAL_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "pipeline": st.sampled_from(["wholesale", "corporate"]),
    "stage": st.sampled_from(["qualified", "proposal", "negotiation"]),
    "name": st.sampled_from(["卸 春", "wholesale 2026"]),
    "amount": money,
    "currency": st.sampled_from(["JPY", "JPY", "USD"]),
    "owner": st.sampled_from(["sato", "suzuki"]),
    "close_date": st.sampled_from(["2026-03-31", "2026-06-30"]),
    "crm": st.sampled_from(["hubspot", "salesforce"]),
}


@st.composite
def events(draw: st.DrawFn, kinds: list[str] = KINDS) -> AnyEvent:
    """One valid event of any kind the profile folds (of ``kinds``), with a fresh messageId."""
    kw: dict[str, Any] = {"at": draw(times), "context": draw(contexts()), **ID}
    kind = draw(st.sampled_from(kinds))

    def pick(options: list[Any]) -> Any:
        return draw(st.sampled_from(options))

    match kind:
        case "identify":
            raw = raw_identify(traits=draw(trait_sets()), **kw)
        case "page":
            raw = raw_page(pick(["/", "/cart", "/p/1"]), **kw)
        case "screen":
            raw = envelope("screen", name="Home", **kw)
        case "group":
            raw = envelope("group", groupId=pick(["g1", "g2"]), **kw)
        case "alias":
            raw = envelope("alias", previousId="anon-1", **kw)
        case "track":  # the customer's, a contact by the shop, or another shop record
            names = ["Signed Up", "Coupon Applied", "Push Notification Received", "Email Bounced"]
            raw = raw_track(pick(names), {}, **kw)
        case "Product Viewed" | "Product Added":
            product = {"product_id": pick(["p1", "p2"]), "category": pick(["tea", None])}
            raw = raw_track(kind, product, **kw)
        case "Order Completed":
            line = {"product_id": pick(["p1", "p2"]), "category": "tea"}
            raw = raw_order(pick(["o1", "o2", "o3"]), 0, [line], **kw)
            raw["properties"]["revenue"] = draw(money)
            raw["properties"]["currency"] = pick(["JPY", "JPY", "USD"])
        case "Order Refunded":
            props = {"order_id": pick(["o1", "o2", "o9"])}
            if draw(st.booleans()):
                props["total"] = draw(money)
            raw = raw_track(kind, props, **kw)
        case "Form Submitted":
            raw = raw_track(kind, {"form_id": pick(["f1", "f2"])}, **kw)
        case "Message Received" | "Message Sent":
            props = {
                "channel": pick(["line", "x", "instagram"]),
                "channel_user_id": pick(["U1", "U2"]),
                "text": pick(["hi", None]),
            }
            raw = raw_track(kind, props, **kw)
        case "Email Delivered" | "Email Opened" | "Email Link Clicked":
            props = {"campaign_id": pick(["c1", "c2"]), "variant": pick(["A", "B", None])}
            raw = raw_track(kind, props, **kw)
        case "Survey Answered":
            props = {"survey_id": pick(["s1", "s2"]), "answers": {"q1": pick(["yes", "no"])}}
            props["nps"] = draw(st.none() | st.integers(0, 10))
            raw = raw_track(kind, props, **kw)
        case "Support Ticket Opened" | "Support Ticket Closed":
            props = {"ticket_id": pick(["t1", "t2"]), "subject": pick(["遅延", None])}
            props["satisfaction"] = draw(st.none() | st.integers(1, 5))
            raw = raw_track(kind, props, **kw)
        case "Deal Created" | "Deal Stage Changed" | "Deal Won" | "Deal Lost" | "Deal Updated":
            fields = dict(DEAL_FIELDS)
            if kind in ("Deal Lost", "Deal Updated"):
                fields["lost_reason"] = st.sampled_from(["price", "timing"])
            props = draw(st.fixed_dictionaries({}, optional=fields))
            props["deal_id"] = pick(["d1", "d2", "d3"])
            if kind == "Deal Stage Changed":
                props["stage"] = draw(DEAL_FIELDS["stage"])
            raw = raw_track(kind, props, **kw)
        case "Sales Activity Logged":
            props = {
                "activity_id": pick(["a1", "a2"]),
                "activity_type": pick(["visit", "call", "meeting"]),
                "owner": pick(["sato", "tanaka", None]),
                "deal_id": pick(["d1", None]),
            }
            raw = raw_track(kind, props, **kw)
        case _:
            purposes = ["email", "sms", "line", "ads", "analytics", "phone"]
            consents = draw(st.dictionaries(st.sampled_from(purposes), st.booleans(), min_size=1))
            raw = raw_track(kind, {"consents": consents}, **kw)
    return decode(raw)


histories = st.lists(events(), max_size=20)
SALES_KINDS = [k for k in KINDS if k.startswith(("Deal ", "Sales "))]
#: Sales events only: edits, late edits and status changes of the same few deals meet often.
sales_histories = st.lists(events(SALES_KINDS), max_size=14)


@LAWS
@given(histories, st.data())
def test_any_permutation_folds_to_an_equal_state(history: list[AnyEvent], data: Any) -> None:
    shuffled = data.draw(st.permutations(history))
    state = profile.project(history)
    assert profile.project(shuffled) == state
    assert profile_summary(profile.project(shuffled)) == profile_summary(state)


@LAWS
@given(histories, st.data())
def test_folding_in_two_halves_equals_folding_at_once(history: list[AnyEvent], data: Any) -> None:
    cut = data.draw(st.integers(0, len(history)))
    a, b = history[:cut], history[cut:]
    first_half = profile.fold(profile.initial(), a)
    before = profile.to_json(first_half)
    assert profile.fold(first_half, b) == profile.project(history)
    # The builder copies maps before writing: the state it started from is untouched.
    assert profile.to_json(first_half) == before


@LAWS
@given(histories, st.data())
def test_combine_equals_folding_the_union(history: list[AnyEvent], data: Any) -> None:
    sides = data.draw(st.lists(st.integers(0, 2), min_size=len(history), max_size=len(history)))
    a, b, c = ([e for e, side in zip(history, sides, strict=True) if side == n] for n in range(3))
    pa, pb, pc = profile.project(a), profile.project(b), profile.project(c)
    combine = profile.combine
    assert combine(pa, pb) == profile.project(a + b)
    assert combine(pa, pb) == combine(pb, pa)
    assert combine(combine(pa, pb), pc) == combine(pa, combine(pb, pc)) == profile.project(history)
    assert combine(pa, profile.initial()) == pa


@LAWS
@given(histories)
def test_fold_equals_reduce_of_apply(history: list[AnyEvent]) -> None:
    reduced = functools.reduce(profile.apply, history, profile.initial())
    assert profile.fold(profile.initial(), history) == reduced


@LAWS
@given(histories)
def test_json_snapshot_round_trips_through_orjson(history: list[AnyEvent]) -> None:
    state = profile.project(history)
    data = profile.to_json(state)
    assert profile.from_json(data) == state
    loaded = orjson.loads(orjson.dumps(data))
    assert profile.from_json(loaded) == state
    assert profile.to_json(profile.from_json(loaded)) == loaded


@LAWS
@given(histories)
def test_summary_has_exactly_the_columns_with_their_types(history: list[AnyEvent]) -> None:
    summary = profile_summary(profile.project(history))
    assert list(summary) == list(PROFILE_COLUMNS)
    assert {k: v for k, v in summary.items() if not conforms(k, v)} == {}
    # Written from the definitions (projections.outbound), not from the fold.
    seen = [e.timestamp for e in history if getattr(e, "event", None) not in SHOP_EVENTS]
    assert summary["first_seen"] == min(seen, default=None)
    assert summary["last_seen"] == max(seen, default=None)
    contacts = [e.timestamp for e in history if getattr(e, "event", None) in CONTACT_EVENTS]
    assert summary["last_contacted_at"] == max(contacts, default=None)
    days = Counter(t.astimezone(UTC).date() for t in contacts)
    if contacts:
        horizon = max(contacts).astimezone(UTC).date() - timedelta(days=CONTACT_HORIZON_DAYS)
        days = Counter({day: n for day, n in days.items() if day > horizon})
    assert summary["contacts_by_day"] == [
        {"day": d, "contacts": n} for d, n in sorted(days.items())
    ]
    assert summary["events_count"] == len(history)


def test_generated_histories_cover_every_event_kind() -> None:
    """Guard the generator: the laws mean little if some kinds never appear."""
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(events())
    def collect(event: AnyEvent) -> None:
        seen.add(type(event).__name__)

    collect()
    assert len(seen) == len(KINDS), sorted(seen)
