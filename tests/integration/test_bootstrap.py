"""The composition root on a real data directory: what ``cdp serve`` runs on
(``bootstrap.serving``) and the CLI's doors (``open_data``, ``open_read``,
``open_sink``). The doors beside a running server need another process (DuckDB
shares one database within a process): tests/e2e/test_cli_beside_serve.py.
Kafka mode's platform runs on real brokers in
tests/integration/kafka/test_serve_kafka*.py."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from cdp import bootstrap
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.config import Settings
from cdp.errors import ConfigError
from cdp.read.reader import ReadModelLookups
from cdp.services import deadletters
from cdp.services.ingest import ingest

RECEIVED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
TRACK = b'{"type":"track","userId":"u1","event":"Signed Up","messageId":"m-1"}'


def test_kafka_mode_is_chosen_by_a_given_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CDP_KAFKA_PREFIX", raising=False)
    assert bootstrap.kafka_mode(None) is None
    assert bootstrap.kafka_mode("") is None
    assert bootstrap.kafka_mode("broker:9092", "t.") == KafkaSettings("broker:9092", "t.")
    monkeypatch.setenv("CDP_KAFKA_PREFIX", "env.")
    assert bootstrap.kafka_mode("broker:9092") == KafkaSettings("broker:9092", "env.")
    with pytest.raises(ConfigError, match="'broker' is not HOST:PORT"):
        bootstrap.kafka_mode("broker")


def test_the_embedded_platform_owns_the_directory_while_started(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    platform = bootstrap.serving(settings)
    assert platform.kafka is None and platform.probe is None and platform.owns_writer
    assert isinstance(platform.lookups, ReadModelLookups)
    platform.start()
    try:
        assert (settings.data_dir / "cdp.sock").exists()  # the CLI's door to the server
        report = platform.writer.call(
            lambda engine: ingest([("line 1", TRACK)], engine, received_at=RECEIVED)
        ).result()
        assert report.accepted == 1
        # Dead letters go to the engine's table, on the writer's thread.
        platform.writer.call(
            lambda appender: platform.store_dead_letter(
                appender,
                received_at=RECEIVED,
                source="web",
                endpoint="track",
                reason="no event name",
                body=b"{}",
            )
        ).result()
    finally:
        platform.stop()
    assert not (settings.data_dir / "cdp.sock").exists()
    con = bootstrap.open_read(settings)
    try:
        letters = deadletters.select(con)
        events = con.execute("SELECT count(*) FROM event_log").fetchone()
    finally:
        con.close()
    assert [(d.source, d.endpoint, d.reason, d.body) for d in letters] == [
        ("web", "track", "no event name", b"{}")
    ]
    assert events == (1,)
    with bootstrap.open_sink(settings) as sink:  # no server: the engine itself
        again = ingest([("line 1", TRACK)], sink, received_at=RECEIVED)
    assert (again.accepted, again.duplicates) == (0, 1)


def test_a_given_writer_is_the_callers(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    with bootstrap.open_data(settings):
        pass
    owned = bootstrap.serving(settings)
    given = bootstrap.serving(settings, writer=owned.writer)
    assert given.writer is owned.writer and not given.owns_writer
    given.start()  # neither starts the writer nor opens the local socket
    try:
        assert not (settings.data_dir / "cdp.sock").exists()
    finally:
        given.stop()
    with pytest.raises(TimeoutError):  # never started: no thread takes the queue
        owned.writer.submit([]).result(timeout=0.3)
