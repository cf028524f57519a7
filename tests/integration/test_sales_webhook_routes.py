"""The SFA webhooks over real HTTP on loopback: HubSpot, Salesforce and kintone
deliveries stored once however often they are redelivered, forgeries refused and
never stored; and ``cdp sales import`` of an export file."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.config import Settings
from cdp.runtime.engine import Engine
from connectors.sources.webhooks import salesforce
from tests.integration.test_collector import Service, served
from tests.unit import test_webhooks_hubspot as hs
from tests.unit import test_webhooks_salesforce_kintone as sk

pytestmark = pytest.mark.integration
TOKEN = sk.TOKEN

WEBHOOKS_TOML = f"""
[hubspot]
client_secret = "{hs.SECRET}"

[salesforce]
organization_id = "{sk.ORG}"
[salesforce.person]
email = "Contact_Email__c"

[kintone]
token = "{TOKEN}"
allowed_networks = ["127.0.0.0/8"]
[kintone.apps.15]
kind = "deal"
won_stages = ["受注"]
[kintone.apps.15.fields]
stage = "商談ステータス"
email = "メールアドレス"
"""


@pytest.fixture(scope="module")
def sfa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    settings = Settings(tmp_path_factory.mktemp("sfa") / "data")
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "webhooks.toml").write_text(WEBHOOKS_TOML, encoding="utf-8")
    yield from served(settings)


def stored(service: Service, prefix: str) -> list[tuple[str, str]]:
    rows = service.engine_call(
        lambda e: e.con.execute(
            "SELECT message_id, payload FROM event_log WHERE message_id LIKE ? ORDER BY message_id",
            [prefix + "%"],
        ).fetchall()
    )
    return [(m, orjson.loads(p)["event"]) for m, p in rows]


def test_hubspot_redelivery_is_stored_once_and_forgeries_are_refused(sfa: Service) -> None:
    body = orjson.dumps(
        [
            hs.deal_event(
                901,
                "deal.propertyChange",
                propertyName="dealstage",
                propertyValue="closedwon",
                email="hanako@example.jp",
            )
        ]
    )
    url = f"{sfa.url}/v1/webhooks/hubspot"
    with httpx.Client(timeout=10) as client:
        for _ in range(2):  # HubSpot retries a delivery it thinks failed
            headers = hs.v3_headers(body, datetime.now(UTC), uri=url)
            answer = client.post(url, content=body, headers=headers)
            assert answer.status_code == 200 and answer.json()["events"] == 1
        forged = client.post(
            url, content=body, headers=hs.v3_headers(body, datetime.now(UTC), "wrong", url)
        )
        assert forged.status_code == 401
    assert stored(sfa, "hubspot:") == [("hubspot:901", "Deal Won")]


def test_salesforce_redelivery_is_acked_and_stored_once(sfa: Service) -> None:
    body = sk.outbound(sk.notification("04lSF1", "Opportunity", sk.OPPORTUNITY))
    with httpx.Client(base_url=sfa.url, timeout=10) as client:
        for _ in range(2):
            answer = client.post(
                "/v1/webhooks/salesforce",
                content=body,
                headers={"content-type": "text/xml; charset=utf-8", "SOAPAction": '""'},
            )
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/xml")
            assert answer.content == salesforce.acknowledgement()
        other_org = sk.outbound(
            sk.notification("04lSF2", "Opportunity", sk.OPPORTUNITY), org="00D000000000001AAA"
        )
        assert client.post("/v1/webhooks/salesforce", content=other_org).status_code == 401
    assert stored(sfa, "salesforce:") == [("salesforce:04lSF1", "Deal Stage Changed")]


def test_kintone_token_in_the_path_and_redelivery(sfa: Service) -> None:
    body = orjson.dumps(
        sk.kintone_body(
            "UPDATE_RECORD", "15", "7", **{"商談ステータス": {"type": "DROP_DOWN", "value": "受注"}}
        )
    )
    with httpx.Client(base_url=sfa.url, timeout=10) as client:
        for _ in range(2):
            answer = client.post(f"/v1/webhooks/kintone/{TOKEN}", content=body)
            assert answer.status_code == 200 and answer.json()["events"] == 1
        assert client.post("/v1/webhooks/kintone/not-the-token", content=body).status_code == 401
    assert stored(sfa, "kintone:") == [("kintone:15:42:7", "Deal Won")]


MAPPING_TOML = """
kind = "deal"
crm = "salesforce"
won_stages = ["受注"]
lost_stages = ["失注"]
[columns]
deal_id = "商談ID"
stage = "フェーズ"
amount = "金額"
close_date = "完了予定日"
email = "メール"
updated_at = "最終更新日"
"""
EXPORT = (
    "商談ID,フェーズ,金額,完了予定日,メール,最終更新日\n"
    'D-1,提案,"1,200,000",2026/03/31,hanako@example.jp,2026/01/15 10:30\n'
    "D-2,受注,98000,2026/01/31,taro@example.jp,2026/01/20 09:00\n"
    "D-3,失注,abc,2026/01/31,jiro@example.jp,2026/01/21 09:00\n"
    "D-4,,5000,2026-02-01,,2026-01-22T09:00:00+09:00\n"
)


def test_sales_import_reports_bad_rows_and_adds_nothing_twice(tmp_path: Path) -> None:
    (tmp_path / "map.toml").write_text(MAPPING_TOML, encoding="utf-8")
    (tmp_path / "deals.csv").write_text(EXPORT, encoding="utf-8")
    args = [
        "--data-dir",
        str(tmp_path / "data"),
        "--json",
        "sales",
        "import",
        str(tmp_path / "deals.csv"),
        "--mapping",
        str(tmp_path / "map.toml"),
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 1, first.output
    report = orjson.loads(first.stdout)
    assert (report["accepted"], report["rejected"]) == (2, 2)
    messages = [f"{e['location']} {e['message']}" for e in report["errors"]]
    assert "deals.csv:4 column '金額': must be a decimal amount, not 'abc'" in messages[0]
    assert messages[1].startswith("deals.csv:5") and "no person" in messages[1]
    again = orjson.loads(CliRunner().invoke(app, args).stdout)
    assert (again["accepted"], again["duplicates"]) == (0, 2)
    with Engine.open(Settings(tmp_path / "data")) as engine:
        rows = engine.con.execute("SELECT payload FROM event_log ORDER BY message_id").fetchall()
    events = [orjson.loads(r[0]) for r in rows]
    assert [e["event"] for e in events] == ["Deal Stage Changed", "Deal Won"]
    assert events[0]["properties"]["amount"] == "1200000"
    assert events[0]["timestamp"] == "2026-01-15T01:30:00.000Z"  # 10:30 JST
