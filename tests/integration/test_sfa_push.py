"""Hot leads into Salesforce, HubSpot and kintone (fake servers on loopback).

One shop of hot leads and one fake of each SFA per test module (servers and
data are shared; each test configures its own destination name, so its sync
journal starts empty, and resets the fakes). The fakes check every request
as the vendor documents it (tests/fakes/salesforce.py, hubspot.py, kintone.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from cdp.services.privacy import audit, provisions
from connectors.destinations.push import config
from connectors.destinations.push.audience_sync import status, sync
from connectors.destinations.push.http import RetryPolicy
from connectors.destinations.push.journal import Chunk
from connectors.destinations.sfa import handoff
from connectors.destinations.sfa.config import AnySfa, Salesforce
from tests.factories import at_days, raw_identify, raw_track
from tests.fakes.base import FakeServer
from tests.fakes.hubspot import FakeHubSpot, rate_limited
from tests.fakes.kintone import FakeKintone
from tests.fakes.salesforce import FakeSalesforce, new_key
from tests.loopback import serve_app

pytestmark = pytest.mark.integration
FAST = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01)
LEADS = 205  # past Salesforce's 200 and HubSpot's and kintone's 100 per request
PLATFORMS = ("salesforce", "hubspot", "kintone")
LIMITS = {"salesforce": 200, "hubspot": 100, "kintone": 100}


class Crash(BaseException):
    """Stands for the process dying right after a chunk was recorded."""


def _lead(n: int, day: float = 10.0, last_name: str = "山田") -> list[dict[str, Any]]:
    user = f"lead-{n:04d}"
    at = at_days(day)
    events = [
        raw_identify(
            user_id=user,
            at=at,
            traits={
                "email": f"Lead.{n}@Example.JP",
                "phone": f"090-1111-{n:04d}",
                "first_name": "花子",
                "last_name": last_name,
                "address": {"state": "東京都"},
            },
        ),
        raw_track("Consent Updated", {"consents": {"email": n % 50 != 7}}, user_id=user, at=at),
    ]
    for d in (day, day + 1):
        events += [
            raw_track("Product Added", {"product_id": f"tea-{i}"}, user_id=user, at=at_days(d))
            for i in range(3)
        ]
    return events


@dataclass
class World:
    settings: Settings
    fakes: dict[str, FakeServer]
    urls: dict[str, str]
    private_key: str

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def feed(self, raws: list[dict[str, Any]]) -> None:
        with Engine.open(self.settings) as engine:
            report = ingest(
                [(f"item:{i}", r) for i, r in enumerate(raws)],
                engine,
                received_at=at_days(400),
            )
        assert report.rejected == 0, report.errors

    def section(self, platform: str, name: str, **extra: Any) -> str:
        url = self.urls[platform]
        lines = [f"[{name}]", f'platform = "{platform}"', f'base_url = "{url}"', "backoff = 0.001"]
        if platform == "salesforce":
            lines += [
                'client_id = "env:SFA_TEST_SF_ID"',
                'client_secret = "env:SFA_TEST_SF_SECRET"',
            ]
        elif platform == "hubspot":
            lines.append('access_token = "env:SFA_TEST_HS_TOKEN"')
        else:
            lines += ["app = 12", 'api_token = "env:SFA_TEST_KT_TOKEN"']
        tables = {k: v for k, v in extra.items() if isinstance(v, dict)}
        lines += [f"{k} = {_toml(v)}" for k, v in extra.items() if k not in tables]
        for table, values in tables.items():
            lines.append(f"[{name}.{table}]")
            lines += [f'"{k}" = {_toml(v)}' for k, v in values.items()]
        return "\n".join(lines) + "\n"

    def configure(self, *sections: str) -> None:
        (self.data_dir / config.FILE_NAME).write_text("".join(sections), encoding="utf-8")

    def destination(self, platform: str, name: str, **extra: Any) -> AnySfa:
        self.configure(self.section(platform, name, **extra))
        loaded = config.load(self.data_dir, name)
        assert not isinstance(loaded, config.GoogleAds | config.Meta | config.Line | config.Webhook)
        return loaded

    def push(self, destination: AnySfa, **options: Any) -> handoff.Outcome:
        options.setdefault("policy", FAST)
        return handoff.push(
            lambda: Engine.open_read_only(self.settings),
            None,
            destination,
            data_dir=self.data_dir,
            actor="test",
            **options,
        )

    def crash_after(self, destination: AnySfa, chunks: int) -> None:
        """A push that dies right after its first ``chunks`` chunks were recorded."""

        def crash(chunk: Chunk) -> None:
            if chunk.index == chunks - 1:
                raise Crash

        with pytest.raises(Crash):
            sync(
                lambda: Engine.open_read_only(self.settings),
                None,
                destination,
                "hot_leads",
                data_dir=self.data_dir,
                policy=FAST,
                after_chunk=crash,
            )

    def hot(self) -> dict[str, str]:
        """customer id → e-mail of the consenting hot leads (what must reach the SFA)."""
        con = Engine.open_read_only(self.settings)
        try:
            rows = con.execute(
                "SELECT customer_id, email FROM profiles WHERE hot_now AND consent_email"
            ).fetchall()
        finally:
            con.close()
        return {str(c): str(e).strip().lower() for c, e in rows}


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value + '"'
    return str(value)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("sfa") / "data", LEADS) as built:
        yield built


@contextmanager
def running_world(data_dir: Path, leads: int) -> Iterator[World]:
    """A shop of ``leads`` hot leads in ``data_dir`` and the three fakes serving."""
    private, public = new_key()
    fakes: dict[str, FakeServer] = {
        "salesforce": FakeSalesforce(public_key=public),
        "hubspot": FakeHubSpot(),
        "kintone": FakeKintone(),
    }
    os.environ["SFA_TEST_SF_ID"] = "3MVG9-consumer-key"
    os.environ["SFA_TEST_SF_SECRET"] = "sf-secret"
    os.environ["SFA_TEST_SF_KEY"] = private
    os.environ["SFA_TEST_HS_TOKEN"] = FakeHubSpot.token
    os.environ["SFA_TEST_KT_TOKEN"] = FakeKintone.token
    servers = {p: serve_app(f.asgi(), log_level="critical") for p, f in fakes.items()}
    urls = {p: next(s) for p, s in servers.items()}
    salesforce = fakes["salesforce"]
    assert isinstance(salesforce, FakeSalesforce)
    salesforce.url = urls["salesforce"]
    built = World(Settings(data_dir), fakes, urls, private)
    built.feed([e for n in range(1, leads + 1) for e in _lead(n)])
    try:
        yield built
    finally:
        for served in servers.values():
            for _ in served:
                pass


@pytest.fixture
def fresh(world: World) -> World:
    for fake in world.fakes.values():
        fake.reset()  # type: ignore[attr-defined]
    return world


def stored(world: World, platform: str) -> dict[str, dict[str, Any]]:
    """What the SFA holds now, by customer id."""
    fake = world.fakes[platform]
    if isinstance(fake, FakeSalesforce):
        return dict(fake.records.get("Lead", {}))
    if isinstance(fake, FakeHubSpot):
        return {c["cdp_customer_id"]: c for c in fake.contacts.values()}
    assert isinstance(fake, FakeKintone)
    return dict(fake.records)


def upserts(world: World, platform: str) -> int:
    fake = world.fakes[platform]
    assert isinstance(fake, FakeSalesforce | FakeHubSpot | FakeKintone)
    return sum(fake.upserts.values())


def writes(world: World, platform: str) -> list[int]:
    """Records per upsert request the fake accepted, in order."""
    fake = world.fakes[platform]
    method = {"salesforce": "PATCH", "hubspot": "POST", "kintone": "PUT"}[platform]
    sizes = []
    for r in fake.requests(method):
        body = r.json()
        sizes.append(len(body.get("records") or body.get("inputs") or []))
    return sizes


LEAD_FIELDS = {"Company": "個人"}  # Salesforce Leads require a Company


def extra(platform: str) -> dict[str, Any]:
    return {"constants": LEAD_FIELDS} if platform == "salesforce" else {}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_push_upserts_every_hot_lead_then_only_the_changes(fresh: World, platform: str) -> None:
    name = f"{platform}-incremental"
    destination = fresh.destination(platform, name, **extra(platform))
    hot = fresh.hot()
    assert len(hot) > LIMITS[platform]
    first = fresh.push(destination)
    assert first.ok, first.error or first.record_errors
    assert first.report is not None and first.report.adds == len(hot)
    assert set(stored(fresh, platform)) == set(hot)
    sizes = writes(fresh, platform)
    assert max(sizes) == LIMITS[platform] and sum(sizes) == len(hot)
    assert first.report.excluded == {"no_consent": LEADS - len(hot)}

    # Each record carries the identifiers, score, reasons, stages and consent.
    some = sorted(hot)[0]
    record = stored(fresh, platform)[some]
    if platform == "salesforce":
        assert record["Email"] == hot[some] and record["Phone"].startswith("+8190")
        assert record["CDP_User_Id__c"].startswith("lead-") and record["CDP_Lead_Score__c"] > 25
        assert "product_added" in record["CDP_Score_Reasons__c"]
        assert (
            record["CDP_Lifecycle_Stage__c"] == "hot_lead" and record["HasOptedOutOfEmail"] is False
        )
        assert record["Company"] == "個人" and record["LastName"] == "山田"
    elif platform == "hubspot":
        assert record["email"] == hot[some] and float(record["cdp_lead_score"]) > 25
        assert record["cdp_consents"] == "email" and record["cdp_lifecycle_stage"] == "hot_lead"
    else:
        assert record["メールアドレス"] == hot[some] and record["氏名"]
        assert float(record["リードスコア"]) > 25 and record["ファネル"]
        assert record["同意"] == "email" and "product_added" in record["スコア理由"]

    # APPI record and audit entry of the push.
    plan_id = first.report.plan_id
    recorded = [p for p in provisions.read(fresh.data_dir) if p.reference == plan_id]
    assert len(recorded) == 1 and len(recorded[0].people) == len(hot)
    assert recorded[0].platform == platform and recorded[0].consent == "email"
    entries = [
        e
        for e in audit.entries(fresh.data_dir)
        if e.action == "sfa.push" and e.details.get("destination") == name
    ]
    assert entries and entries[-1].details["upserted"] == len(hot)

    # A changed lead is sent again, alone; then nothing is sent.
    changed = sorted(hot, key=lambda c: hot[c])[0]
    n = int(hot[changed].split(".")[1].split("@")[0])
    fresh.feed(
        [
            raw_identify(
                user_id=f"lead-{n:04d}", at=at_days(12), traits={"last_name": f"佐藤-{platform}"}
            )
        ]
    )
    before = len(writes(fresh, platform))
    second = fresh.push(destination)
    assert second.report is not None and second.report.adds == 1
    assert writes(fresh, platform)[before:] == [1]
    third = fresh.push(destination)
    assert third.report is not None and third.report.status == "up to date"
    assert len(writes(fresh, platform)) == before + 1


@pytest.mark.parametrize("platform", PLATFORMS)
def test_refused_records_are_recorded_shown_and_sent_again(fresh: World, platform: str) -> None:
    name = f"{platform}-partial"
    destination = fresh.destination(platform, name, chunk_size=60, **extra(platform))
    hot = fresh.hot()
    bad = sorted(hot)[:2]
    fake = fresh.fakes[platform]
    assert isinstance(fake, FakeSalesforce | FakeHubSpot | FakeKintone)
    fake.bad_emails.update(hot[c] for c in bad)
    outcome = fresh.push(destination)
    assert outcome.error is None and set(outcome.record_errors) == set(bad)
    assert all("mail" in m.lower() or "メール" in m for m in outcome.record_errors.values())
    assert set(stored(fresh, platform)) == set(hot) - set(bad)
    shown = status(fresh.data_dir, name, "hot_leads")
    assert set(shown["platform_state"]["record_errors"]) == set(bad)
    assert shown["synced_members"] == len(hot) - 2

    fake.bad_emails.clear()
    before = len(writes(fresh, platform))
    again = fresh.push(destination)
    assert again.ok and again.report is not None and again.report.adds == 2
    assert writes(fresh, platform)[before:] == [2]  # only the refused ones
    assert set(stored(fresh, platform)) == set(hot)
    assert status(fresh.data_dir, name, "hot_leads")["platform_state"]["record_errors"] == {}


RATE_LIMITS: dict[str, tuple[int, Any, str | None, float]] = {
    "salesforce": (
        429,
        [
            {
                "errorCode": "REQUEST_LIMIT_EXCEEDED",
                "message": "ConcurrentPerOrgLongTxn Limit exceeded.",
            }
        ],
        "7",
        7.0,
    ),
    "hubspot": (429, rate_limited("TEN_SECONDLY_ROLLING"), None, 10.0),
    "kintone": (
        429,
        {"code": "GAIA_TM12", "message": "同時リクエスト数の上限を超えています。"},
        "3",
        3.0,
    ),
}


@pytest.mark.parametrize("platform", PLATFORMS)
def test_rate_limits_are_waited_out(fresh: World, platform: str) -> None:
    destination = fresh.destination(platform, f"{platform}-rate", **extra(platform))
    status_code, body, retry_after, wait = RATE_LIMITS[platform]
    fresh.fakes[platform].inject(
        "status", status=status_code, body=body, retry_after=retry_after, path_contains="/"
    )
    fresh.fakes[platform].faults[-1].method = {
        "salesforce": "PATCH",
        "hubspot": "POST",
        "kintone": "PUT",
    }[platform]
    slept: list[float] = []
    outcome = fresh.push(destination, sleep=slept.append)
    assert outcome.ok, outcome.error
    assert slept and slept[0] >= wait
    assert set(stored(fresh, platform)) == set(fresh.hot())


def test_a_daily_limit_stops_at_once_and_the_next_run_resumes(fresh: World) -> None:
    for platform, body, status_code in (
        ("hubspot", rate_limited("DAILY"), 429),
        (
            "salesforce",
            [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}],
            403,
        ),
    ):
        destination = fresh.destination(platform, f"{platform}-daily", **extra(platform))
        fresh.fakes[platform].inject(
            "status",
            status=status_code,
            body=body,
            method={"salesforce": "PATCH", "hubspot": "POST"}[platform],
        )
        slept: list[float] = []
        outcome = fresh.push(destination, sleep=slept.append)
        assert outcome.error is not None and "DestinationUnavailableError" in outcome.error
        assert slept == []  # no pointless retries against a daily quota
        assert status(fresh.data_dir, destination.name, "hot_leads")["pending"] is not None
        again = fresh.push(destination)
        assert again.ok and again.report is not None and again.report.resumed_plan_id


@pytest.mark.parametrize("platform", PLATFORMS)
def test_a_crash_mid_push_is_finished_by_the_next_run_without_duplicates(
    fresh: World, platform: str
) -> None:
    destination = fresh.destination(platform, f"{platform}-crash", chunk_size=50, **extra(platform))
    hot = fresh.hot()
    fresh.crash_after(destination, 2)
    assert upserts(fresh, platform) == 100
    pending = status(fresh.data_dir, destination.name, "hot_leads")["pending"]
    assert pending["chunks_done"] == 2
    outcome = fresh.push(destination)
    assert outcome.ok and outcome.report is not None
    assert outcome.report.resumed_plan_id == pending["id"]
    assert set(stored(fresh, platform)) == set(hot)
    fake = fresh.fakes[platform]
    assert isinstance(fake, FakeSalesforce | FakeHubSpot | FakeKintone)
    assert set(fake.upserts.values()) == {1}  # nobody sent twice
    assert status(fresh.data_dir, destination.name, "hot_leads")["synced_members"] == len(hot)


def test_dry_run_sends_nothing_and_shows_the_records(fresh: World) -> None:
    destination = fresh.destination("kintone", "kintone-dry", fields={"都道府県": "region"})
    outcome = fresh.push(destination, dry_run=True)
    assert outcome.report is not None and outcome.report.status == "dry run"
    assert outcome.report.adds == len(fresh.hot())
    assert fresh.fakes["kintone"].log == []
    preview = outcome.preview[0]
    assert preview["都道府県"] == "東京都" and preview["顧客ID"] == preview["customer_id"]
    assert not [p for p in provisions.read(fresh.data_dir) if p.recipient == "kintone-dry"]
    assert any(
        e.action == "sfa.push.dry_run" and e.details.get("destination") == "kintone-dry"
        for e in audit.entries(fresh.data_dir)
    )


def test_one_failing_destination_never_blocks_another(fresh: World) -> None:
    os.environ["SFA_TEST_BAD_SECRET"] = "wrong"
    broken = fresh.section("salesforce", "sf-broken").replace(
        "env:SFA_TEST_SF_SECRET", "env:SFA_TEST_BAD_SECRET"
    )
    fresh.configure(broken, fresh.section("hubspot", "hs-ok"), fresh.section("kintone", "kt-ok"))
    every = handoff.sfa_destinations(fresh.data_dir)
    outcomes = handoff.push_all(
        lambda: Engine.open_read_only(fresh.settings),
        None,
        [every["sf-broken"], every["hs-ok"], every["kt-ok"]],
        data_dir=fresh.data_dir,
        policy=FAST,
    )
    assert [o.ok for o in outcomes] == [False, True, True]
    assert outcomes[0].error is not None and "invalid_client" in outcomes[0].error
    assert len(stored(fresh, "hubspot")) == len(stored(fresh, "kintone")) == len(fresh.hot())


def test_salesforce_jwt_bearer_and_a_token_refresh_on_invalid_session(fresh: World) -> None:
    section = fresh.section("salesforce", "sf-jwt", chunk_size=100, constants=LEAD_FIELDS)
    section = section.replace(
        'client_secret = "env:SFA_TEST_SF_SECRET"',
        'auth = "jwt"\nusername = "integration@shop.example.jp"\nprivate_key = "env:SFA_TEST_SF_KEY"',
    )
    fresh.configure(section)
    destination = config.load(fresh.data_dir, "sf-jwt")
    fake = fresh.fakes["salesforce"]
    assert isinstance(fake, FakeSalesforce) and isinstance(destination, Salesforce)

    def expire(chunk: Chunk) -> None:
        if chunk.index == 0:
            fake.expire_tokens()  # the session ends between two requests

    report = sync(
        lambda: Engine.open_read_only(fresh.settings),
        None,
        destination,
        "hot_leads",
        data_dir=fresh.data_dir,
        policy=FAST,
        after_chunk=expire,
    )
    assert report.status == "synced" and set(stored(fresh, "salesforce")) == set(fresh.hot())
    assert fake.grants["urn:ietf:params:oauth:grant-type:jwt-bearer"] == 2
    refused = [r for r in fake.log if r.status == 401]
    assert len(refused) == 1  # the expired token, then the same chunk with a new one


def test_an_unknown_source_in_the_mapping_names_the_field(fresh: World) -> None:
    destination = fresh.destination("hubspot", "hs-typo", fields={"state": "prefecture"})
    outcome = fresh.push(destination, dry_run=True)
    assert outcome.error is not None
    assert "'hs-typo'" in outcome.error and "state = 'prefecture'" in outcome.error


def test_the_cli_pushes_shows_refused_records_and_dry_runs(fresh: World) -> None:
    import orjson  # noqa: PLC0415
    from typer.testing import CliRunner  # noqa: PLC0415

    from cdp.cli import app  # noqa: PLC0415

    def cdp(*args: str) -> Any:
        return CliRunner().invoke(app, ["--data-dir", str(fresh.data_dir), *args])

    fresh.configure(fresh.section("kintone", "kt-cli"))
    dry = cdp("destinations", "push", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert f"{len(fresh.hot())} records to upsert in 3 requests" in dry.output
    assert "first 20 of" in dry.output and fresh.fakes["kintone"].log == []

    hot = fresh.hot()
    bad = sorted(hot)[0]
    fake = fresh.fakes["kintone"]
    assert isinstance(fake, FakeKintone)
    fake.bad_emails.add(hot[bad])
    pushed = cdp("--json", "destinations", "push", "kt-cli")
    assert pushed.exit_code == 1, pushed.output  # a record was refused
    [outcome] = orjson.loads(pushed.stdout)
    assert list(outcome["record_errors"]) == [bad] and outcome["error"] is None
    shown = cdp("destinations", "status", "kt-cli")
    assert shown.exit_code == 0 and bad in shown.output and "CB_VA01" in shown.output
    missing = cdp("destinations", "push", "nope")
    assert missing.exit_code == 2 and "kt-cli" in missing.output
