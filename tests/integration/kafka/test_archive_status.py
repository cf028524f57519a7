"""``cdp archive status`` against real brokers: the archived position, each
topic's end offset and the gap between them, and ``--max-gap`` as an alert
(exit 1) a cron job or a probe can run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.adapters.archive.layout import ArchiveTopics
from cdp.cli import app
from cdp.config import KAFKA_BOOTSTRAP_ENV, Settings
from connectors.destinations.archive import Archiver, RollPolicy
from tests.brokers import Broker
from tests.integration.kafka.test_archive_helpers import (
    build_reference,
    create_topics,
    log_rows,
    produce_events,
    produce_log,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_reference(tmp_path_factory.mktemp("reference"), customers=12)


def status(*argv: str) -> Any:
    return CliRunner().invoke(app, ["--json", "archive", "status", *argv])


def test_status_shows_the_gap_to_each_topic_end_and_alerts_past_max_gap(
    broker: Broker, topic_prefix: str, reference: Settings, tmp_path: Path
) -> None:
    partitions = 3
    create_topics(broker.bootstrap, topic_prefix, partitions)
    log = f"{topic_prefix}log"
    total = len(log_rows(reference))
    half = total // 2
    produce_events(broker.bootstrap, log, reference, half)
    root = tmp_path / "archive"
    topics = ArchiveTopics.with_prefix(topic_prefix)
    policy = RollPolicy(max_records=50, max_seconds=3600)
    Archiver(root, broker.bootstrap, topics, policy).run(once=True)
    produce_log(broker.bootstrap, log, reference, start=half)
    behind = total - half
    where = ["--bootstrap", broker.bootstrap, "--prefix", topic_prefix]

    result = status(str(root), *where)
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    by_topic = {t["topic"]: t for t in data["topics"]}
    assert by_topic[log] == {
        "kind": "events",
        "topic": log,
        "partitions": 1,
        "next": half,
        "end": total,
        "gap": behind,
    }
    # The worker topics exist (empty) but were never archived: counted from offset 0.
    assert by_topic[topics.profiles]["partitions"] == partitions
    assert by_topic[topics.profiles]["gap"] == 0
    assert data["gap"] == behind
    (events,) = [p for p in data["partitions"] if p["topic"] == log]
    assert (events["next"], events["end"], events["gap"]) == (half, total, behind)

    assert status(str(root), *where, "--max-gap", str(behind)).exit_code == 0
    alert = status(str(root), *where, "--max-gap", str(behind - 1))
    assert alert.exit_code == 1
    assert orjson.loads(alert.stdout)["over_max_gap"] == [log]

    table = CliRunner().invoke(
        app, ["archive", "status", str(root), *where], env={"COLUMNS": "200"}
    )
    assert table.exit_code == 0, table.output
    assert f"not archived yet: {behind:,} record(s)" in table.stdout

    # Archived to the end: no gap.
    Archiver(root, broker.bootstrap, topics, policy).run(once=True)
    caught_up = status(str(root), *where, "--max-gap", "0")
    assert caught_up.exit_code == 0, caught_up.output
    assert orjson.loads(caught_up.stdout)["gap"] == 0


def test_without_a_broker_status_reads_the_manifest_and_max_gap_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KAFKA_BOOTSTRAP_ENV, raising=False)
    root = tmp_path / "archive"
    root.mkdir()
    offline = status(str(root))
    assert offline.exit_code == 0, offline.output
    data = orjson.loads(offline.stdout)
    assert data["partitions"] == [] and "topics" not in data
    refused = status(str(root), "--max-gap", "10")
    assert refused.exit_code not in (0, 1)
    assert "--max-gap needs the broker" in refused.output
