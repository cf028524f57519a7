"""``kill -9`` of a real ``cdp sync`` process mid-sync, then a resume.

The fake platform is slowed down so the process is killed while chunks are
in flight; the second ``cdp sync`` must resume the journal's plan so that the
platform ends with exactly the expected audience and no batch, job or
idempotency key took effect twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from cdp.config import Settings
from connectors.destinations.push.audience_sync import status
from tests.fakes.audience import SEGMENT, Shop
from tests.fakes.harness import Harness, running

pytestmark = pytest.mark.integration


def command(data_dir: Path) -> list[str]:
    cli = [sys.executable, "-m", "cdp.cli", "--data-dir", str(data_dir), "--json"]
    return [*cli, "sync", SEGMENT, "--to", "dest"]


def cdp_sync(data_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )


def acknowledged(harness: Harness) -> int:
    return sum(1 for r in harness.fake.requests() if r.status == 200)


@pytest.mark.parametrize("platform", ["meta", "google_ads", "webhook"])
def test_kill_9_mid_sync_then_resume(platform: str, settings: Settings) -> None:
    shop = Shop(settings)
    shop.add(8)
    with running(platform, settings.data_dir) as harness:
        harness.configure(chunk_size=1, backoff=0.01)
        harness.fake.delay = 0.25
        process = cdp_sync(settings.data_dir)
        try:
            deadline = time.monotonic() + 60
            while acknowledged(harness) < 4:
                assert process.poll() is None, process.communicate()
                assert time.monotonic() < deadline, "the sync never got going"
                time.sleep(0.02)
            process.send_signal(signal.SIGKILL)
        finally:
            process.wait(timeout=30)
            assert process.stdout is not None and process.stderr is not None
            process.stdout.close()
            process.stderr.close()
        assert process.returncode == -signal.SIGKILL
        pending = status(settings.data_dir, "dest", SEGMENT)["pending"]
        assert pending is not None and 0 < pending["chunks_done"] < pending["chunks"]
        assert harness.actual() != harness.expected(shop)

        harness.fake.delay = 0
        resumed = subprocess.run(
            command(settings.data_dir),
            capture_output=True,
            check=False,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        )
        assert resumed.returncode == 0, resumed.stderr.decode()
        report = orjson.loads(resumed.stdout)
        assert report["resumed_plan_id"] == pending["id"]
        assert report["chunks"] == pending["chunks"] - pending["chunks_done"]
        assert harness.actual() == harness.expected(shop)
        harness.assert_nothing_applied_twice()
        assert harness.resent() <= 1  # at most the chunk in flight when the process died
        assert status(settings.data_dir, "dest", SEGMENT)["synced_members"] == 8
