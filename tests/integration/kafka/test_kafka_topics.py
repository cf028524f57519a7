"""``cdp kafka init`` / ``topics`` and ``cdp ingest --kafka`` against both real brokers.

What exists on the broker is read back with kafka-python's admin client,
independently of ``cdp.adapters.kafka.topics``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from typer.testing import CliRunner

from cdp.adapters.kafka.admin import init_topics
from cdp.adapters.kafka.log import KafkaEventLog
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.cli import app
from tests.brokers import Broker
from tests.factories import raw_identify, raw_order, raw_page

pytestmark = pytest.mark.integration

# The decided table, written out again here (not imported) so a change is caught.
EXPECTED = {
    "log": (1, "delete", "-1"),
    "keys": (1, "compact", None),
    "events.by-customer": (3, "delete", str(7 * 86_400_000)),
    "identity.assignments": (3, "compact", None),
    "identity.merges": (1, "delete", "-1"),
    "profiles": (3, "compact", None),
    "deadletters": (1, "delete", str(30 * 86_400_000)),
    # the workers' faust tables (app id cdp-worker): only init creates them
    "cdp-worker-identity-changelog": (1, "compact", None),
    "cdp-worker-customers-changelog": (3, "compact", None),
}


def on_broker(bootstrap: str, prefix: str) -> dict[str, tuple[int, dict[str, str]]]:
    """Partition count and reported configs of every topic with ``prefix``."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        names = [n for n in admin.list_topics() if n.startswith(prefix)]
        counts = {t["name"]: len(t["partitions"]) for t in admin.describe_topics(names)}
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        )
    finally:
        admin.close()
    configs = {
        name: {k: str(v["value"]) for k, v in entries.items()}
        for name, entries in (described.get("topic") or {}).items()
    }
    return {n: (counts[n], configs.get(n, {})) for n in names}


def cli(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(tmp_path / "data"), *args], env=env)


def test_init_creates_the_table_and_a_second_run_changes_nothing(
    broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    first = cli(
        tmp_path, "--json", "kafka", "init", "--bootstrap", broker.bootstrap,
        "--prefix", topic_prefix, "--partitions", "3",
    )  # fmt: skip
    assert first.exit_code == 0, first.output
    report = orjson.loads(first.stdout)
    assert report["ok"] is True
    assert {t["action"] for t in report["topics"]} == {"created"}

    found = on_broker(broker.bootstrap, topic_prefix)
    assert set(found) == {topic_prefix + name for name in EXPECTED}
    for name, (partitions, cleanup, retention) in EXPECTED.items():
        count, configs = found[topic_prefix + name]
        assert count == partitions, name
        if configs:  # noida reports topic configs; tansu reports none
            assert configs["cleanup.policy"] == cleanup, name
            assert configs.get("retention.ms") == retention, name

    second = cli(
        tmp_path, "--json", "kafka", "init", "--prefix", topic_prefix, "--partitions", "3",
        env={"CDP_KAFKA_BOOTSTRAP": broker.bootstrap},
    )  # fmt: skip
    assert second.exit_code == 0, second.output
    again = orjson.loads(second.stdout)
    assert {t["action"] for t in again["topics"]} == {"exists"}
    assert on_broker(broker.bootstrap, topic_prefix) == found

    shown = cli(
        tmp_path, "--json", "kafka", "topics", "--bootstrap", broker.bootstrap,
        "--prefix", topic_prefix, "--partitions", "3",
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    rows = {t["topic"]: t for t in orjson.loads(shown.stdout)["topics"]}
    assert {name: row["partitions"] for name, row in rows.items()} == {
        topic_prefix + name: spec[0] for name, spec in EXPECTED.items()
    }


def test_init_never_shrinks_and_reports_the_mismatch(broker: Broker, topic_prefix: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics(
            [NewTopic(f"{topic_prefix}log", 3, 1), NewTopic(f"{topic_prefix}profiles", 6, 1)]
        )
    finally:
        admin.close()

    report = init_topics(broker.bootstrap, topic_prefix, 2)

    assert not report.ok
    states = {t.spec.name: t for t in report.topics}
    assert states[f"{topic_prefix}log"].action == "exists"
    assert any("exactly 1" in p for p in states[f"{topic_prefix}log"].problems)
    assert any("more than the 2" in p for p in states[f"{topic_prefix}profiles"].problems)
    assert states[f"{topic_prefix}identity.assignments"].action == "created"
    found = on_broker(broker.bootstrap, topic_prefix)
    assert found[f"{topic_prefix}log"][0] == 3  # untouched
    assert found[f"{topic_prefix}profiles"][0] == 6


def test_topics_lists_missing_ones_and_exits_1(
    broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    result = cli(
        tmp_path, "--json", "kafka", "topics", "--bootstrap", broker.bootstrap,
        "--prefix", topic_prefix,
    )  # fmt: skip
    assert result.exit_code == 1
    assert {t["action"] for t in orjson.loads(result.stdout)["topics"]} == {"missing"}


def test_kafka_commands_need_a_bootstrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDP_KAFKA_BOOTSTRAP", raising=False)
    result = cli(tmp_path, "kafka", "init")
    assert result.exit_code == 2
    assert "CDP_KAFKA_BOOTSTRAP" in result.output


def test_ingest_kafka_appends_files_to_the_log_once(
    broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    init_topics(broker.bootstrap, topic_prefix, 2)
    events = [
        raw_page("/", anonymous_id="a1", message_id="m-1"),
        raw_identify(anonymous_id="a1", traits={"email": "k@example.jp"}, message_id="m-2"),
        raw_order("o-1", 4200, user_id="u1", message_id="m-3"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events) + b'{"type": "nope"}\n')
    args = ("--json", "ingest", str(path), "--kafka", broker.bootstrap, "--prefix", topic_prefix)

    first = cli(tmp_path, *args)
    second = cli(tmp_path, *args)

    assert first.exit_code == 1  # one bad line, the good ones kept
    assert {k: orjson.loads(first.stdout)[k] for k in ("accepted", "rejected")} == {
        "accepted": 3,
        "rejected": 1,
    }
    assert orjson.loads(second.stdout)["duplicates"] == 3
    log = KafkaEventLog.open(KafkaSettings(broker.bootstrap, topic_prefix), timeout=10)
    try:
        stored = [s for batch in log.read() for s in batch]
    finally:
        log.close()
    assert [s.event.message_id for s in stored] == ["m-1", "m-2", "m-3"]
    assert [s.offset for s in stored] == [0, 1, 2]
    assert not (tmp_path / "data" / "cdp.duckdb").exists()  # nothing embedded was written
