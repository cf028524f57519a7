"""``cdp deadletter retry`` re-parses the SFA webhooks' dead letters (HubSpot,
Salesforce Outbound Messages, kintone) through the routes' own parsers, with the
configuration as it is after the cause was fixed; each event is stored once
however often the retry runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app as cli_app
from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.runtime.writer import GroupCommitWriter
from cdp.services import deadletters
from tests.integration.test_collector import serve
from tests.unit import test_webhooks_hubspot as hs
from tests.unit import test_webhooks_salesforce_kintone as sk

pytestmark = pytest.mark.integration

# Before the fix: HubSpot reads the contact from the default keys, Salesforce
# knows no person field, kintone has no app 15.
BEFORE = f"""
[hubspot]
client_secret = "{hs.SECRET}"

[salesforce]
organization_id = "{sk.ORG}"

[kintone]
token = "{sk.TOKEN}"
[kintone.apps.16]
kind = "activity"
"""
AFTER = f"""
[hubspot]
client_secret = "{hs.SECRET}"
email_keys = ["buyer_email"]

[salesforce]
organization_id = "{sk.ORG}"
[salesforce.person]
email = "Contact_Email__c"

[kintone]
token = "{sk.TOKEN}"
[kintone.apps.15]
kind = "deal"
won_stages = ["受注"]
[kintone.apps.15.fields]
stage = "商談ステータス"
email = "メールアドレス"
"""
HUBSPOT_DEAL = hs.deal_event(
    7001,
    "deal.propertyChange",
    propertyName="dealstage",
    propertyValue="closedwon",
    buyer_email="buyer@cafe.example.jp",
)


def deliver_before_the_fix(settings: Settings) -> None:
    """One delivery per SFA through the live routes: each is acknowledged and
    dead-lettered (no person, no app)."""
    writer = GroupCommitWriter(lambda: Engine.open(settings), checkpoint_every=0.2)
    writer.start()
    try:
        for url in serve(settings, writer):
            with httpx.Client(base_url=url, timeout=10) as client:
                body = orjson.dumps([HUBSPOT_DEAL])
                headers = hs.v3_headers(body, datetime.now(UTC), uri=f"{url}/v1/webhooks/hubspot")
                answer = client.post("/v1/webhooks/hubspot", content=body, headers=headers)
                assert answer.json() == {"success": True, "events": 0, "dead_lettered": 1}
                opportunity = sk.outbound(sk.notification("04lRT1", "Opportunity", sk.OPPORTUNITY))
                answer = client.post("/v1/webhooks/salesforce", content=opportunity)
                assert answer.content.endswith(b"</soapenv:Envelope>")
                record = sk.kintone_body(
                    "UPDATE_RECORD",
                    "15",
                    "9",
                    **{"商談ステータス": {"type": "DROP_DOWN", "value": "受注"}},
                )
                answer = client.post(f"/v1/webhooks/kintone/{sk.TOKEN}", json=record)
                assert answer.json() == {"success": True, "events": 0, "dead_lettered": 1}
    finally:
        writer.stop()


def retry(data: Path) -> dict[str, int]:
    result = CliRunner().invoke(cli_app, ["--data-dir", str(data), "--json", "deadletter", "retry"])
    assert result.exit_code == 0, result.output
    report: dict[str, int] = orjson.loads(result.stdout)
    return report


def test_each_sfa_letter_is_stored_once_after_the_cause_is_fixed(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    hooks = settings.data_dir / "webhooks.toml"
    hooks.write_text(BEFORE, encoding="utf-8")
    deliver_before_the_fix(settings)
    # Not fixed yet: every letter stays pending, with the reason of now.
    assert retry(settings.data_dir) == {"retried": 0, "events": 0, "still_failing": 3}
    with Engine.open(settings) as engine:
        letters = deadletters.select(engine.con)
    assert [d.endpoint for d in letters] == [
        "webhook:hubspot",
        "webhook:salesforce",
        "webhook:kintone",
    ]
    assert "no person" in letters[0].reason and "no person" in letters[1].reason
    assert "kintone app 15 is not configured" in letters[2].reason

    hooks.write_text(AFTER, encoding="utf-8")
    assert retry(settings.data_dir) == {"retried": 3, "events": 3, "still_failing": 0}
    assert retry(settings.data_dir) == {"retried": 0, "events": 0, "still_failing": 0}
    with Engine.open(settings) as engine:
        rows = engine.con.execute(
            "SELECT message_id, event, source FROM event_log ORDER BY message_id"
        ).fetchall()
        assert deadletters.select(engine.con) == []
    assert rows == [
        ("hubspot:7001", "Deal Won", "hubspot"),
        ("kintone:15:42:9", "Deal Won", "kintone"),
        ("salesforce:04lRT1", "Deal Stage Changed", "salesforce"),
    ]


def test_a_whole_body_letter_keeps_the_items_that_still_do_not_map(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "webhooks.toml").write_text(AFTER, encoding="utf-8")
    contact = hs.deal_event(7003, "contact.creation", email="a@cafe.example.jp")
    with Engine.open(settings) as engine:  # a batch whose events once failed validation
        for endpoint, body in (
            ("webhook:hubspot", orjson.dumps([HUBSPOT_DEAL, contact])),
            (
                "webhook:salesforce",
                sk.outbound(sk.notification("04lRT2", "Opportunity", sk.OPPORTUNITY)),
            ),
        ):
            deadletters.add(
                engine.con, received_at=datetime(2026, 5, 1, tzinfo=UTC), source=None,
                endpoint=endpoint, reason="was invalid", body=body,
            )  # fmt: skip
    assert retry(settings.data_dir) == {"retried": 2, "events": 2, "still_failing": 0}
    assert retry(settings.data_dir) == {"retried": 0, "events": 0, "still_failing": 1}
    with Engine.open(settings) as engine:
        [left] = deadletters.select(engine.con)
        stored = engine.con.execute("SELECT message_id FROM event_log ORDER BY 1").fetchall()
    assert left.endpoint == "webhook:hubspot" and "contact.creation" in left.reason
    assert orjson.loads(left.body) == contact
    assert stored == [("hubspot:7001",), ("salesforce:04lRT2",)]
