"""Erased and suppressed people leave every pushed audience (fake platforms on loopback).

For each platform: push a segment, withdraw members, and check that the fake
received the removal as the platform documents it, that the sync state no
longer holds their rows or hashes, and that every push left an APPI
provision record. Then the normal sync: suppressed people are left out and
removed.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.privacy import files, provisions
from cdp.services.privacy.suppressions import SuppressionList
from connectors.destinations.push.audience_sync import SyncReport, status, sync
from connectors.destinations.push.config import FILE_NAME, AnyDestination
from connectors.destinations.push.http import RetryPolicy
from connectors.destinations.push.withdraw import withdraw
from tests.fakes.audience import SEGMENT, Shop, sha
from tests.fakes.base import Logged
from tests.fakes.google_ads import FakeGoogleAds
from tests.fakes.harness import PLATFORMS, Harness, running
from tests.fakes.line import FakeLine
from tests.fakes.meta import FakeMeta

pytestmark = pytest.mark.integration
FAST = RetryPolicy(max_attempts=3, base_delay=0.001, max_delay=0.01)


@pytest.fixture(params=PLATFORMS)
def harness(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Harness]:
    with running(request.param, settings.data_dir) as served:
        yield served


def push(destination: AnyDestination, settings: Settings) -> SyncReport:
    return sync(
        lambda: Engine.open_read_only(settings),
        None,
        destination,
        SEGMENT,
        data_dir=settings.data_dir,
        policy=FAST,
    )


def sync_state(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted((data_dir / "sync").rglob("*.json")))


def removal_sent(harness: Harness, log: list[Logged], shop: Shop, gone: list[str]) -> None:
    """The platform received the removal of ``gone`` in its documented form."""
    fake = harness.fake
    hashes = {sha(shop.customers[u]["email"]) for u in gone}
    if isinstance(fake, FakeMeta):
        deletes = [r for r in log if r.method == "DELETE" and r.path.endswith("/users")]
        sent = set()
        for request in deletes:
            form = urllib.parse.parse_qs(request.body.decode())
            payload = orjson.loads(form["payload"][0])
            assert payload["schema"][0] == "EMAIL" and "session" in form
            sent |= {row[0] for row in payload["data"]}
        assert sent == hashes
    elif isinstance(fake, FakeGoogleAds):
        operations = [
            op for r in log if r.path.endswith(":addOperations") for op in r.json()["operations"]
        ]
        assert operations and all(set(op) == {"remove"} for op in operations)
        sent = {
            i["hashedEmail"]
            for op in operations
            for i in op["remove"]["userIdentifiers"]
            if "hashedEmail" in i
        }
        assert sent == hashes
        assert any(r.path.endswith(":run") for r in log)
    elif isinstance(fake, FakeLine):
        # LINE cannot remove one user: a new group without them, the old one deleted.
        assert fake.deleted and any(r.method == "DELETE" for r in log)
        assert not {shop.customers[u]["line"] for u in gone} & harness.actual()
    else:
        removes = [r.json() for r in log if r.json()["action"] == "remove"]
        ids = shop.customer_ids()
        assert {m["customer_id"] for r in removes for m in r["members"]} == {ids[u] for u in gone}


def test_withdraw_removes_them_everywhere_now_and_the_next_sync_keeps_them_out(
    harness: Harness, settings: Settings
) -> None:
    data_dir = settings.data_dir
    destination = harness.configure(chunk_size=3)
    shop = Shop(settings)
    users = shop.add(6)
    first = push(destination, settings)
    assert first.adds == 6 and harness.actual() == harness.expected(shop)
    ids = shop.customer_ids()
    gone = users[:2]
    # They asked to be suppressed; the privacy request suppresses, then withdraws.
    SuppressionList.load(data_dir).add([f"email:{shop.customers[u]['email']}" for u in gone], "r1")
    before = len(harness.fake.log)

    outcome = withdraw(data_dir, [ids[u] for u in gone], policy=FAST)

    assert outcome == {"dest": "removed"}
    removal_sent(harness, harness.fake.requests()[before:], shop, gone)  # no faults injected
    leaving = {u: shop.customers.pop(u) for u in gone}
    assert harness.actual() == harness.expected(shop) and len(harness.actual()) == 4
    assert status(data_dir, "dest", SEGMENT)["synced_members"] == 4
    state = sync_state(data_dir)
    for user, known in leaving.items():
        for value in (ids[user], known["email"], sha(known["email"]), known["line"]):
            assert value.encode() not in state, value

    # Every push is recorded: the first sync and the withdrawal.
    first_record, withdrawal = provisions.read(data_dir)
    secret = files.pepper(data_dir)
    tokens = {provisions.customer_token(secret, ids[u]) for u in gone}
    assert first_record.kind == "sync" and len(first_record.people) == 6
    assert tokens <= set(first_record.people)
    assert first_record.recipient == "dest" and first_record.account == destination.target()
    assert first_record.consent == harness.consent and first_record.items
    assert withdrawal.kind == "withdraw" and not tokens & set(withdrawal.people)
    if harness.platform == "line":  # a rebuild re-uploads everyone else
        assert len(withdrawal.people) == 4 and withdrawal.removed == ()
    else:
        assert set(withdrawal.removed) == tokens and withdrawal.people == ()

    # The next sync leaves the suppressed people out: nothing to send.
    shop.tick()
    again = push(destination, settings)
    assert again.status == "up to date" and again.excluded.get("suppressed") == 2
    assert again.members + sum(again.excluded.values()) == again.segment_members == 6
    assert len(provisions.read(data_dir)) == 2  # nothing sent, nothing recorded
    assert withdraw(data_dir, [ids[u] for u in gone]) == {}  # nothing left to withdraw


def test_the_next_sync_removes_a_newly_suppressed_person(
    harness: Harness, settings: Settings
) -> None:
    destination = harness.configure()
    shop = Shop(settings)
    users = shop.add(3)
    push(destination, settings)
    SuppressionList.load(settings.data_dir).add([f"user_id:{users[1]}"], "r2")

    report = push(destination, settings)

    assert report.removes == 1 and report.excluded["suppressed"] == 1
    shop.customers.pop(users[1])
    assert harness.actual() == harness.expected(shop)
    assert [p.kind for p in provisions.read(settings.data_dir)] == ["sync", "sync"]


def test_a_failed_withdrawal_keeps_them_and_a_retry_completes(settings: Settings) -> None:
    data_dir = settings.data_dir
    with running("meta", data_dir) as harness:
        destination = harness.configure()
        shop = Shop(settings)
        users = shop.add(3)
        push(destination, settings)
        gone = shop.customer_ids()[users[0]]
        assert isinstance(harness.fake, FakeMeta)
        good = harness.fake.token
        harness.fake.token = "rotated"

        outcome = withdraw(data_dir, [gone], policy=FAST)

        assert outcome["dest"].startswith("failed: ") and "401" in outcome["dest"]
        assert gone.encode() in sync_state(data_dir)  # kept, so the retry can send it
        harness.fake.token = good
        assert withdraw(data_dir, [gone], policy=FAST) == {"dest": "removed"}
        assert gone.encode() not in sync_state(data_dir)
        assert [p.kind for p in provisions.read(data_dir)] == ["sync", "withdraw"]


def test_state_of_an_unconfigured_destination_is_reported(settings: Settings) -> None:
    data_dir = settings.data_dir
    with running("webhook", data_dir) as harness:
        destination = harness.configure()
        shop = Shop(settings)
        users = shop.add(2)
        push(destination, settings)
    (data_dir / FILE_NAME).unlink()
    gone = shop.customer_ids()[users[0]]
    outcome = withdraw(data_dir, [gone])
    assert outcome["dest"].startswith("failed: ") and "no longer configured" in outcome["dest"]
