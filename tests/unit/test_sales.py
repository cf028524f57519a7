"""Sales events (schemas.sales) and the profile's sales part, written from the contract."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdp.runtime.columns import profile_summary
from cdp.services.ingest import to_record
from projections import lead_score, profile
from projections.profile.sales import Deal
from schemas import AnyEvent, DealLost, DealUpdated, DealWon, EventValidationError, decode
from schemas.sales import DEAL_STATUS, contact_anonymous_id
from tests.factories import at_days, raw_order, raw_track
from tests.unit.test_profile_properties import LAWS, histories, sales_histories

EMAIL = {"context": {"traits": {"email": "buyer@cafe.example.co.jp"}}}


def deal(event: str, deal_id: str, day: float, **props: Any) -> AnyEvent:
    return decode(raw_track(event, {"deal_id": deal_id, **props}, at=at_days(day), user_id="b1"))


def test_a_sales_event_may_be_named_by_its_email_alone() -> None:
    event = decode(raw_track("Deal Won", {"deal_id": "D1", "amount": "120000"}, **EMAIL))
    assert isinstance(event, DealWon) and event.properties.currency == "JPY"
    assert event.properties.amount == Decimal(120000)
    with pytest.raises(EventValidationError, match="needs userId, or an email or phone"):
        decode(raw_track("Deal Won", {"deal_id": "D1"}, message_id="m-none"))
    with pytest.raises(EventValidationError, match="needs userId, or an email or phone"):
        decode(raw_track("Deal Won", {"deal_id": "D1"}, context={"traits": {"email": "null"}}))


@pytest.mark.parametrize("name", [[], {"a": 1}, 7, None])
def test_an_event_name_that_is_no_string_is_refused_not_a_crash(name: object) -> None:
    """The contact id is looked for before validation: a name of any JSON type
    must reach validation, which names the field (the collector answered 500)."""
    raw = {"type": "track", "event": name, "messageId": "m-1", **EMAIL}
    assert contact_anonymous_id(raw) is None
    with pytest.raises(EventValidationError, match="event"):
        to_record(raw, datetime(2026, 12, 6, tzinfo=UTC), "web")


@pytest.mark.parametrize(
    ("event", "props", "path"),
    [
        ("Deal Stage Changed", {"deal_id": "D1"}, "properties.stage"),
        ("Deal Created", {"deal_id": "D1", "amount": -1}, "properties.amount"),
        ("Deal Created", {"deal_id": "D1", "currency": "yen"}, "properties.currency"),
        ("Deal Lost", {"deal_id": "D1", "close_date": "someday"}, "properties.close_date"),
        (
            "Sales Activity Logged",
            {"activity_id": "A1", "activity_type": "fax"},
            "properties.activity_type",
        ),
        ("Sales Activity Logged", {"activity_type": "call"}, "properties.activity_id"),
    ],
)
def test_contract_violations_name_the_field(event: str, props: dict[str, Any], path: str) -> None:
    with pytest.raises(EventValidationError) as caught:
        decode(raw_track(event, props, user_id="b1"))
    assert path in [p.path for p in caught.value.problems]


def _expected(history: list[AnyEvent]) -> dict[str, Any]:
    """The summary columns written from the contract, not from the fold."""
    deals: dict[str, dict[str, Any]] = {}
    stamp = lambda e: (e.timestamp, e.message_id)  # noqa: E731
    for e in sorted(history, key=stamp):  # the later event overwrites what it states
        if type(e) in DEAL_STATUS or isinstance(e, DealUpdated):
            # A deal known only from updates is open; an update never sets the status.
            d = deals.setdefault(e.properties.deal_id, {"status": "open"})  # type: ignore[attr-defined]
            if type(e) in DEAL_STATUS:
                d["status"] = DEAL_STATUS[type(e)]
            if isinstance(e, DealWon):  # sorted: the first seen is the earliest
                d.setdefault("won_at", e.timestamp)
            if e.properties.amount is not None:  # type: ignore[attr-defined]
                d["amount"] = (e.properties.amount, e.properties.currency)  # type: ignore[attr-defined]
    names = (
        "Deal Created",
        "Deal Stage Changed",
        "Deal Won",
        "Deal Lost",
        "Deal Updated",
        "Sales Activity Logged",
    )
    sales = sorted((e for e in history if getattr(e, "event", None) in names), key=stamp)
    owners = [e.properties.owner for e in sales if e.properties.owner is not None]  # type: ignore[attr-defined]
    stages = [e.properties.stage for e in sales if getattr(e.properties, "stage", None)]  # type: ignore[attr-defined]
    states = Counter(d["status"] for d in deals.values())

    def jpy(status: str) -> Decimal:
        return sum(
            (
                d["amount"][0]
                for d in deals.values()
                if d["status"] == status and d.get("amount", (0, ""))[1] == "JPY"
            ),
            Decimal(0),
        ).quantize(Decimal("0.01"))

    return {
        "deals_count": len(deals),
        "open_deals": states["open"],
        "deals_won": states["won"],
        "deals_lost": states["lost"],
        "won_revenue": jpy("won"),
        "open_deal_value": jpy("open"),
        "first_won_at": min(
            (d["won_at"] for d in deals.values() if d["status"] == "won"), default=None
        ),
        "last_sales_touch_at": max((e.timestamp for e in sales), default=None),
        "sales_owner": owners[-1] if owners else None,
        "last_deal_stage": stages[-1] if stages else None,
    }


@LAWS
@given(histories | sales_histories)
def test_sales_columns_follow_the_contract(history: list[AnyEvent]) -> None:
    row = profile_summary(profile.project(history))
    assert {k: row[k] for k in _expected(history)} == _expected(history)


@LAWS
@given(sales_histories, st.data())
def test_sales_fold_laws_where_edits_and_status_changes_meet(
    history: list[AnyEvent], data: st.DataObject
) -> None:
    """The profile laws again, over histories dense in deal events of the same deals."""
    state = profile.project(history)
    assert profile.project(data.draw(st.permutations(history))) == state
    cut = data.draw(st.integers(0, len(history)))
    assert profile.fold(profile.fold(profile.initial(), history[:cut]), history[cut:]) == state
    assert profile.combine(profile.project(history[:cut]), profile.project(history[cut:])) == state
    assert profile.from_json(orjson.loads(orjson.dumps(profile.to_json(state)))) == state
    assert lead_score.project(data.draw(st.permutations(history))) == lead_score.project(history)


def test_a_won_deal_makes_a_customer_and_a_later_loss_undoes_it() -> None:
    created = deal("Deal Created", "D1", 0, amount=300000)
    won = deal("Deal Won", "D1", 5, amount=280000)
    stages = lambda events: lead_score.lifecycle_stage(lead_score.project(events))  # noqa: E731
    assert stages([created]) == "lead"  # the SFA knows them: a known contact
    assert stages([won, created]) == "customer"
    assert lead_score.funnel_stage(lead_score.project([created, won])) == "purchase"
    # The SFA reopened and lost it later: the latest deal event decides.
    lost = deal("Deal Lost", "D1", 9, lost_reason="price")
    assert isinstance(lost, DealLost) and stages([lost, won, created]) == "lead"
    order = decode(raw_order("o1", 5000, user_id="b1", at=at_days(20)))
    assert stages([created, won, order]) == "repeater"  # a deal won and an order
    # The SFA's records are the shop's: no activity, no points.
    assert lead_score.project([created, won]).last_activity is None
    assert profile.project([created, won]).last_seen is None


def test_an_update_changes_the_fields_not_the_status() -> None:
    created = deal("Deal Created", "D1", 0, amount=300000, owner="sato")
    won = deal("Deal Won", "D1", 5, amount=280000)
    edit = deal("Deal Updated", "D1", 7, amount=290000, name="卸 春", owner="suzuki")
    assert isinstance(edit, DealUpdated)
    row = profile_summary(profile.project([created, won, edit]))
    # Still won (not reopened), with the edited amount; the edit is the latest touch.
    assert (row["deals_won"], row["open_deals"], row["won_revenue"]) == (1, 0, Decimal(290000))
    assert row["sales_owner"] == "suzuki" and row["last_sales_touch_at"] == edit.timestamp
    assert profile.project([edit, won, created]).deals["D1"].name.value == "卸 春"  # type: ignore[union-attr]
    # The lifecycle is decided by the status events alone: still a customer.
    stages = lambda events: lead_score.lifecycle_stage(lead_score.project(events))  # noqa: E731
    assert stages([created, won, edit]) == stages([edit, won, created]) == "customer"


def test_deal_won_sent_again_on_an_edit_does_not_move_when_the_deal_was_won() -> None:
    """A Salesforce Flow that sends the whole opportunity on each edit sends
    ``IsWon`` again: Deal Won at every edit of the won deal."""
    created = deal("Deal Created", "D1", 0, amount=300000)
    won = deal("Deal Won", "D1", 5, amount=280000)
    edited = deal("Deal Won", "D1", 30, amount=290000)
    for history in ([created, won, edited], [edited, created, won]):
        row = profile_summary(profile.project(history))
        assert (row["deals_won"], row["won_revenue"]) == (1, Decimal(290000))
        assert row["first_won_at"] == won.timestamp
    # Reopened and lost: no longer won; won again later: it was first won at day 5.
    lost = deal("Deal Lost", "D1", 40)
    assert profile_summary(profile.project([created, won, lost]))["first_won_at"] is None
    again = deal("Deal Won", "D1", 50)
    assert profile_summary(profile.project([again, lost, won]))["first_won_at"] == won.timestamp


def test_a_late_update_overwrites_no_newer_fact() -> None:
    changed = deal("Deal Stage Changed", "D1", 3, stage="proposal", amount=500000)
    late = deal("Deal Updated", "D1", 1, amount=100000, close_date="2026-03-31")
    state = profile.project([changed, late])
    assert state == profile.project([late, changed])
    d = state.deals["D1"]
    assert d.amount is not None and d.amount.value.value == Decimal(500000)  # the newer amount
    assert (
        d.close_date is not None and str(d.close_date.value) == "2026-03-31"
    )  # only the edit said it
    assert (d.first_at, d.last_at) == (late.timestamp, changed.timestamp)


def test_a_deal_known_only_from_updates_is_open() -> None:
    edits = [
        deal("Deal Updated", "D9", 2, amount=70000),
        deal("Deal Updated", "D9", 4, owner="sato"),
    ]
    state = profile.project(edits)
    assert state.deals["D9"].status is None and state.deals["D9"].status_of == "open"
    row = profile_summary(state)
    assert (row["deals_count"], row["open_deals"], row["open_deal_value"]) == (1, 1, Decimal(70000))
    assert lead_score.lifecycle_stage(lead_score.project(edits)) == "lead"  # known, not a customer
    # The created event arriving later sets the status; the earlier edit's amount is overwritten
    # only by a newer one.
    created = deal("Deal Created", "D9", 1, amount=50000)
    assert profile_summary(profile.project([*edits, created]))["open_deal_value"] == Decimal(70000)


def test_a_snapshot_from_before_deal_updated_still_loads() -> None:
    # A deal as profile state version 3 stored it before Deal Updated (no last_at, no name).
    stored = {
        "first_at": "2026-01-01T00:00:00+00:00",
        "status": {"at": "2026-01-06T00:00:00+00:00", "message_id": "m2", "value": "won"},
        "pipeline": None,
        "stage": {"at": "2026-01-06T00:00:00+00:00", "message_id": "m2", "value": "closed_won"},
        "amount": {
            "at": "2026-01-06T00:00:00+00:00",
            "message_id": "m2",
            "value": ["280000", "JPY"],
        },
        "owner": None,
        "close_date": None,
        "crm": None,
        "lost_reason": None,
    }
    old = Deal.from_json(stored)
    assert old.last_at == old.status.at and old.name is None  # type: ignore[union-attr]
    assert old.won_first_at == old.status.at  # type: ignore[union-attr]  # its one known win
    assert Deal.from_json(old.to_json()) == old
    edit = deal("Deal Updated", "D1", 7, amount=290000)
    state = profile.fold(
        profile.from_json({**profile.to_json(profile.initial()), "deals": {"D1": stored}}), [edit]
    )
    row = profile_summary(state)
    assert (row["deals_won"], row["won_revenue"], row["last_sales_touch_at"]) == (
        1,
        Decimal(290000),
        edit.timestamp,
    )
