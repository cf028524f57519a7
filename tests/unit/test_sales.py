"""Sales events (schemas.sales) and the profile's sales part, written from the contract."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given

from cdp.runtime.columns import profile_summary
from projections import lead_score, profile
from schemas import AnyEvent, DealLost, DealWon, EventValidationError, decode
from schemas.sales import DEAL_STATUS
from tests.factories import at_days, raw_order, raw_track
from tests.unit.test_profile_properties import LAWS, histories

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
        if type(e) in DEAL_STATUS:
            d = deals.setdefault(e.properties.deal_id, {})  # type: ignore[attr-defined]
            d["status"] = DEAL_STATUS[type(e)]
            if e.properties.amount is not None:  # type: ignore[attr-defined]
                d["amount"] = (e.properties.amount, e.properties.currency)  # type: ignore[attr-defined]
    names = ("Deal Created", "Deal Stage Changed", "Deal Won", "Deal Lost", "Sales Activity Logged")
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
        "last_sales_touch_at": max((e.timestamp for e in sales), default=None),
        "sales_owner": owners[-1] if owners else None,
        "last_deal_stage": stages[-1] if stages else None,
    }


@LAWS
@given(histories)
def test_sales_columns_follow_the_contract(history: list[AnyEvent]) -> None:
    row = profile_summary(profile.project(history))
    assert {k: row[k] for k in _expected(history)} == _expected(history)


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
