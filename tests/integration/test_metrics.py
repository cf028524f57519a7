"""``GET /metrics`` and ``GET /health/live`` on loopback in embedded mode (Kafka mode:
tests/integration/kafka/test_lag_visible.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from cdp.config import Settings
from cdp.http.app import create_app
from cdp.services.sources import SourceRegistry
from tests.loopback import serve_app

pytestmark = pytest.mark.integration


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(name, labels) → value, parsed with prometheus_client's own text parser."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_embedded_metrics_count_requests_by_route_template(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    key = SourceRegistry(settings.data_dir).add("web")
    for url in serve_app(create_app(settings)):
        with httpx.Client(base_url=url, timeout=30) as client:
            auth = httpx.BasicAuth(key, "")
            ok = {"type": "track", "event": "Clicked", "userId": "u-1", "messageId": "m-1"}
            assert client.post("/v1/track", json=ok, auth=auth).status_code == 200
            assert client.post("/v1/track", json={"type": "track"}, auth=auth).status_code == 400
            # An identifier in the path must not become a label.
            client.get("/v1/profiles/email:secret@example.com")
            assert client.get("/health/live").json() == {"status": "live"}
            assert client.get("/health").json()["status"] == "ok"
            response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    found = samples(response.text)
    track = ("route", "/v1/track")
    assert found[("cdp_http_requests_total", (("code", "200"), ("method", "POST"), track))] == 1
    assert found[("cdp_http_requests_total", (("code", "400"), ("method", "POST"), track))] == 1
    assert found[("cdp_writer_pending_events", ())] == 0
    assert found[("cdp_writer_group_commits_total", ())] >= 1
    assert found[("cdp_writer_checkpoint_failing", ())] == 0
    assert "secret@example.com" not in response.text
    assert not any(name.startswith("cdp_workers") for name, _ in found)  # no Kafka here
