"""``cdp serve --kafka`` refuses a suppressed person's events before the log topic:
the broker's log holds nothing of them, everyone else's events are there."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cdp.services.privacy import suppressions
from cdp.services.privacy.suppressions import SuppressionList
from tests.brokers import Broker
from tests.integration.kafka.test_serve_kafka import Service, page, start
from tests.integration.test_suppression import EMAIL, KEY, other, person

pytestmark = pytest.mark.integration


@pytest.fixture
def service(
    broker: Broker, topic_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Service]:
    monkeypatch.setattr(suppressions, "RECHECK_SECONDS", 0.0)  # no wait after a change
    yield from start(broker, topic_prefix, tmp_path)


def test_the_kafka_log_receives_nothing_of_a_suppressed_person(
    service: Service, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    assert SuppressionList.load(data_dir).add([KEY], "req-k") == 1
    with service.client() as client:
        answer = client.post("/v1/batch", json={"batch": [*person("k"), other("k")]})
        assert answer.status_code == 200, answer.text
        assert [s.event.message_id for s in service.stored()] == ["k-other"]
        metrics = httpx.get(f"{service.url}/metrics").text
        assert "cdp_suppressed_events_total 3.0" in metrics
        assert SuppressionList.load(data_dir).remove([KEY]) == 1
        again = client.post("/v1/batch", json={"batch": [*person("l"), page("l-page")]})
        assert again.status_code == 200, again.text
    events = [s.event for s in service.stored()]
    assert events[0].message_id == "k-other"
    assert {e.message_id for e in events[1:]} == {"l-identify", "l-track", "l-ctx", "l-page"}
    # The email reached the log only after the unsuppress (identify and context track).
    assert sum(EMAIL in e.model_dump_json().lower() for e in events) == 2
