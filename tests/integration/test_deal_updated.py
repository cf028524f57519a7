"""Deal Updated end to end: an SFA edit that changes no stage, delivered over real HTTP
on loopback by each vendor's webhook, moves the profile's pipeline value and never
its deal status; and the update and the stage change give one profile in either order."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.config import Settings
from cdp.runtime.engine import Engine
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
[kintone.apps.15]
kind = "deal"
won_stages = ["受注"]
[kintone.apps.15.fields]
stage = "商談ステータス"
amount = "見込金額"
email = "メールアドレス"
"""
#: The profile's sales columns compared between people (not their ids).
SALES = (
    "deals_count, open_deals, open_deal_value, deals_won, won_revenue, "
    "last_sales_touch_at, last_deal_stage"
)
STAGE_AT = datetime(2026, 1, 15, 1, 0, tzinfo=UTC)
EDIT_AT = datetime(2026, 1, 16, 1, 0, tzinfo=UTC)

Delivery = Callable[[httpx.Client], None]


@pytest.fixture(scope="module")
def sfa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    settings = Settings(tmp_path_factory.mktemp("deal-updated") / "data")
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "webhooks.toml").write_text(WEBHOOKS_TOML, encoding="utf-8")
    yield from served(settings)


def _ok(answer: httpx.Response) -> None:
    assert answer.status_code == 200, answer.text
    if answer.headers["content-type"].startswith("application/json"):
        assert answer.json()["events"] == 1, answer.text


# --- one stage change and one amount-only edit per vendor -----------------------------


def hubspot(email: str, deal: int, seq: int) -> tuple[Delivery, Delivery]:
    def post(event: dict[str, Any]) -> Delivery:
        def send(client: httpx.Client) -> None:
            url = str(client.base_url.join("/v1/webhooks/hubspot"))  # the URL HubSpot signs
            body = orjson.dumps([event])
            _ok(
                client.post(
                    url, content=body, headers=hs.v3_headers(body, datetime.now(UTC), uri=url)
                )
            )

        return send

    common = {"email": email, "objectId": deal}
    stage = hs.deal_event(
        seq,
        "deal.propertyChange",
        propertyName="dealstage",
        propertyValue="presentationscheduled",
        properties={"amount": "300000"},
        **common,
        occurredAt=int(STAGE_AT.timestamp() * 1000),
    )
    edit = hs.deal_event(
        seq + 1,
        "deal.propertyChange",
        propertyName="amount",
        propertyValue="450000",
        **common,
        occurredAt=int(EDIT_AT.timestamp() * 1000),
    )
    return post(stage), post(edit)


def salesforce(email: str, deal: int, seq: int) -> tuple[Delivery, Delivery]:
    def post(note: str, fields: dict[str, str]) -> Delivery:
        def send(client: httpx.Client) -> None:
            body = sk.outbound(sk.notification(note, "Opportunity", fields))
            _ok(client.post("/v1/webhooks/salesforce", content=body))

        return send

    opportunity = {
        **sk.OPPORTUNITY,
        "Id": f"0065g00000Deal{deal:04d}",
        "Contact_Email__c": email,
        "Amount": "300000",
        "LastModifiedDate": "2026-01-15T01:00:00.000Z",
    }
    # The Flow's "edit" message: the fields that changed, no StageName/IsWon/IsClosed.
    edit = {k: v for k, v in opportunity.items() if k not in ("StageName", "IsWon", "IsClosed")} | {
        "Amount": "450000",
        "LastModifiedDate": "2026-01-16T01:00:00.000Z",
    }
    return post(f"04lDU{seq}", opportunity), post(f"04lDU{seq + 1}", edit)


def kintone(email: str, deal: int, seq: int) -> tuple[Delivery, Delivery]:
    def post(revision: int, stage: str | None, amount: str, at: str) -> Delivery:
        record: dict[str, Any] = {
            "$id": {"type": "__ID__", "value": str(deal)},
            "更新日時": {"type": "UPDATED_TIME", "value": at},
            "メールアドレス": {"type": "LINK", "value": email},
            "商談ステータス": {"type": "DROP_DOWN", "value": stage},
            "見込金額": {"type": "NUMBER", "value": amount},
        }
        body = orjson.dumps(sk.kintone_body("UPDATE_RECORD", "15", str(revision), **record))

        def send(client: httpx.Client) -> None:
            _ok(client.post(f"/v1/webhooks/kintone/{TOKEN}", content=body))

        return send

    stage = post(seq, "提案", "300000", "2026-01-15T01:00:00Z")
    edit = post(seq + 1, None, "450000", "2026-01-16T01:00:00Z")  # the stage left empty
    return stage, edit


VENDORS = {"hubspot": hubspot, "salesforce": salesforce, "kintone": kintone}


def sales_row(service: Service, email: str) -> dict[str, Any]:
    def read(engine: Any) -> Any:
        engine.checkpoint()
        return engine.con.execute(
            f"SELECT {SALES} FROM profiles WHERE customer_id = "
            "(SELECT customer_id FROM identities WHERE kind = 'email' AND value = ?)",
            [email],
        ).fetchone()

    row = service.engine_call(read)
    assert row is not None, email
    return dict(zip([c.strip() for c in SALES.split(",")], row, strict=True))


def stored_events(service: Service, email: str) -> list[str]:
    rows = service.engine_call(
        lambda e: e.con.execute('SELECT payload FROM event_log ORDER BY "offset"').fetchall()
    )
    events = [orjson.loads(r[0]) for r in rows]
    return [e["event"] for e in events if e["context"]["traits"]["email"] == email]


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_an_amount_edit_is_deal_updated_and_moves_the_pipeline_value(
    sfa: Service, vendor: str
) -> None:
    email = f"in-order-{vendor}@example.jp"
    stage, edit = VENDORS[vendor](email, 101, 10)
    with httpx.Client(base_url=sfa.url, timeout=10) as client:
        stage(client)
        before = sales_row(sfa, email)
        edit(client)
    after = sales_row(sfa, email)
    assert stored_events(sfa, email) == ["Deal Stage Changed", "Deal Updated"]
    assert (before["open_deals"], before["open_deal_value"]) == (1, Decimal(300000))
    assert (after["open_deals"], after["open_deal_value"]) == (1, Decimal(450000))
    assert after["last_sales_touch_at"] == EDIT_AT
    assert after["last_deal_stage"] == before["last_deal_stage"] is not None


@pytest.mark.parametrize("vendor", sorted(VENDORS))
def test_the_edit_before_the_stage_change_gives_the_same_profile(sfa: Service, vendor: str) -> None:
    ordered, reversed_ = f"ordered-{vendor}@example.jp", f"reversed-{vendor}@example.jp"
    first = VENDORS[vendor](ordered, 201, 20)
    second = VENDORS[vendor](reversed_, 202, 30)
    with httpx.Client(base_url=sfa.url, timeout=10) as client:
        first[0](client)
        first[1](client)
        second[1](client)  # the edit arrives first: a deal known only from an update
        early = sales_row(sfa, reversed_)
        second[0](client)
    assert (early["deals_count"], early["open_deals"]) == (1, 1)
    assert early["open_deal_value"] == Decimal(450000)
    assert sales_row(sfa, reversed_) == sales_row(sfa, ordered)
    assert sales_row(sfa, ordered)["open_deal_value"] == Decimal(450000)  # the newer amount


def test_an_export_row_without_a_stage_is_an_edit_that_keeps_a_won_deal_won(
    tmp_path: Path,
) -> None:
    """``cdp sales import``: a stage-less row is Deal Updated, never a new open deal."""
    common = 'kind = "deal"\ncrm = "salesforce"\nwon_stages = ["受注"]\n[columns]\n'
    columns = 'deal_id = "商談ID"\namount = "金額"\nemail = "メール"\nupdated_at = "最終更新日"\n'
    (tmp_path / "stages.toml").write_text(common + columns + 'stage = "フェーズ"\n', "utf-8")
    (tmp_path / "amounts.toml").write_text(common + columns, "utf-8")  # an export without stages
    (tmp_path / "stages.csv").write_text(
        "商談ID,フェーズ,金額,メール,最終更新日\nD-7,受注,98000,won@example.jp,2026/01/20 09:00\n",
        "utf-8",
    )
    (tmp_path / "amounts.csv").write_text(
        "商談ID,金額,メール,最終更新日\n"
        "D-7,99000,won@example.jp,2026/01/25 09:00\n"
        "D-8,5000,new@example.jp,2026/01/25 09:00\n",
        "utf-8",
    )
    data = str(tmp_path / "data")
    for name in ("stages", "amounts"):
        args = ["--data-dir", data, "--json", "sales", "import", str(tmp_path / f"{name}.csv")]
        result = CliRunner().invoke(app, [*args, "--mapping", str(tmp_path / f"{name}.toml")])
        assert result.exit_code == 0, result.output
    with Engine.open(Settings(tmp_path / "data")) as engine:
        events = [
            orjson.loads(r[0])["event"]
            for r in engine.con.execute(
                'SELECT payload FROM event_log ORDER BY "offset"'
            ).fetchall()
        ]
        rows = engine.con.execute(
            "SELECT i.value, deals_won, won_revenue, open_deals, open_deal_value FROM profiles p "
            "JOIN identities i ON i.customer_id = p.customer_id AND i.kind = 'email' ORDER BY 1"
        ).fetchall()
    assert events == ["Deal Won", "Deal Updated", "Deal Updated"]
    assert rows == [
        ("new@example.jp", 0, Decimal(0), 1, Decimal(5000)),  # first seen by an edit: open
        ("won@example.jp", 1, Decimal(99000), 0, Decimal(0)),  # still won, at the new amount
    ]
