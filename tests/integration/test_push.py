"""Incremental, retried, crash-safe push to each platform's API (fake servers on loopback).

Every test runs against all four platforms. The fakes check each request as
the platform documents it; the expected audience is computed by the test's
shop, independently of the platform code.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cdp.config import Settings
from cdp.errors import DestinationRejectedError, DestinationUnavailableError
from cdp.runtime.engine import Engine
from connectors.destinations.push.audience_sync import SyncReport, status, sync
from connectors.destinations.push.config import AnyDestination
from connectors.destinations.push.http import RetryPolicy
from connectors.destinations.push.journal import Chunk
from tests.fakes.audience import SEGMENT, Shop
from tests.fakes.harness import PLATFORMS, Harness, running
from tests.fakes.line import FakeLine

pytestmark = pytest.mark.integration
FAST = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01)


class Crash(Exception):
    """Stands for the process dying right after a chunk was recorded."""


@pytest.fixture(params=PLATFORMS)
def harness(request: pytest.FixtureRequest, settings: Settings) -> Iterator[Harness]:
    with running(request.param, settings.data_dir) as served:
        yield served


@pytest.fixture
def shop(settings: Settings) -> Shop:
    return Shop(settings)


def push(
    harness: Harness, destination: AnyDestination, settings: Settings, **options: object
) -> SyncReport:
    options.setdefault("policy", FAST)
    return sync(
        lambda: Engine.open_read_only(settings),
        None,
        destination,
        SEGMENT,
        data_dir=settings.data_dir,
        **options,  # type: ignore[arg-type]
    )


def test_first_sync_adds_all_then_only_the_differences(
    harness: Harness, shop: Shop, settings: Settings
) -> None:
    destination = harness.configure(chunk_size=3)
    users = shop.add(7)
    first = push(harness, destination, settings)
    assert harness.actual() == harness.expected(shop) and len(harness.actual()) == 7
    assert (first.adds, first.removes, first.status) == (7, 0, "synced")
    assert first.chunks == 3  # 7 members in chunks of 3

    shop.add(2)
    shop.withdraw(users[:3], harness.consent)  # they leave the consent-filtered audience
    before = len(harness.fake.log)
    second = push(harness, destination, settings)
    assert harness.actual() == harness.expected(shop) and len(harness.actual()) == 6
    assert (second.adds, second.removes) == (2, 3)
    if harness.platform != "line":  # LINE rebuilds the group when members leave
        sent = [r for r in harness.fake.log[before:] if r.fault is None]
        assert sum(len(r.body) for r in sent) < sum(len(r.body) for r in harness.fake.log[:before])

    shop.tick()
    before = len(harness.fake.log)
    third = push(harness, destination, settings)
    assert third.status == "up to date" and (third.adds, third.removes) == (0, 0)
    assert len(harness.fake.log) == before  # nothing sent
    harness.assert_nothing_applied_twice()
    assert status(settings.data_dir, "dest", SEGMENT)["synced_members"] == 6


def test_retries_429_with_retry_after_500_and_dropped_connections(
    harness: Harness, shop: Shop, settings: Settings
) -> None:
    destination = harness.configure()
    shop.add(4)
    harness.fake.inject("status", status=429, retry_after="7", body={"message": "slow down"})
    harness.fake.inject("status", status=500)
    harness.fake.inject("drop")
    slept: list[float] = []
    report = push(
        harness,
        destination,
        settings,
        policy=RetryPolicy(max_attempts=5, base_delay=0.001),
        sleep=slept.append,
    )
    assert harness.actual() == harness.expected(shop)
    assert report.retries == 3 == len(slept)
    assert slept[0] >= 7  # Retry-After honoured
    assert all(0 < s < 0.01 for s in slept[1:])  # exponential backoff from 1 ms
    harness.assert_nothing_applied_twice()


def test_a_lost_acknowledgement_is_resent_and_not_applied_twice(
    harness: Harness, shop: Shop, settings: Settings
) -> None:
    destination = harness.configure(chunk_size=2)
    shop.add(5)
    # The platform applies the request, but the answer never arrives.
    harness.fake.inject("drop_after", method="PUT" if harness.platform == "line" else None)
    push(harness, destination, settings)
    assert harness.actual() == harness.expected(shop)
    harness.assert_nothing_applied_twice()
    if harness.platform in ("meta", "webhook"):
        assert sum(harness.fake.duplicates.values()) == 1  # the resend was recognised


def test_a_permanent_error_names_the_destination_and_marks_nothing_synced(
    harness: Harness, shop: Shop, settings: Settings
) -> None:
    destination = harness.configure()
    shop.add(3)
    good_token = harness.fake.token if hasattr(harness.fake, "token") else None
    if good_token is not None:
        harness.fake.token = "rotated"  # type: ignore[attr-defined]
    else:
        harness.fake.secret = "rotated"  # type: ignore[attr-defined]
    with pytest.raises(DestinationRejectedError) as raised:
        push(harness, destination, settings)
    message = str(raised.value)
    assert "'dest'" in message and harness.platform in message
    assert "401" in message
    assert len(harness.fake.requests()) <= 2  # not retried
    state = status(settings.data_dir, "dest", SEGMENT)
    assert state["synced_members"] == 0 and state["pending"]["chunks_done"] == 0
    assert harness.actual() == set()

    if good_token is not None:
        harness.fake.token = good_token  # type: ignore[attr-defined]
    else:
        harness.fake.secret = "hook-secret"  # type: ignore[attr-defined]
    report = push(harness, destination, settings)
    assert report.resumed_plan_id == state["pending"]["id"]
    assert harness.actual() == harness.expected(shop)


def test_a_400_with_the_platform_message_is_not_retried(
    harness: Harness, shop: Shop, settings: Settings
) -> None:
    destination = harness.configure()
    shop.add(2)
    harness.fake.inject(
        "status",
        status=400,
        body={
            "error": {"message": "Invalid parameter", "code": 100, "error_user_msg": "blocked"},
            "message": "Invalid parameter",
        },
    )
    with pytest.raises(DestinationRejectedError, match="400"):
        push(harness, destination, settings)
    assert len(harness.fake.log) == 1
    assert status(settings.data_dir, "dest", SEGMENT)["synced_members"] == 0


def test_an_outage_longer_than_the_retries_leaves_the_plan_pending(
    harness: Harness, shop: Shop, settings: Settings
) -> None:
    destination = harness.configure()
    shop.add(3)
    harness.fake.inject("status", times=FAST.max_attempts, status=503)
    with pytest.raises(DestinationUnavailableError, match="after 4 attempts"):
        push(harness, destination, settings)
    assert status(settings.data_dir, "dest", SEGMENT)["pending"] is not None
    push(harness, destination, settings)
    assert harness.actual() == harness.expected(shop)


def test_a_crash_mid_sync_resumes_the_same_plan_without_repeats(
    harness: Harness, shop: Shop, settings: Settings
) -> None:
    destination = harness.configure(chunk_size=2)
    users = shop.add(4)
    push(harness, destination, settings)
    shop.add(5)
    shop.withdraw(users[:1], harness.consent)

    def crash_after_two(chunk: Chunk) -> None:
        if chunk.index == 1:
            raise Crash

    with pytest.raises(Crash):
        push(harness, destination, settings, after_chunk=crash_after_two)
    pending = status(settings.data_dir, "dest", SEGMENT)["pending"]
    assert pending["chunks_done"] == 2 and pending["chunks"] >= 3
    assert status(settings.data_dir, "dest", SEGMENT)["synced_members"] == 4  # not advanced

    shop.add(1)  # a change while the plan is pending: picked up after the resume
    report = push(harness, destination, settings)
    assert report.resumed_plan_id == pending["id"]
    assert report.plan_id != pending["id"]  # a second, new plan for the later change
    assert harness.resent() == 0  # chunks marked done were not sent again
    assert harness.actual() == harness.expected(shop)
    harness.assert_nothing_applied_twice()
    if isinstance(harness.fake, FakeLine):
        assert len(harness.fake.groups) == 1  # old groups deleted, no orphan
    state = status(settings.data_dir, "dest", SEGMENT)
    assert state["pending"] is None and state["synced_members"] == len(harness.expected(shop))
