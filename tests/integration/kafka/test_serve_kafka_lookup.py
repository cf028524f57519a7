"""``cdp serve --kafka`` answers profile lookups from the compacted topics.

The worker's outputs (profile snapshots, identifier assignments, merges) are
published as the worker publishes them, from an embedded reference data
directory; the API replica, which holds no DuckDB engine, must answer every
identifier with the customer the embedded runtime gives, behind a read token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import duckdb
import httpx
import pytest

from cdp.adapters.kafka.admin import init_topics
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.config import Settings
from cdp.http.app import create_app
from cdp.services.tokens import TokenRegistry
from tests.brokers import Broker
from tests.integration.kafka.test_archive_helpers import build_reference, publish_projections
from tests.loopback import serve_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_reference(tmp_path_factory.mktemp("reference"), customers=20)


@pytest.fixture
def api(
    broker: Broker, topic_prefix: str, tmp_path: Path, reference: Settings
) -> Iterator[tuple[str, str]]:
    assert init_topics(broker.bootstrap, topic_prefix, 2).ok
    publish_projections(broker.bootstrap, topic_prefix, reference, stale_first=True)
    settings = Settings(tmp_path / "api")
    token = TokenRegistry(settings.data_dir).add("crm", ["profiles:read", "segments:read"])
    kafka = KafkaSettings(broker.bootstrap, topic_prefix, 2, timeout=10)
    for url in serve_app(create_app(settings, kafka=kafka)):
        yield url, token


def owners(reference: Settings) -> list[tuple[str, str]]:
    con = duckdb.connect(str(reference.database), read_only=True)
    try:
        return con.execute(
            "SELECT identifier, customer_id FROM identity_graph WHERE identifier <> '' "
            "ORDER BY identifier"
        ).fetchall()
    finally:
        con.close()


def test_any_replica_answers_every_identifier_from_the_topics(
    api: tuple[str, str], reference: Settings
) -> None:
    url, token = api
    expected = owners(reference)
    assert expected
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get(f"/v1/profiles/{quote(expected[0][0])}").status_code == 401
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 30
        while True:  # the reader catches up with the topics after start-up
            first = client.get(f"/v1/profiles/{quote(expected[-1][0])}", headers=headers)
            if first.status_code == 200 and first.json()["profile"]["email"] != "stale@example.jp":
                break
            assert time.monotonic() < deadline, first.text
            time.sleep(0.1)
        for identifier, customer in expected:
            answer = client.get(f"/v1/profiles/{quote(identifier)}", headers=headers)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["customer_id"] == customer
            assert body["matched"] == identifier
            assert body["freshness"]["checkpoint_offset"] is None  # no checkpoint in Kafka mode
        missing = client.get("/v1/profiles/email:nobody%40example.jp", headers=headers)
        assert missing.status_code == 404
        segments = client.get("/v1/segments", headers=headers)
        assert segments.status_code == 503
        assert "--archive" in segments.json()["error"]
        health = client.get("/health").json()
        assert health["profile_reader_lag_seconds"] is not None
