"""Deal Updated in both runtimes: the faust worker's profiles and lead scores equal the
embedded runtime's for a stream where deal edits arrive before, between and after the
stage changes, wins and losses of the same deals (late and early, as webhooks do)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from cdp.adapters.kafka import admin as kafka_admin
from cdp.ports.log import Record
from cdp.services.ingest import to_record
from tests.brokers import Broker
from tests.integration.kafka.test_streams_worker import (
    RECEIVED,
    Worker,
    embedded,
    generated,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration


def _deal(n: int, event: str, day: int, email: str, **props: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "event": event,
        "messageId": f"sfa-{n:03d}",
        "timestamp": f"2026-10-{day:02d}T01:00:00Z",
        "context": {"traits": {"email": email}},
        "properties": {"crm": "hubspot", **props},
    }


def sales_records() -> list[Record]:
    """Three buyers' deals with edits; the log order is shuffled, the event times are not."""
    raws = []
    for i, email in enumerate(("buyer-a@example.jp", "buyer-b@example.jp", "buyer-c@example.jp")):
        deal = {"deal_id": f"D-{i}"}
        n = 10 * i
        raws += [
            _deal(n, "Deal Created", 1, email, **deal, stage="qualified", amount=300000),
            _deal(n + 1, "Deal Updated", 2, email, **deal, amount=350000, name="卸 秋"),
            _deal(n + 2, "Deal Stage Changed", 3, email, **deal, stage="proposal"),
            _deal(n + 3, "Deal Updated", 4, email, **deal, owner="suzuki"),
            _deal(n + 4, "Deal Won" if i != 1 else "Deal Lost", 5, email, **deal),
            _deal(n + 5, "Deal Updated", 6, email, **deal, amount=360000),  # after the win
            _deal(n + 6, "Deal Updated", 7, email, deal_id=f"E-{i}", amount=50000),  # edits only
        ]
    random.Random(17).shuffle(raws)
    return [to_record(raw, RECEIVED, "test") for raw in raws]


def test_deal_updated_parity_with_the_embedded_runtime(
    broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    records = generated(6) + sales_records()
    kafka_admin.init_topics(broker.bootstrap, topic_prefix, 4)
    produce(broker, topic_prefix, records)
    runtime = embedded(records)
    deals = {k: d for p in runtime.profiles.values() for k, d in p.deals.items()}
    # The stream means what it says: edits moved amounts and set no status.
    assert deals["D-0"].status_of == "won" and deals["D-0"].amount is not None
    assert deals["D-0"].amount.value.value == 360000
    assert all(deals[f"E-{i}"].status is None for i in range(3))
    worker = Worker(broker, topic_prefix, 4, tmp_path).start()
    try:
        wait_for(broker, topic_prefix, runtime, [worker])
    finally:
        worker.stop()
