"""Salesforce Outbound Messages and kintone webhooks: authentication, safe parsing,
and the mapping of Opportunities, Tasks and kintone records to the sales contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.errors import AuthError, UnmappableError
from connectors.sources.webhooks import kintone, salesforce
from connectors.sources.webhooks.deals import Stages
from schemas import AnyEvent, decode, stamp
from schemas.sales import (
    DealCreated,
    DealLost,
    DealStageChanged,
    DealUpdated,
    DealWon,
    SalesActivityLogged,
)

RECEIVED = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)
ORG = "00D5g000004AbCdEAK"


def notification(note_id: str, sobject_type: str, fields: dict[str, str]) -> str:
    cells = "".join(f"<sf:{k}>{v}</sf:{k}>" for k, v in fields.items())
    return (
        f"<Notification><Id>{note_id}</Id>"
        f'<sObject xsi:type="sf:{sobject_type}" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"{cells}</sObject></Notification>"
    )


def outbound(*notes: str, org: str = ORG) -> bytes:
    """An Outbound Message shaped like Salesforce's WSDL (Setup → Outbound Messages)."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
        ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k5g000000AbCdAAK</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0/00D5g000004AbCd</EnterpriseUrl>"
        f"{''.join(notes)}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


OPPORTUNITY = {
    "Id": "0065g00000XyZabAAB",
    "Amount": "1200000.0",
    "CloseDate": "2026-03-31",
    "CreatedDate": "2026-01-10T01:00:00.000Z",
    "LastModifiedDate": "2026-01-15T01:30:00.000Z",
    "IsClosed": "false",
    "IsWon": "false",
    "OwnerId": "0055g00000AbCdEAAZ",
    "StageName": "Proposal/Price Quote",
    "Contact_Email__c": "hanako@example.jp",
}
MAPPING = salesforce.SalesforceMapping(organization_id=ORG[:15], email_field="Contact_Email__c")


def decoded(raw: dict[str, Any]) -> AnyEvent:
    return decode(stamp(raw, RECEIVED))


def test_opportunities_map_by_their_flags_and_dates() -> None:
    body = outbound(
        notification("04l1", "Opportunity", OPPORTUNITY),
        notification(
            "04l2",
            "Opportunity",
            {**OPPORTUNITY, "IsClosed": "true", "IsWon": "true", "StageName": "Closed Won"},
        ),
        notification(
            "04l3",
            "Opportunity",
            {
                **OPPORTUNITY,
                "IsClosed": "true",
                "StageName": "Closed Lost",
                "Loss_Reason__c": "価格",
            },
        ),
        notification(
            "04l4", "Opportunity", {**OPPORTUNITY, "CreatedDate": "2026-01-15T01:30:00.000Z"}
        ),
    )
    message = salesforce.read(body, ORG[:15])  # the 15-character id matches the 18-character one
    mapped = salesforce.to_events(message, MAPPING)
    assert mapped.skipped == []
    events = [decoded(e) for e in mapped.events]
    assert [type(e) for e in events] == [DealStageChanged, DealWon, DealLost, DealCreated]
    changed, won, lost, _ = events
    assert changed.message_id == "salesforce:04l1"
    assert changed.properties.stage == "Proposal/Price Quote"
    assert str(changed.properties.amount) == "1200000.0"
    assert changed.timestamp == datetime(2026, 1, 15, 1, 30, tzinfo=UTC)
    assert (
        changed.context.traits is not None and changed.context.traits.email == "hanako@example.jp"
    )
    assert won.properties.stage == "Closed Won"
    assert isinstance(lost, DealLost) and lost.properties.lost_reason == "価格"


def test_an_edit_message_without_the_stage_is_deal_updated() -> None:
    """A Flow's "edit" Outbound Message (no StageName, IsWon, IsClosed) implies no status."""
    edit = {k: v for k, v in OPPORTUNITY.items() if k not in ("StageName", "IsWon", "IsClosed")}
    edit |= {
        "Name": "山田商店 卸 追加",
        "Amount": "1500000.0",
        "LastModifiedDate": "2026-01-16T00:00:00.000Z",
    }
    body = outbound(notification("04l8", "Opportunity", edit))
    mapped = salesforce.to_events(salesforce.read(body, ORG), MAPPING)
    (event,) = (decoded(e) for e in mapped.events)
    assert isinstance(event, DealUpdated) and event.message_id == "salesforce:04l8"
    assert event.properties.stage is None and event.properties.name == "山田商店 卸 追加"
    assert str(event.properties.amount) == "1500000.0"
    assert event.timestamp == datetime(2026, 1, 16, tzinfo=UTC)


def test_tasks_become_activities_and_unknown_objects_are_skipped() -> None:
    task = {
        "Id": "00T5g000001AbCdEAK",
        "TaskSubtype": "Call",
        "CallDisposition": "アポ獲得",
        "WhatId": "0065g00000XyZabAAB",
        "LastModifiedDate": "2026-01-15T02:00:00.000Z",
        "Contact_Email__c": "hanako@example.jp",
    }
    visit = {**task, "Id": "00U5g000001AbCdEAK", "TaskSubtype": "", "Type": "訪問"}
    body = outbound(
        notification("04l5", "Task", task),
        notification("04l6", "Event", visit),
        notification("04l7", "Account", {"Id": "0015g"}),
    )
    mapped = salesforce.to_events(salesforce.read(body, ORG), MAPPING)
    call, meeting = (decoded(e) for e in mapped.events)
    assert isinstance(call, SalesActivityLogged)
    assert call.properties.activity_type == "call" and call.properties.outcome == "アポ獲得"
    assert call.properties.deal_id == "0065g00000XyZabAAB"
    assert isinstance(meeting, SalesActivityLogged) and meeting.properties.activity_type == "visit"
    assert len(mapped.skipped) == 1 and "Account" in str(mapped.skipped[0])


def test_another_organisation_and_hostile_xml_are_refused() -> None:
    body = outbound(notification("04l1", "Opportunity", OPPORTUNITY), org="00D000000000001AAA")
    with pytest.raises(AuthError, match="00D000000000001AAA"):
        salesforce.read(body, ORG)
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><a>&lol2;</a>'
    )
    with pytest.raises(UnmappableError, match="DTD"):
        salesforce.read(bomb, ORG)
    with pytest.raises(UnmappableError, match="not a Salesforce Outbound Message"):
        salesforce.read(b"<a/>", ORG)


def test_the_acknowledgement_is_the_soap_ack_salesforce_expects() -> None:
    root = salesforce.parse(salesforce.acknowledgement())
    ack = root.find(
        "{http://schemas.xmlsoap.org/soap/envelope/}Body/"
        "{http://soap.sforce.com/2005/09/outbound}notificationsResponse/"
        "{http://soap.sforce.com/2005/09/outbound}Ack"
    )
    assert ack is not None and ack.text == "true"


# --- kintone ------------------------------------------------------------------

TOKEN = "k7Jd9s0QwX2mZr5tYv8pLb3n"
DEAL_APP = kintone.KintoneApp(
    kind="deal",
    fields={
        "stage": "商談ステータス",
        "amount": "見込金額",
        "email": "メールアドレス",
        "owner": "担当者",
        "close_date": "受注予定日",
    },
    stages=Stages.of(["受注"], ["失注"]),
)
ACTIVITY_APP = kintone.KintoneApp(
    kind="activity",
    fields={
        "activity_type": "活動種別",
        "outcome": "結果",
        "email": "メールアドレス",
        "deal_id": "案件ID",
    },
)
APPS = {"15": DEAL_APP, "16": ACTIVITY_APP}


def kintone_body(kind: str, app: str, revision: str, **fields: dict[str, Any]) -> dict[str, Any]:
    """A webhook body shaped like kintone's documented sample."""
    return {
        "id": "01234567-0123-0123-0123-0123456789ab",
        "type": kind,
        "app": {"id": app, "name": "案件管理"},
        "record": {
            "$id": {"type": "__ID__", "value": "42"},
            "$revision": {"type": "__REVISION__", "value": revision},
            "更新日時": {"type": "UPDATED_TIME", "value": "2026-01-15T01:30:00Z"},
            "メールアドレス": {"type": "LINK", "value": "hanako@example.jp"},
            **fields,
        },
        "recordTitle": "山田商店 卸取引",
        "url": f"https://example.cybozu.com/k/{app}/show#record=42",
    }


def test_kintone_token_and_source_networks() -> None:
    kintone.verify_token(TOKEN, TOKEN)
    with pytest.raises(AuthError, match="token"):
        kintone.verify_token(TOKEN[:-1] + "x", TOKEN)
    kintone.verify_source("103.79.14.5", ["103.79.14.0/24"])
    kintone.verify_source("198.51.100.7", [])
    with pytest.raises(AuthError, match="not in the allowed"):
        kintone.verify_source("198.51.100.7", ["103.79.14.0/24"])


def test_kintone_deal_records_map_by_configured_japanese_field_codes() -> None:
    stage = {"type": "DROP_DOWN", "value": "提案"}
    cells = {
        "商談ステータス": stage,
        "見込金額": {"type": "NUMBER", "value": "350000"},
        "担当者": {"type": "USER_SELECT", "value": [{"code": "sato", "name": "佐藤"}]},
        "受注予定日": {"type": "DATE", "value": "2026-02-27"},
    }
    created = kintone.to_events(kintone_body("ADD_RECORD", "15", "1", **cells), APPS)
    won = kintone.to_events(
        kintone_body(
            "UPDATE_RECORD",
            "15",
            "3",
            **{**cells, "商談ステータス": {"type": "DROP_DOWN", "value": "受注"}},
        ),
        APPS,
    )
    event, won_event = decoded(created.events[0]), decoded(won.events[0])
    assert isinstance(event, DealCreated) and isinstance(won_event, DealWon)
    assert event.message_id == "kintone:15:42:1" and won_event.message_id == "kintone:15:42:3"
    assert event.properties.deal_id == "42" and event.properties.owner == "佐藤"
    assert str(event.properties.amount) == "350000" and event.properties.crm == "kintone"
    assert event.timestamp == datetime(2026, 1, 15, 1, 30, tzinfo=UTC)


def test_kintone_updates_without_a_stage_are_deal_updated() -> None:
    amount = {"見込金額": {"type": "NUMBER", "value": "420000"}}
    empty_stage = {
        "商談ステータス": {"type": "DROP_DOWN", "value": None},  # left empty in the record
        "担当者": {"type": "USER_SELECT", "value": []},
        "受注予定日": {"type": "DATE", "value": None},
        **amount,
    }
    event = decoded(
        kintone.to_events(kintone_body("UPDATE_RECORD", "15", "4", **empty_stage), APPS).events[0]
    )
    assert isinstance(event, DealUpdated) and str(event.properties.amount) == "420000"
    assert event.message_id == "kintone:15:42:4" and event.properties.stage is None
    # No stage field and no process management: every update is an edit.
    app = kintone.KintoneApp(
        kind="deal", fields={"email": "メールアドレス", "amount": "見込金額", "name": "案件名"}
    )
    named = {**amount, "案件名": {"type": "SINGLE_LINE_TEXT", "value": "山田商店 卸取引"}}
    event = decoded(
        kintone.to_events(kintone_body("UPDATE_RECORD", "15", "5", **named), {"15": app}).events[0]
    )
    assert isinstance(event, DealUpdated) and event.properties.name == "山田商店 卸取引"
    # Nothing mapped but the id: nothing to update, skipped with the reason.
    bare = kintone.KintoneApp(kind="deal", fields={"email": "メールアドレス"})
    skipped = kintone.to_events(kintone_body("UPDATE_RECORD", "15", "6"), {"15": bare}).skipped
    assert "names no stage and no deal field" in str(skipped[0])


def test_kintone_status_changes_activities_and_skips() -> None:
    status = kintone_body(
        "UPDATE_STATUS", "15", "2", **{"ステータス": {"type": "STATUS", "value": "見積"}}
    )
    status["status"], status["nextStatus"] = {"value": "ヒアリング"}, {"value": "見積"}
    app = kintone.KintoneApp(kind="deal", fields={"email": "メールアドレス"})
    event = decoded(kintone.to_events(status, {"15": app}).events[0])
    assert isinstance(event, DealStageChanged)
    assert (event.properties.stage, event.properties.previous_stage) == ("見積", "ヒアリング")
    visit = kintone_body(
        "ADD_RECORD",
        "16",
        "1",
        **{
            "活動種別": {"type": "RADIO_BUTTON", "value": "訪問"},
            "結果": {"type": "SINGLE_LINE_TEXT", "value": "好感触"},
            "案件ID": {"type": "NUMBER", "value": "42"},
        },
    )
    activity = decoded(kintone.to_events(visit, APPS).events[0])
    assert isinstance(activity, SalesActivityLogged)
    assert activity.properties.activity_type == "visit" and activity.properties.deal_id == "42"
    other_app = kintone.to_events(kintone_body("ADD_RECORD", "99", "1"), APPS)
    assert "[kintone.apps.99]" in str(other_app.skipped[0])
    missing = kintone.to_events(kintone_body("ADD_RECORD", "15", "1"), APPS)
    assert "'商談ステータス' (for stage) is not in the record" in str(missing.skipped[0])
