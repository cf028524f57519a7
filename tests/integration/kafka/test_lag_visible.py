"""Lag an operator can see (issue 15, item 12), against each broker with a real worker.

One scenario per broker, in the order an outage happens: a worker folds and
everything says ``ok``; the worker stops while events keep arriving, and
``cdp kafka status``, ``/health``, ``/metrics`` and the lookup's
``freshness`` all say the workers are behind; the worker comes back and they
say ``ok`` again. The API is ``cdp serve --kafka``'s app on loopback; the
worker is ``cdp worker`` as a subprocess with its own metrics port.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from cdp.adapters.kafka.admin import init_topics
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.cli import app as cli
from cdp.config import HEALTH_MAX_LAG_ENV, Settings
from cdp.http.app import create_app
from cdp.ports.log import Record
from cdp.services.ingest import to_record
from cdp.services.tokens import TokenRegistry
from tests.brokers import Broker
from tests.integration.kafka.test_streams_worker import Worker, produce
from tests.loopback import free_port, serve_app

pytestmark = [pytest.mark.integration, pytest.mark.long]

PARTITIONS = 2
seen: list[Any] = []  # the last answer a check looked at, for failure messages


def identify(user: str, n: int) -> Record:
    return to_record(
        {"type": "identify", "userId": user, "messageId": f"{user}-{n}", "traits": {"n": n}},
        datetime(2026, 11, 1, tzinfo=UTC),
        "test",
    )


def until(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """Poll ``check`` until it returns something true; fail naming ``what`` and the
    last answer a check noted in ``seen``."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {seen}"
        time.sleep(0.5)


def metric(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of ``name`` in a Prometheus text body (parsed by prometheus_client)."""
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


def status(broker: Broker, prefix: str, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        cli,
        ["--json", "kafka", "status", "--bootstrap", broker.bootstrap, "--prefix", prefix, *args],
    )
    return result.exit_code, json.loads(result.stdout)


@pytest.fixture
def api(
    broker: Broker, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str]]:
    assert init_topics(broker.bootstrap, topic_prefix, PARTITIONS).ok
    monkeypatch.setenv(HEALTH_MAX_LAG_ENV, "0")  # any unfolded event degrades
    settings = Settings(tmp_path / "api")
    token = TokenRegistry(settings.data_dir).add("crm", ["profiles:read"])
    kafka = KafkaSettings(broker.bootstrap, topic_prefix, PARTITIONS)
    for url in serve_app(create_app(settings, kafka=kafka)):
        yield url, token


def test_lag_is_visible_while_the_worker_is_stopped(
    broker: Broker, topic_prefix: str, tmp_path: Path, api: tuple[str, str]
) -> None:
    url, token = api
    port = free_port()
    worker = Worker(broker, topic_prefix, PARTITIONS, tmp_path)
    worker.command += ["--metrics-port", str(port)]
    client = httpx.Client(base_url=url, timeout=30)
    try:
        worker.start()
        produce(broker, topic_prefix, [identify("u-lag", n) for n in range(3)])

        def caught_up() -> dict[str, Any] | None:
            code, found = status(broker, topic_prefix)
            return found if code == 0 and found["lag"] == 0 and found["members"] else None

        running = until(caught_up, "the worker to fold the first events", 180)
        assert running["group"] == f"{topic_prefix}cdp-worker"
        assert {p["topic"] for p in running["partitions"]} == {
            f"{topic_prefix}log",
            f"{topic_prefix}events.by-customer",
        }
        assert running["partitions"][-1]["committed"] == 3  # the log: 3 events folded
        served = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert served.headers["content-type"].startswith("text/plain")
        assert metric(served.text, "cdp_worker_records_taken_total")[(("stage", "identity"),)] >= 3
        assert httpx.get(f"http://127.0.0.1:{port}/health/live", timeout=10).status_code == 200

        def ok() -> dict[str, Any] | None:
            body = client.get("/health").json()
            return body if body.get("status") == "ok" and body["lag"] is not None else None

        assert until(ok, "/health ok")["lag"]["events"] == 0

        # The worker stops; events keep arriving.
        assert worker.stop() == 0
        produce(broker, topic_prefix, [identify("u-lag", n) for n in range(3, 8)])

        def behind() -> dict[str, Any] | None:
            # Not "no members": tansu keeps a stopped faust member listed (Stable) for minutes.
            code, found = status(broker, topic_prefix, "--max-lag", "0")
            seen[:] = [code, found]
            return found if code == 1 and found["lag"] >= 5 else None

        stopped = until(behind, "cdp kafka status to show the lag")
        assert any("exceeds --max-lag 0" in p for p in stopped["problems"])
        assert stopped["lag_by_topic"][f"{topic_prefix}log"] >= 5

        def degraded() -> dict[str, Any] | None:
            body = client.get("/health").json()
            return body if body.get("status") == "degraded" and body["lag"]["events"] >= 5 else None

        body = until(degraded, "/health degraded")
        assert client.get("/health").status_code == 200
        assert any("events behind" in reason for reason in body["degraded"])
        lag = metric(client.get("/metrics").text, "cdp_workers_lag_events")
        assert lag[(("group", f"{topic_prefix}cdp-worker"), ("topic", f"{topic_prefix}log"))] >= 5
        answer = client.get(
            "/v1/profiles/user_id:u-lag", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text
        freshness = answer.json()["freshness"]
        assert freshness["unfolded_events"] >= 5
        assert freshness["unfolded_age_seconds"] is not None

        # Back again: it folds what it missed and everything says ok.
        worker.start()
        until(caught_up, "the restarted worker to catch up", 180)
        assert until(ok, "/health ok again")["lag"]["events"] == 0
    finally:
        client.close()
        worker.stop()


def test_liveness_answers_while_the_broker_is_stopped(fresh_broker: Broker, tmp_path: Path) -> None:
    assert init_topics(fresh_broker.bootstrap, "live.", 1).ok
    kafka = KafkaSettings(fresh_broker.bootstrap, "live.", 1, timeout=5)
    for url in serve_app(create_app(Settings(tmp_path / "api"), kafka=kafka)):
        with httpx.Client(base_url=url, timeout=30) as client:
            # Ready once the broker answers (a loaded machine may need a few probes).
            deadline = time.monotonic() + 30
            while (first := client.get("/health")).status_code != 200:
                assert time.monotonic() < deadline, first.text
                time.sleep(0.5)
            fresh_broker.stop()
            assert client.get("/health/live").json() == {"status": "live"}
            ready = client.get("/health")
            assert ready.status_code == 503
            assert ready.json()["kafka"]["reachable"] is False
            assert client.get("/metrics").status_code == 200
