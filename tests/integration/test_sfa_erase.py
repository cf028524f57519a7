"""Erasure reaches the SFA, and pushed leads count as handed to sales (fakes on loopback).

A few hot leads are pushed to the fake Salesforce, HubSpot and kintone
(tests/fakes/), one person is erased with ``cdp privacy erase``, and the fake
must have received the vendor's documented delete for that person's record
and hold it no more, while the request says ``finished``; a fake that refuses
the delete makes the request ``partial`` naming that destination, and the
next push completes the deletion and finishes the request.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app
from cdp.runtime.engine import Engine
from cdp.services import analytics
from cdp.services.privacy import audit
from cdp.services.privacy.requests import Requests
from connectors.destinations.push import config
from connectors.destinations.sfa.config import HubSpot, Kintone, Salesforce
from connectors.destinations.sfa.pushed import PushedRecords, pushed_people
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.kintone import FakeKintone
from tests.fakes.salesforce import FakeSalesforce
from tests.integration.test_sfa_push import (
    PLATFORMS,
    World,
    extra,
    running_world,
    stored,
)

pytestmark = pytest.mark.integration
LEADS = 12


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("sfa-erase") / "data", LEADS) as built:
        yield built


@pytest.fixture
def fresh(world: World) -> World:
    """The shared shop with empty fakes and no sync state (an erasure looks at every
    destination's, and an earlier test's destination is no longer configured)."""
    for fake in world.fakes.values():
        fake.reset()  # type: ignore[attr-defined]
    shutil.rmtree(world.data_dir / "sync", ignore_errors=True)
    return world


def cdp(world: World, *args: str) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(world.data_dir), *args])


def erase(world: World, email: str) -> dict[str, Any]:
    """``cdp privacy erase email:...``: the request as the CLI shows it."""
    result = cdp(world, "--json", "privacy", "erase", f"email:{email}")
    [request] = orjson.loads(result.stdout)
    assert result.exit_code == (0 if request["status"] == "finished" else 1), result.output
    return dict(request)


def sync_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((data_dir / "sync").rglob("*.json")))


def a_person(world: World) -> tuple[str, str]:
    """A hot lead not erased yet (erased people leave the profiles): (customer id, e-mail)."""
    return min(world.hot().items())


def deletes(world: World, platform: str) -> list[Any]:
    """The delete requests the fake accepted (faults excluded)."""
    fake = world.fakes[platform]
    if platform == "hubspot":
        return fake.requests("POST", "/batch/archive")
    return fake.requests("DELETE")


@pytest.mark.parametrize("platform", PLATFORMS)
def test_erasure_deletes_the_pushed_record_in_the_sfa(fresh: World, platform: str) -> None:
    name = f"{platform}-erase"
    destination = fresh.destination(platform, name, **extra(platform))
    pushed = fresh.push(destination)
    assert pushed.ok, pushed.error or pushed.record_errors
    customer_id, email = a_person(fresh)
    assert customer_id in stored(fresh, platform)
    [record_id] = PushedRecords(fresh.data_dir, name).records()[customer_id]

    request = erase(fresh, email)

    assert request["status"] == "finished" and request["failed"] == {}
    assert customer_id not in stored(fresh, platform)
    assert len(stored(fresh, platform)) == len(fresh.hot())  # nobody else deleted
    [sent] = deletes(fresh, platform)
    if platform == "salesforce":
        assert sent.path == "/services/data/v62.0/composite/sobjects" and sent.body == b""
        fake = fresh.fakes["salesforce"]
        assert isinstance(fake, FakeSalesforce) and record_id in fake.deleted
    elif platform == "hubspot":
        assert sent.json() == {"inputs": [{"id": record_id}]}
    else:
        assert sent.path == "/k/v1/records.json"
        assert sent.json() == {"app": 12, "ids": [int(record_id)]}
    # Nothing of them stays in the sync state: no row, no customer id, no record id.
    state = sync_bytes(fresh.data_dir)
    assert email.encode() not in state and customer_id.encode() not in state
    kept = PushedRecords(fresh.data_dir, name)
    assert customer_id not in kept.records() and kept.deletions() == {}
    assert any(
        e.action == "sfa.delete" and e.details == {
            "destination": name, "status": "deleted", "deleted": 1, "owed": 0
        }
        for e in audit.entries(fresh.data_dir)
    )  # fmt: skip
    again = fresh.push(destination)
    assert again.ok and again.report is not None and again.report.adds == 0
    assert customer_id not in stored(fresh, platform)


def test_a_refused_delete_makes_the_request_partial_and_the_next_push_finishes_it(
    fresh: World,
) -> None:
    names = {"salesforce": "sf-locked", "hubspot": "hs-fine", "kintone": "kt-down"}
    fresh.configure(
        fresh.section("salesforce", "sf-locked", **extra("salesforce")),
        fresh.section("hubspot", "hs-fine"),
        fresh.section("kintone", "kt-down", max_attempts=2),
    )
    every = {p: config.load(fresh.data_dir, n) for p, n in names.items()}
    for destination in every.values():
        assert isinstance(destination, Salesforce | HubSpot | Kintone)
        assert fresh.push(destination).ok
    customer_id, email = a_person(fresh)
    [sf_id] = PushedRecords(fresh.data_dir, "sf-locked").records()[customer_id]
    salesforce, kintone = fresh.fakes["salesforce"], fresh.fakes["kintone"]
    assert isinstance(salesforce, FakeSalesforce) and isinstance(kintone, FakeKintone)
    salesforce.locked.add(sf_id)
    kintone.inject("status", times=2, status=503, method="DELETE")

    request = erase(fresh, email)

    assert request["status"] == "partial"
    assert sorted(request["failed"]) == ["kt-down", "sf-locked"]
    assert "ENTITY_IS_LOCKED" in request["failed"]["sf-locked"]
    assert "HTTP 503" in request["failed"]["kt-down"]
    assert customer_id not in stored(fresh, "hubspot")
    assert customer_id in stored(fresh, "salesforce") and customer_id in stored(fresh, "kintone")
    # What is still owed names nobody: a token, the request, the vendor's ids.
    for name in ("sf-locked", "kt-down"):
        kept = PushedRecords(fresh.data_dir, name)
        assert customer_id not in kept.records()
        [owed] = kept.deletions().values()
        assert owed["request"] == request["id"] and owed["error"]
        assert customer_id.encode() not in kept.path.read_bytes()
    assert email.encode() not in sync_bytes(fresh.data_dir)
    shown = cdp(fresh, "destinations", "status", "kt-down")
    assert shown.exit_code == 0 and "still to delete" in shown.output
    assert request["id"] in shown.output

    # The SFA side is fixed; the next push deletes first, then settles the request.
    salesforce.locked.clear()
    outcomes = [fresh.push(every[p]) for p in ("salesforce", "kintone")]  # type: ignore[arg-type]
    assert [o.deleted for o in outcomes] == [1, 1] and all(o.ok for o in outcomes)
    assert customer_id not in stored(fresh, "salesforce")
    assert customer_id not in stored(fresh, "kintone")
    assert PushedRecords(fresh.data_dir, "kt-down").deletions() == {}
    settled = Requests(fresh.data_dir).get(request["id"])
    assert settled.status == "finished" and settled.failed == {}


def test_a_push_interrupted_before_their_chunk_is_finished_then_their_record_deleted(
    fresh: World,
) -> None:
    destination = fresh.destination("hubspot", "hs-crash", chunk_size=2)
    customer_id, email = max(fresh.hot().items())  # in the last chunk, not sent yet
    fresh.crash_after(destination, 1)
    assert customer_id not in stored(fresh, "hubspot")

    request = erase(fresh, email)

    assert request["status"] == "finished", request
    assert customer_id not in stored(fresh, "hubspot")
    hubspot = fresh.fakes["hubspot"]
    assert isinstance(hubspot, FakeHubSpot)  # created by the resumed plan, then archived:
    assert customer_id in {c["cdp_customer_id"] for c in hubspot.archived.values()}
    assert len(stored(fresh, "hubspot")) == len(fresh.hot())
    assert email.encode() not in sync_bytes(fresh.data_dir)
    assert customer_id.encode() not in sync_bytes(fresh.data_dir)


def test_kintone_deletes_what_is_left_when_a_record_is_gone_already(fresh: World) -> None:
    destination = fresh.destination("kintone", "kt-gone")
    assert fresh.push(destination).ok
    customer_id, email = a_person(fresh)
    [record_id] = PushedRecords(fresh.data_dir, "kt-gone").records()[customer_id]
    PushedRecords(fresh.data_dir, "kt-gone").add({customer_id: "999999"})  # deleted by hand
    kintone = fresh.fakes["kintone"]
    assert isinstance(kintone, FakeKintone)

    request = erase(fresh, email)

    assert request["status"] == "finished", request
    assert customer_id not in stored(fresh, "kintone")
    statuses = [(r.method, r.status) for r in kintone.log if "records.json" in r.path]
    assert statuses[-3:] == [("DELETE", 404), ("GET", 200), ("DELETE", 200)]
    assert kintone.log[-1].json() == {"app": 12, "ids": [int(record_id)]}


def test_the_funnel_counts_pushed_leads_as_handed_to_sales(fresh: World) -> None:
    destination = fresh.destination("hubspot", "hs-funnel")
    outcome = fresh.push(destination)
    assert outcome.ok and outcome.report is not None and outcome.report.members > 0
    handed = pushed_people(fresh.data_dir)
    assert handed == set(fresh.hot())  # every consenting hot lead reached an SFA

    result = cdp(fresh, "--json", "analytics", "funnel")
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    ladder = {r["stage"]: r["customers"] for r in report["rows"] if r["ladder"] == "sales"}
    assert ladder["handed_to_sales"] == len(handed) and ladder["deal"] == 0
    assert "pushed to an SFA destination" in report["summary"]["handed_to_sales"]
    # Without the push journal, only a deal would count: nobody here has one.
    con = Engine.open_read_only(fresh.settings)
    try:
        without = {r["stage"]: r["customers"] for r in analytics.funnel(con).records()}
    finally:
        con.close()
    assert without["handed_to_sales"] == 0

    campaigns = cdp(fresh, "--json", "analytics", "campaigns", "--touch", "first")
    assert campaigns.exit_code == 0, campaigns.output
    rows = orjson.loads(campaigns.stdout)["rows"]
    assert sum(r["handed_to_sales"] for r in rows) == len(handed)
