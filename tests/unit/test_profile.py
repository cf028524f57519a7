"""The customer-profile fold, one event kind and one summary column at a time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import duckdb
import orjson
import pytest

from cdp.runtime import columns as duckdb_summary
from cdp.runtime.columns import CONTACT_DAYS_TYPE, PROFILE_COLUMNS, profile_summary
from projections import profile
from projections.outbound import CONTACT_HORIZON_DAYS
from projections.profile import State
from projections.profile.parts import CampaignKey
from schemas import AnyEvent, decode
from tests.factories import (
    T0,
    at_days,
    envelope,
    identify,
    message,
    order,
    page,
    raw_order,
    track,
)

JST = timezone(timedelta(hours=9))
U: dict[str, Any] = {"user_id": "u1"}


def row(*events: AnyEvent) -> dict[str, Any]:
    return profile_summary(profile.project(events))


def group(group_id: str, **kw: Any) -> AnyEvent:
    return decode(envelope("group", groupId=group_id, traits={"name": "Acme"}, **kw))


def email(name: str, campaign_id: str, variant: str | None = None, **kw: Any) -> AnyEvent:
    props = {"campaign_id": campaign_id}
    if variant is not None:
        props["variant"] = variant
    return track(f"Email {name}", props, **kw)


def refund(order_id: str, total: str | None = None, **kw: Any) -> AnyEvent:
    props = {"order_id": order_id} if total is None else {"order_id": order_id, "total": total}
    return track("Order Refunded", props, **kw)


def ticket(kind: str, ticket_id: str, **props: Any) -> AnyEvent:
    at = props.pop("at", T0)
    return track(f"Support Ticket {kind}", {"ticket_id": ticket_id, **props}, at=at, **U)


def consent(at: datetime, message_id: str | None = None, **purposes: bool) -> AnyEvent:
    return track("Consent Updated", {"consents": purposes}, at=at, message_id=message_id, **U)


# --- the empty profile and the module contract ---------------------------------


def test_initial_profile_is_empty_and_summarises_to_zeros_and_nulls() -> None:
    state = profile.initial()
    assert state == State()
    assert profile.project([]) == state
    summary = profile_summary(state)
    assert list(summary) == list(PROFILE_COLUMNS)
    assert summary["email"] is None
    assert summary["first_seen"] is None
    assert summary["page_views"] == 0
    assert summary["orders_count"] == 0
    assert summary["revenue"] == Decimal("0.00")
    assert summary["avg_order_value"] is None
    assert summary["products_bought"] == []
    assert summary["consent_email"] is None


def test_apply_is_fold_of_one_event_and_leaves_the_input_state_alone() -> None:
    before = profile.project([page("/a", at=T0, **U)])
    snapshot = profile.to_json(before)
    after = profile.apply(before, page("/b", at=at_days(1), **U))
    assert profile.to_json(before) == snapshot
    assert after.page_views == 2
    assert before.page_views == 1


def test_fold_accepts_any_iterable_once() -> None:
    events = [page("/a", at=T0, **U), page("/b", at=at_days(1), **U)]
    assert profile.fold(profile.initial(), iter(events)) == profile.project(events)


# --- traits --------------------------------------------------------------------


def test_identify_traits_fill_the_personal_columns() -> None:
    event = identify(
        at=T0,
        email="hanako@shop.jp",
        phone="090-1234-5678",
        first_name="花子",
        last_name="山田",
        gender="female",
        birthday="1990-04-01",
        traits={
            "firstNameKana": "ハナコ",
            "lastNameKana": "ヤマダ",
            "preferredChannel": "line",
            "address": {
                "state": "東京都",
                "city": "渋谷区",
                "country": "JP",
                "postalCode": "150-0001",
            },
        },
        **U,
    )
    summary = row(event)
    assert summary["email"] == "hanako@shop.jp"
    assert summary["phone"] == "090-1234-5678"
    assert (summary["first_name"], summary["last_name"]) == ("花子", "山田")
    assert (summary["first_name_kana"], summary["last_name_kana"]) == ("ハナコ", "ヤマダ")
    assert summary["name"] == "山田 花子"  # Japanese order when no name trait
    assert summary["gender"] == "female"
    assert summary["birthday"] == date(1990, 4, 1)
    assert summary["region"] == "東京都"
    assert summary["city"] == "渋谷区"
    assert summary["country"] == "JP"
    assert summary["postal_code"] == "150-0001"
    assert summary["preferred_channel"] == "line"


def test_name_trait_wins_over_joined_first_and_last_name() -> None:
    assert row(identify(at=T0, first_name="花子", traits={"name": "Hanako Y."}, **U))["name"] == (
        "Hanako Y."
    )
    assert row(identify(at=T0, first_name="花子", **U))["name"] == "花子"


def test_custom_traits_and_address_extras_are_kept() -> None:
    event = identify(at=T0, traits={"loyaltyTier": "gold", "address": {"ward": "中央"}}, **U)
    state = profile.project([event])
    assert state.custom_traits["loyaltyTier"].value == "gold"
    assert state.custom_traits["address.ward"].value == "中央"
    assert state.custom_traits["loyaltyTier"].at == T0


def test_context_traits_of_any_event_are_traits() -> None:
    event = page("/", at=T0, context={"traits": {"email": "ctx@shop.jp"}}, **U)
    assert row(event)["email"] == "ctx@shop.jp"


def test_identify_traits_win_over_context_traits_of_the_same_event() -> None:
    event = identify(
        at=T0, email="explicit@shop.jp", context={"traits": {"email": "ctx@shop.jp"}}, **U
    )
    assert row(event)["email"] == "explicit@shop.jp"


def test_late_event_does_not_overwrite_a_newer_trait() -> None:
    newer = identify(at=at_days(2), email="new@shop.jp", **U)
    older = identify(at=at_days(1), email="old@shop.jp", **U)
    state = profile.fold(profile.project([newer]), [older])
    assert state.traits["email"].value == "new@shop.jp"
    assert state.traits["email"].at == at_days(2)
    assert state == profile.project([older, newer])


def test_same_instant_traits_are_broken_by_message_id() -> None:
    a = identify(at=T0, message_id="m-a", email="a@shop.jp", **U)
    b = identify(at=T0, message_id="m-b", email="b@shop.jp", **U)
    assert row(a, b)["email"] == row(b, a)["email"] == "b@shop.jp"


def test_null_trait_means_unknown_not_erase() -> None:
    first = identify(at=T0, email="a@shop.jp", traits={"tier": "gold"}, **U)
    later = identify(at=at_days(1), traits={"email": None, "tier": None}, **U)
    state = profile.project([first, later])
    assert state.traits["email"].value == "a@shop.jp"
    assert state.custom_traits["tier"].value == "gold"


def test_times_in_other_offsets_compare_as_instants_and_summarise_in_utc() -> None:
    jst_later = identify(at=(T0 + timedelta(hours=1)).astimezone(JST), email="jst@shop.jp", **U)
    utc_earlier = identify(at=T0, email="utc@shop.jp", **U)
    summary = row(jst_later, utc_earlier)
    assert summary["email"] == "jst@shop.jp"
    assert summary["last_seen"] == T0 + timedelta(hours=1)
    assert summary["last_seen"].tzinfo is UTC


# --- consents ------------------------------------------------------------------


def test_consents_per_purpose_latest_statement_wins() -> None:
    events = [
        consent(T0, email=True, ads=True, line=True),
        consent(at_days(2), ads=False),
        consent(at_days(1), ads=True, sms=False),  # late: must not undo the withdrawal
    ]
    summary = row(*events)
    assert summary["consent_email"] is True
    assert summary["consent_ads"] is False
    assert summary["consent_line"] is True
    assert summary["consent_sms"] is False
    assert summary["consent_analytics"] is None  # never stated
    assert summary["consent_phone"] is None


# --- activity ------------------------------------------------------------------


def test_first_and_last_seen_and_counts_over_all_events() -> None:
    events = [
        page("/", at=at_days(3), **U),
        identify(at=at_days(1), email="a@shop.jp", **U),
        track("Signed Up", at=at_days(5), **U),
        decode(envelope("screen", name="Home", at=at_days(2), **U)),
        decode(envelope("alias", previousId="a-1", at=at_days(4), **U)),
    ]
    state = profile.project(events)
    assert state.first_seen == at_days(1)
    assert state.last_seen == at_days(5)
    assert state.message_counts == {"page": 1, "identify": 1, "track": 1, "screen": 1, "alias": 1}
    assert state.track_counts == {"Signed Up": 1}
    summary = profile_summary(state)
    assert (summary["first_seen"], summary["last_seen"]) == (at_days(1), at_days(5))
    assert summary["events_count"] == 5
    assert summary["screen_views"] == 1


def test_page_views_and_last_page_path() -> None:
    events = [
        page("/cart", at=at_days(2), **U),
        page("/home", at=at_days(1), **U),  # late: not the last page
        page("/top", at=at_days(0), **U),
    ]
    summary = row(*events)
    assert summary["page_views"] == 3
    assert summary["last_page_path"] == "/cart"


def test_page_path_falls_back_to_context_page() -> None:
    event = decode(envelope("page", context={"page": {"path": "/ctx"}}, at=T0, **U))
    assert row(event)["last_page_path"] == "/ctx"


def test_product_views_and_cart_adds_per_product() -> None:
    events = [
        track("Product Viewed", {"product_id": "p1"}, at=at_days(1), **U),
        track("Product Viewed", {"product_id": "p1"}, at=at_days(3), **U),
        track("Product Viewed", {"product_id": "p2"}, at=at_days(2), **U),
        track("Product Added", {"product_id": "p1"}, at=at_days(3), **U),
    ]
    state = profile.project(events)
    assert state.viewed_products["p1"] == (2, at_days(1), at_days(3))
    assert state.viewed_products["p2"].times == 1
    assert state.carted_products["p1"].times == 1
    summary = profile_summary(state)
    assert (summary["product_views"], summary["cart_adds"]) == (3, 1)


def test_forms_submitted_per_form() -> None:
    events = [
        track("Form Submitted", {"form_id": "catalog", "fields": {"a": 1}}, at=T0, **U),
        track("Form Submitted", {"form_id": "catalog"}, at=at_days(1), **U),
    ]
    state = profile.project(events)
    assert state.forms["catalog"].times == 2
    assert profile_summary(state)["forms_submitted"] == 2


def test_unknown_track_events_are_counted_only() -> None:
    state = profile.project([track("Coupon Applied", {"coupon": "X"}, at=T0, **U)])
    assert state.track_counts == {"Coupon Applied": 1}
    assert state.orders == {}


# --- purchases -----------------------------------------------------------------


def test_order_fills_the_purchase_columns() -> None:
    items = [
        {"product_id": "p2", "category": "tea", "price": 1000, "quantity": 2},
        {"product_id": "p1", "category": "sweets", "price": 500},
    ]
    events = [
        order("o1", 2500, products=items, at=at_days(1), **U),
        order("o2", 1000, at=at_days(3), **U),
    ]
    state = profile.project(events)
    assert [order_id for order_id, _, _ in profile.kept_orders(state)] == ["o1", "o2"]
    summary = profile_summary(state)
    assert summary["orders_count"] == 2
    assert summary["revenue"] == Decimal("3500.00")
    assert summary["currency"] == "JPY"
    assert summary["avg_order_value"] == Decimal("1750.00")
    assert summary["first_order_at"] == at_days(1)
    assert summary["last_order_at"] == at_days(3)
    assert summary["products_bought"] == ["p-1", "p1", "p2"]
    assert summary["categories_bought"] == ["sweets", "tea"]


def test_order_lines_keep_ids_categories_quantities_and_prices() -> None:
    items = [{"product_id": "p1", "category": "tea", "price": "1200.5", "quantity": 3}]
    state = profile.project([order("o1", 3601.5, products=items, at=T0, **U)])
    (line,) = state.orders["o1"].lines
    assert line == ("p1", "tea", 3, Decimal("1200.5"))


def test_the_same_order_sent_twice_counts_once_latest_version_placed_first() -> None:
    first = order("o1", 1000, at=at_days(1), **U)
    resend = order("o1", 1200, at=at_days(2), **U)
    for events in ([first, resend], [resend, first]):
        state = profile.project(events)
        assert list(state.orders) == ["o1"]
        assert state.orders["o1"].revenue == Decimal("1200")
        assert state.orders["o1"].placed_at == at_days(1)
        summary = profile_summary(state)
        assert summary["orders_count"] == 1
        assert summary["revenue"] == Decimal("1200.00")
        assert summary["first_order_at"] == summary["last_order_at"] == at_days(1)


def test_full_refund_removes_the_order() -> None:
    summary = row(
        order("o1", 1000, at=at_days(1), **U),
        order("o2", 3000, products=[{"product_id": "p9", "category": "gift"}], at=at_days(2), **U),
        refund("o2", at=at_days(3), **U),
    )
    assert summary["orders_count"] == 1
    assert summary["revenue"] == Decimal("1000.00")
    assert summary["refunds_count"] == 1
    assert summary["products_bought"] == ["p-1"]
    assert summary["last_order_at"] == at_days(1)


def test_partial_refunds_reduce_revenue_and_are_capped_at_the_order() -> None:
    partial = row(
        order("o1", 1000, at=T0, **U),
        refund("o1", "300", at=at_days(1), **U),
        refund("o1", "200.5", at=at_days(2), **U),
    )
    assert partial["orders_count"] == 1
    assert partial["revenue"] == Decimal("499.50")
    assert partial["refunds_count"] == 2

    beyond = row(
        order("o1", 1000, at=T0, **U),
        order("o2", 500, at=T0, **U),
        refund("o1", "700", at=at_days(1), **U),
        refund("o1", "700", at=at_days(2), **U),
    )
    assert beyond["orders_count"] == 1  # o1 refunded in full by two partial refunds
    assert beyond["revenue"] == Decimal("500.00")


def test_refund_before_its_order_still_applies() -> None:
    summary = row(refund("o1", at=T0, **U), order("o1", 1000, at=at_days(1), **U))
    assert summary["orders_count"] == 0
    assert summary["revenue"] == Decimal("0.00")
    assert summary["avg_order_value"] is None


def test_revenue_is_in_the_currency_most_orders_use() -> None:
    usd = {**raw_order("o3", 20, at=T0, **U)}
    usd["properties"]["currency"] = "USD"
    summary = row(order("o1", 1000, at=T0, **U), order("o2", 2001, at=T0, **U), decode(usd))
    assert summary["orders_count"] == 3
    assert summary["currency"] == "JPY"
    assert summary["revenue"] == Decimal("3001.00")
    assert summary["avg_order_value"] == Decimal("1500.50")


def test_order_completed_v1_is_folded_after_upcasting() -> None:
    raw = envelope(
        "track",
        event="Order Completed",
        schemaVersion=1,
        properties={"orderId": "o1", "total": 1500, "products": [{"id": "p7"}]},
        at=T0,
        **U,
    )
    summary = row(decode(raw))
    assert summary["revenue"] == Decimal("1500.00")
    assert summary["products_bought"] == ["p7"]


# --- campaigns, email, SNS -----------------------------------------------------


def test_campaign_touches_from_context_campaign() -> None:
    def touch(source: str, name: str, at: datetime) -> AnyEvent:
        return page("/", at=at, context={"campaign": {"source": source, "name": name}}, **U)

    events = [
        touch("instagram", "spring", at_days(2)),
        touch("google", "spring", at_days(1)),
        touch("google", "spring", at_days(4)),
        touch("line", "sale", at_days(3)),
    ]
    state = profile.project(events)
    google = state.campaigns[CampaignKey("google", None, "spring")]
    assert google == (2, at_days(1), at_days(4))
    summary = profile_summary(state)
    assert summary["campaigns_touched"] == 3
    assert summary["first_utm_source"] == "google"
    assert summary["last_utm_source"] == "google"


def test_email_behaviour_per_campaign() -> None:
    events = [
        email("Delivered", "c1", "A", at=T0, **U),
        email("Opened", "c1", "A", at=at_days(1), **U),
        email("Opened", "c1", at=at_days(2), **U),
        email("Link Clicked", "c1", at=at_days(2), **U),
        email("Delivered", "c2", "B", at=at_days(3), **U),
    ]
    state = profile.project(events)
    c1 = state.emails["c1"]
    assert (c1.delivered, c1.opened, c1.clicked) == (1, 2, 1)
    assert c1.variant is not None and c1.variant.value == "A"
    assert c1.last_at == at_days(2)
    summary = profile_summary(state)
    # Distinct campaigns, as email tools report unique opens and clicks.
    assert (summary["emails_delivered"], summary["emails_opened"]) == (2, 1)
    assert summary["emails_clicked"] == 1


def test_sns_accounts_counts_and_latest_message() -> None:
    events = [
        message("line", "U-old", "こんにちは", at=T0, **U),
        message("line", "U-new", "在庫ありますか", at=at_days(2), **U),
        track(
            "Message Sent",
            {"channel": "line", "channel_user_id": "U-new", "text": "あります"},
            at=at_days(1),
            **U,
        ),
        message("instagram", "ig-1", at=at_days(3), **U),
    ]
    state = profile.project(events)
    line = state.sns["line"]
    assert (line.received, line.sent) == (2, 1)
    assert line.last.value == ("received", "U-new", "在庫ありますか")
    summary = profile_summary(state)
    assert summary["line_user_id"] == "U-new"
    assert summary["instagram_user_id"] == "ig-1"
    assert summary["x_user_id"] is None
    assert summary["sns_messages"] == 4
    assert summary["last_sns_message_at"] == at_days(3)


# --- support, surveys, groups --------------------------------------------------


def test_tickets_open_closed_and_reopened() -> None:
    events = [
        ticket("Opened", "t1", subject="届かない", at=T0),
        ticket("Closed", "t1", satisfaction=4, at=at_days(1)),
        ticket("Opened", "t2", at=at_days(1)),
        ticket("Closed", "t3", at=at_days(1)),
        ticket("Opened", "t3", at=at_days(2)),  # reopened
    ]
    state = profile.project(events)
    t1 = state.tickets["t1"]
    assert (t1.opened_at, t1.closed_at, t1.status.value) == (T0, at_days(1), "closed")
    assert t1.subject is not None and t1.subject.value == "届かない"
    assert t1.satisfaction is not None and t1.satisfaction.value == 4
    summary = profile_summary(state)
    assert (summary["tickets_open"], summary["tickets_closed"]) == (2, 1)


def test_survey_answers_per_survey_and_latest_nps() -> None:
    def survey(survey_id: str, at: datetime, nps: int | None, **answers: Any) -> AnyEvent:
        props = {"survey_id": survey_id, "answers": answers, "nps": nps}
        return track("Survey Answered", props, at=at, **U)

    events = [
        survey("s1", at_days(1), 9, q1="yes"),
        survey("s1", at_days(3), None, q1="no"),
        survey("s2", at_days(2), 6),
    ]
    state = profile.project(events)
    assert state.surveys["s1"].value.answers == {"q1": "no"}
    summary = profile_summary(state)
    assert summary["surveys_answered"] == 2
    assert summary["last_nps"] == 6  # the latest survey that asked for it


def test_groups_joined() -> None:
    summary = row(group("g2", at=at_days(1), **U), group("g1", at=T0, **U), group("g2", at=T0, **U))
    assert summary["group_ids"] == ["g1", "g2"]
    assert profile.project([group("g2", at=at_days(1), **U), group("g2", at=T0, **U)]).groups == {
        "g2": T0
    }


# --- combine, snapshots, the summary contract ----------------------------------


def test_combine_two_customers_equals_folding_all_their_events() -> None:
    browser = [
        page("/a", at=T0, anonymous_id="a1"),
        identify(at=at_days(1), email="x@shop.jp", **U),
    ]
    buyer = [order("o1", 1000, at=at_days(2), **U), message("line", "U1", at=at_days(3), **U)]
    merged = profile.combine(profile.project(browser), profile.project(buyer))
    assert merged == profile.project(browser + buyer)
    assert profile.combine(profile.initial(), merged) == merged


def rich_state() -> State:
    return profile.project(
        [
            identify(
                at=T0,
                email="a@shop.jp",
                birthday="1990-04-01",
                traits={"age": 35, "tier": {"level": 2}, "address": {"state": "大阪府"}},
                **U,
            ),
            page("/", at=at_days(1), context={"campaign": {"source": "google"}}, **U),
            order("o1", 1000.5, at=at_days(2), **U),
            refund("o1", "0.5", at=at_days(3), **U),
            email("Opened", "c1", "A", at=at_days(1), **U),
            email("Delivered", "c2", at=at_days(1), **U),
            message("x", "x-1", at=at_days(1), **U),
            ticket("Opened", "t1", subject="s", at=at_days(1)),
            track("Survey Answered", {"survey_id": "s1", "nps": 10}, at=at_days(1), **U),
            consent(at_days(1), email=True),
            group("g1", at=T0, **U),
            track("Form Submitted", {"form_id": "f1"}, at=T0, **U),
            track("Product Added", {"product_id": "p1"}, at=T0, **U),
        ]
    )


def test_json_snapshot_round_trips_exactly() -> None:
    state = rich_state()
    data = orjson.loads(orjson.dumps(profile.to_json(state)))
    assert profile.from_json(data) == state
    assert profile.to_json(profile.from_json(data)) == data
    assert data["traits"]["birthday"]["value"] == "1990-04-01"
    assert data["orders"]["o1"]["revenue"] == "1000.5"


def test_from_json_refuses_another_snapshot_version() -> None:
    data = profile.to_json(profile.initial())
    with pytest.raises(ValueError, match="version 99"):
        profile.from_json({**data, "version": 99})


def test_a_version_1_snapshot_asks_for_a_replay() -> None:
    # Version 1 counted the shop's contacts as activity: its last_seen cannot be reused.
    data = profile.to_json(profile.initial())
    old = {k: v for k, v in data.items() if k not in ("last_contacted", "contacts")}
    with pytest.raises(ValueError, match=rf"version 1 is not {profile.JSON_VERSION}: .*cdp replay"):
        profile.from_json({**old, "version": 1})


#: Columns that always have a value: counts, lists and the lifetime value.
NOT_NULL = {
    name
    for name, sql_type in PROFILE_COLUMNS.items()
    if sql_type in {"INTEGER", "BIGINT", "VARCHAR[]", CONTACT_DAYS_TYPE} and name != "last_nps"
} | {"revenue"}


def conforms(name: str, value: Any) -> bool:
    """Whether a summary value is what its column takes."""
    if value is None:
        return name not in NOT_NULL
    match PROFILE_COLUMNS[name]:
        case "VARCHAR":
            return isinstance(value, str)
        case "INTEGER" | "BIGINT":
            return isinstance(value, int) and not isinstance(value, bool)
        case "BOOLEAN":
            return isinstance(value, bool)
        case "DATE":
            return isinstance(value, date) and not isinstance(value, datetime)
        case "TIMESTAMPTZ":
            return isinstance(value, datetime) and value.tzinfo is not None
        case "DECIMAL(18,2)":
            return isinstance(value, Decimal) and value.as_tuple().exponent == -2
        case "VARCHAR[]":
            return isinstance(value, list) and all(isinstance(v, str) for v in value)
        case duckdb_summary.CONTACT_DAYS_TYPE:
            return isinstance(value, list) and all(
                v.keys() == {"day", "contacts"}
                and type(v["day"]) is date
                and isinstance(v["contacts"], int)
                and v["contacts"] > 0
                for v in value
            )
    return False


@pytest.mark.parametrize("state", [profile.initial(), rich_state()], ids=["empty", "rich"])
def test_summary_values_have_their_column_types(state: State) -> None:
    summary = profile_summary(state)
    assert summary.keys() == PROFILE_COLUMNS.keys()
    wrong = {k: v for k, v in summary.items() if not conforms(k, v)}
    assert wrong == {}


def test_summary_row_loads_into_a_duckdb_profiles_table_unchanged() -> None:
    summary = profile_summary(rich_state())
    columns = ", ".join(f'"{name}" {sql_type}' for name, sql_type in PROFILE_COLUMNS.items())
    with duckdb.connect() as con:  # in memory
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"CREATE TABLE profiles ({columns})")
        marks = ", ".join("?" for _ in PROFILE_COLUMNS)
        con.execute(f"INSERT INTO profiles VALUES ({marks})", list(summary.values()))
        (stored,) = con.execute("SELECT * FROM profiles").fetchall()
    assert dict(zip(PROFILE_COLUMNS, stored, strict=True)) == summary


# --- the customer's activity vs the shop's contacts ------------------------------


def sent(at: datetime, **kw: Any) -> AnyEvent:
    props = {"channel": "line", "channel_user_id": "U1", "text": "セールのお知らせ"}
    return track("Message Sent", props, at=at, **kw)


def test_a_newsletter_to_an_inactive_customer_is_a_contact_not_activity() -> None:
    """The issue's case: silent since June, the July newsletter must not make them "seen"."""
    june = datetime(2026, 6, 10, 12, tzinfo=UTC)
    events = [
        page("/", at=datetime(2026, 3, 1, tzinfo=UTC), **U),
        order("o1", 3000, at=june, **U),
        email("Delivered", "nl-07", at=datetime(2026, 7, 1, 1, tzinfo=JST), **U),
        email("Delivered", "nl-08", at=datetime(2026, 8, 1, 9, tzinfo=UTC), **U),
        sent(datetime(2026, 8, 1, 10, tzinfo=UTC), **U),
        track("Push Notification Received", {}, at=datetime(2026, 8, 3, tzinfo=UTC), **U),
        track("Email Bounced", {"campaign_id": "nl-09"}, at=datetime(2026, 9, 1, tzinfo=UTC), **U),
        refund("o1", at=datetime(2026, 9, 2, tzinfo=UTC), **U),
    ]
    summary = row(*events)
    assert summary["first_seen"] == datetime(2026, 3, 1, tzinfo=UTC)
    assert summary["last_seen"] == june  # not the newsletters, the bounce or the refund
    assert summary["last_contacted_at"] == datetime(2026, 8, 3, tzinfo=UTC)  # not the bounce
    assert summary["contacts_by_day"] == [
        {"day": date(2026, 6, 30), "contacts": 1},  # 01:00 in Tokyo is the day before in UTC
        {"day": date(2026, 8, 1), "contacts": 2},
        {"day": date(2026, 8, 3), "contacts": 1},
    ]
    assert summary["events_count"] == len(events)  # every event still counts as an event
    assert summary["emails_delivered"] == 2


def test_a_customer_the_shop_only_contacted_was_never_seen() -> None:
    summary = row(email("Delivered", "nl-07", at=T0, **U), sent(at_days(1), **U))
    assert (summary["first_seen"], summary["last_seen"]) == (None, None)
    assert summary["last_contacted_at"] == at_days(1)


def test_an_email_opened_or_a_message_received_is_the_customers_activity() -> None:
    summary = row(
        email("Delivered", "c1", at=T0, **U),
        email("Opened", "c1", at=at_days(1), **U),
        message("line", "U1", at=at_days(2), **U),
    )
    assert (summary["first_seen"], summary["last_seen"]) == (at_days(1), at_days(2))
    assert summary["last_contacted_at"] == T0


def test_contact_days_beyond_the_horizon_are_dropped_in_any_order() -> None:
    horizon = CONTACT_HORIZON_DAYS
    first = email("Delivered", "c1", at=T0, **U)
    edge = email("Delivered", "c2", at=at_days(1), **U)
    last = email("Delivered", "c3", at=at_days(horizon), **U)  # day 1 is the oldest kept
    state = profile.project([first, edge, last])
    assert sorted(state.contacts) == [at_days(1).date(), at_days(horizon).date()]
    assert profile.project([last, edge, first]) == state
    assert profile.fold(profile.project([last]), [first, edge]) == state
    split = profile.combine(profile.project([first]), profile.project([edge, last]))
    assert split == state
