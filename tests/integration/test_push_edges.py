"""Platform-specific corners of the push: lost answers to non-idempotent calls,
Meta's session fields, Google's job runs, limits, retry arithmetic."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from cdp.config import Settings
from cdp.errors import ConfigError, DestinationUnavailableError
from cdp.runtime.engine import Engine
from connectors.destinations import meta as meta_format
from connectors.destinations.members import Member
from connectors.destinations.push.audience_sync import new_plan, status, sync
from connectors.destinations.push.config import Meta, load_all
from connectors.destinations.push.http import RetryPolicy, retry_after
from connectors.destinations.push.meta import MetaPlatform
from tests.fakes.audience import SEGMENT, Shop
from tests.fakes.google_ads import FakeGoogleAds
from tests.fakes.harness import Harness, running
from tests.fakes.line import FakeLine

pytestmark = pytest.mark.integration
FAST = RetryPolicy(max_attempts=4, base_delay=0.001, max_delay=0.01)


def push(harness: Harness, settings: Settings, policy: RetryPolicy = FAST) -> object:
    return sync(
        lambda: Engine.open_read_only(settings),
        None,
        harness.configure(chunk_size=2),
        SEGMENT,
        data_dir=settings.data_dir,
        policy=policy,
    )


@pytest.fixture
def google(settings: Settings) -> Iterator[Harness]:
    with running("google_ads", settings.data_dir) as served:
        yield served


def test_google_lost_run_answer_is_not_run_twice(google: Harness, settings: Settings) -> None:
    shop = Shop(settings)
    shop.add(3)
    google.fake.inject("drop_after", path_contains=":run")
    push(google, settings)
    fake = google.fake
    assert isinstance(fake, FakeGoogleAds)
    assert google.actual() == google.expected(shop)
    assert list(fake.runs.values()) == [1]
    assert len(fake.requests(contains="googleAds:search")) == 1  # the status check


def test_google_resume_after_run_was_sent_asks_the_status(
    google: Harness, settings: Settings
) -> None:
    shop = Shop(settings)
    users = shop.add(4)
    push(google, settings)
    shop.withdraw(users[:2])
    shop.add(1)
    google.fake.inject("drop_after", path_contains=":run")  # the removes job ran; answer lost
    with pytest.raises(DestinationUnavailableError):
        push(google, settings, RetryPolicy(max_attempts=1))
    state = status(settings.data_dir, "dest", SEGMENT)["pending"]["state"]
    assert state["runs"] == {"remove": "sent"} and set(state["jobs"]) == {"remove"}
    push(google, settings)
    fake = google.fake
    assert isinstance(fake, FakeGoogleAds)
    assert google.actual() == google.expected(shop)
    assert all(n == 1 for n in fake.runs.values()) and len(fake.runs) == 3
    kinds = sorted(job.kind or "" for job in fake.jobs.values())
    assert kinds == ["create", "create", "remove"]  # never mixed in one job


def test_line_lost_creation_answer_does_not_create_a_second_group(settings: Settings) -> None:
    shop = Shop(settings)
    shop.add(3)
    with running("line", settings.data_dir) as line:
        line.fake.inject("drop_after", method="POST", path_contains="/upload")
        push(line, settings)
        fake = line.fake
        assert isinstance(fake, FakeLine)
        assert fake.created == 1 and len(fake.groups) == 1
        assert line.actual() == line.expected(shop)


def test_meta_sessions_number_batches_and_flag_the_last(settings: Settings) -> None:
    shop = Shop(settings)
    users = shop.add(5)
    with running("meta", settings.data_dir) as meta:
        push(meta, settings)
        shop.withdraw(users[:3])
        push(meta, settings)
        sessions: dict[tuple[str, int], list[dict[str, object]]] = {}
        for request in meta.fake.requests(contains="/users"):
            form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
            session = orjson.loads(form["session"])
            rows = len(orjson.loads(form["payload"])["data"])
            sessions.setdefault((request.method, session["session_id"]), []).append(
                {**session, "rows": rows}
            )
        shapes = {
            method: [(s["batch_seq"], s["last_batch_flag"], s["rows"]) for s in batches]
            for (method, _), batches in sessions.items()
        }
        assert shapes == {
            "POST": [(1, False, 2), (2, False, 2), (3, True, 1)],
            "DELETE": [(1, False, 2), (2, True, 1)],
        }
        for batches in sessions.values():
            assert {b["estimated_num_total"] for b in batches} == {sum(b["rows"] for b in batches)}  # type: ignore[misc]


def _member(customer: str, email: str) -> Member:
    return Member(customer_id=customer, email=email)


def test_plans_respect_the_platform_limit_and_keep_shared_identifiers() -> None:
    destination = Meta(
        platform="meta", name="m", audience_id="1", access_token="t", chunk_size=50_000
    )
    platform = MetaPlatform(destination)
    current = {
        f"c{i}": orjson.loads(orjson.dumps(platform.row(_member(f"c{i}", f"p{i}@example.jp"))))
        for i in range(25_000)
    }
    plan, skipped = new_plan(platform, destination, current, {}, {})
    assert [len(c.keys) for c in plan.chunks] == [10_000, 10_000, 5_000]
    assert skipped == 0 and meta_format.MAX_BATCH == 10_000

    # A merged customer: the old id leaves, its e-mail now belongs to a current member.
    old = platform.row(_member("old", "shared@example.jp"))
    new = platform.row(_member("new", "shared@example.jp"))
    plan, skipped = new_plan(platform, destination, {"new": new}, {"old": old}, {})
    assert plan.removes == ["old"] and skipped == 1
    assert [(c.action, c.keys) for c in plan.chunks] == [("add", ["new"])]


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)

    def answer(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert retry_after(answer("120"), now) == 120
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert retry_after(answer(later), now) == 30
    assert retry_after(answer("soon"), now) is None
    assert retry_after(httpx.Response(429), now) is None


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=4)
    rng = random.Random(7)
    for attempt, ceiling in enumerate([0.5, 1, 2, 4, 4, 4]):
        delays = [policy.backoff(attempt, rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # jittered, not constant


def test_config_errors_name_the_file_and_key(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    path = settings.data_dir / "destinations.toml"
    path.write_text(
        '[hook]\nplatform = "webhook"\nurl = "ftp://x"\nsecret = "s"\nconsent = "fax"\n'
    )
    with pytest.raises(ConfigError) as raised:
        load_all(settings.data_dir)
    assert str(path) in str(raised.value)
    assert "hook.url" in str(raised.value) and "hook.consent" in str(raised.value)
