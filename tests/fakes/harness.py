"""One harness per platform: its fake server, its destinations.toml section, and
how to read back, from the fake, what the audience on the platform now is.

``expected(shop)`` is computed by ``tests.fakes.audience.Shop`` without the
platform code (hashlib over the e-mails it generated), so comparing it with
``actual()`` checks the whole chain: segment, consent filter, normalisation,
hashing, chunking, idempotency.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from connectors.destinations.push import config
from connectors.destinations.push.audience_sync import status
from tests.fakes.audience import SEGMENT, Shop
from tests.fakes.base import FakeServer
from tests.fakes.google_ads import FakeGoogleAds
from tests.fakes.line import FakeLine
from tests.fakes.meta import FakeMeta
from tests.fakes.webhook import FakeWebhook
from tests.loopback import serve_app

PLATFORMS = ("meta", "google_ads", "line", "webhook")


@dataclass
class Harness:
    """A platform under test: fake server at ``url``, configured as destination ``name``."""

    platform: str
    fake: FakeServer
    url: str
    data_dir: Path
    name: str = "dest"

    def section(self, **extra: object) -> str:
        """The destinations.toml text for this destination."""
        fake = self.fake
        lines = [f"[{self.name}]", f'platform = "{self.platform}"']
        if isinstance(fake, FakeMeta):
            os.environ["PUSH_TEST_META_TOKEN"] = fake.token
            lines += [
                f'audience_id = "{fake.audience_id}"',
                'access_token = "env:PUSH_TEST_META_TOKEN"',
                f'base_url = "{self.url}"',
            ]
        elif isinstance(fake, FakeGoogleAds):
            os.environ["PUSH_TEST_GOOGLE_TOKEN"] = fake.token
            os.environ["PUSH_TEST_GOOGLE_DEV"] = fake.developer_token
            lines += [
                "# dashes are allowed in customer ids, as the Google Ads UI shows them",
                f'customer_id = "{fake.customer_id[:3]}-{fake.customer_id[3:6]}-{fake.customer_id[6:]}"',
                f'user_list = "{fake.user_list}"',
                f'login_customer_id = "{fake.login_customer_id}"',
                'developer_token = "env:PUSH_TEST_GOOGLE_DEV"',
                'access_token = "env:PUSH_TEST_GOOGLE_TOKEN"',
                f'base_url = "{self.url}"',
            ]
        elif isinstance(fake, FakeLine):
            os.environ["PUSH_TEST_LINE_TOKEN"] = fake.token
            lines += [
                'channel_access_token = "env:PUSH_TEST_LINE_TOKEN"',
                f'base_url = "{self.url}"',
            ]
        elif isinstance(fake, FakeWebhook):
            os.environ["PUSH_TEST_HOOK_SECRET"] = fake.secret
            lines += [f'url = "{self.url}/hooks/audience"', 'secret = "env:PUSH_TEST_HOOK_SECRET"']
        for key, value in extra.items():
            lines.append(f"{key} = {value!r}".replace("'", '"'))
        return "\n".join(lines) + "\n"

    def configure(self, **extra: object) -> config.AnyDestination:
        """Write destinations.toml and load the destination from it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / config.FILE_NAME).write_text(self.section(**extra), encoding="utf-8")
        return config.load(self.data_dir, self.name)

    @property
    def consent(self) -> str:
        return "line" if self.platform == "line" else "ads"

    def actual(self) -> set[str]:
        """The audience on the platform, as identifiers comparable with ``expected``."""
        fake = self.fake
        if isinstance(fake, FakeMeta):
            return fake.emails()
        if isinstance(fake, FakeGoogleAds):
            return fake.hashed_emails()
        if isinstance(fake, FakeLine):
            group = status(self.data_dir, self.name, SEGMENT)["platform_state"].get(
                "audience_group_id"
            )
            return set() if group is None else fake.members(group)
        assert isinstance(fake, FakeWebhook)
        with fake.lock:
            return {m["email"] for m in fake.members.values()}

    def expected(self, shop: Shop) -> set[str]:
        if self.platform in ("meta", "google_ads"):
            return shop.hashed_emails()
        if self.platform == "line":
            return shop.line_ids()
        return {shop.customers[u]["email"] for u in shop.expected()}

    def assert_nothing_applied_twice(self) -> None:
        """Each idempotency unit (batch, job run, key) took effect at most once."""
        fake = self.fake
        if isinstance(fake, FakeGoogleAds):
            assert all(n == 1 for n in fake.runs.values()), fake.runs
        else:
            assert all(n == 1 for n in fake.applied.values()), fake.applied

    def resent(self) -> int:
        """How many requests repeated an idempotency unit already received."""
        return sum(self.fake.duplicates.values())


def make_fake(platform: str) -> FakeServer:
    if platform == "meta":
        return FakeMeta()
    if platform == "google_ads":
        return FakeGoogleAds()
    if platform == "line":
        return FakeLine()
    return FakeWebhook()


@contextmanager
def running(platform: str, data_dir: Path) -> Iterator[Harness]:
    """A fake of ``platform`` served on loopback for the duration of the block."""
    fake = make_fake(platform)
    served = serve_app(fake.asgi(), log_level="critical")
    url = next(served)
    try:
        yield Harness(platform, fake, url, data_dir)
    finally:
        for _ in served:
            pass
