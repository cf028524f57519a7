"""One contract for every ``ProfileLookups`` (``cdp.ports.lookups``): SQL over the
tables, the in-memory read model, and the Kafka topics on a real broker.

The same small generated shop (with merges and a refused link) is served by
each implementation; every identifier must give the same answer (after JSON,
times compared as instants: Kafka mode answers in UTC), the same survivor for
a merged-away ``cus_`` id and the same errors. SQL is the reference. It lives
beside the Kafka tests for their broker fixtures; the embedded cases need none.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from cdp.adapters.kafka.lookups import KafkaProfileLookups
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.config import Settings
from cdp.errors import NotFoundError
from cdp.ports.lookups import ProfileLookups
from cdp.read.reader import ReadModelLookups, engine_connection
from cdp.read.sql import SqlLookups
from cdp.runtime.engine import Engine
from tests.brokers import Broker
from tests.integration.kafka.test_archive_helpers import (
    build_reference,
    create_topics,
    produce_log,
    publish_projections,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_reference(tmp_path_factory.mktemp("contract"), customers=30)


def graph(settings: Settings) -> tuple[list[tuple[str, str]], list[str]]:
    """(identifier, owner) of every identifier; the merged-away customer ids."""
    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        owners = con.execute(
            "SELECT identifier, customer_id FROM identity_graph WHERE identifier <> '' "
            "ORDER BY identifier"
        ).fetchall()
        losers = [r[0] for r in con.execute("SELECT from_customer FROM merges").fetchall()]
    finally:
        con.close()
    return owners, losers


def comparable(value: Any) -> Any:
    """JSON values with ISO date-times as instants (zones differ between modes)."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, str) and len(value) > 10 and value[10:11] == "T":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return value
    return value


def answer(lookups: ProfileLookups, text: str, recent: int = 3) -> dict[str, Any]:
    body, _ = lookups.profile(text, recent)
    found: dict[str, Any] = comparable(orjson.loads(body))
    # Kafka mode has no checkpoint to report (docs/api.md); the rest must agree.
    found["freshness"].pop("checkpoint_offset")
    return found


@pytest.fixture(scope="module")
def shape(reference: Settings) -> tuple[list[tuple[str, str]], list[str]]:
    """``graph`` of the reference, read before any implementation opens it."""
    return graph(reference)


@pytest.fixture(scope="module")
def expected(
    reference: Settings, shape: tuple[list[tuple[str, str]], list[str]]
) -> dict[str, dict[str, Any]]:
    """The SQL implementation's answers (3 recent events) for every identifier and
    merged-away id, read once (its connection closed before the others open)."""
    owners, losers = shape
    sql = SqlLookups(reference, lambda: Engine.open_read_only(reference))
    try:
        return {text: answer(sql, text) for text in [i for i, _ in owners] + losers}
    finally:
        sql.close()


class LookupsContract:
    """The assertions; subclasses provide ``lookups`` over the reference shop."""

    def test_every_identifier_answers_its_customer_as_sql_does(
        self, lookups: ProfileLookups, expected: dict[str, Any], shape: Any
    ) -> None:
        owners, _ = shape
        assert owners
        for identifier, customer in owners:
            got = answer(lookups, identifier)
            assert got["customer_id"] == customer
            assert got["matched"] == identifier
            assert got == expected[identifier], identifier
            assert set(got["profile"]) >= {"score_time", "age", "days_since_last_seen"}
            assert got["lead"]["as_of"] is not None and got["lead"]["score_now"] is not None
        some = owners[0][0]
        assert len(answer(lookups, some, 10)["recent_events"]) >= len(
            answer(lookups, some, 1)["recent_events"]
        )
        assert answer(lookups, some, 0)["recent_events"] == []

    def test_a_merged_away_id_answers_with_the_survivor(
        self, lookups: ProfileLookups, expected: dict[str, Any], shape: Any
    ) -> None:
        _, losers = shape
        assert losers, "the reference has merges"
        for loser in losers:
            got = answer(lookups, loser)
            assert got["customer_id"] != loser
            assert got == expected[loser]
            assert loser in {m["from_customer"] for m in got["merges"]}

    def test_the_same_errors(self, lookups: ProfileLookups) -> None:
        with pytest.raises(NotFoundError, match=r"email:nobody@example\.jp"):
            lookups.profile("email:Nobody@Example.JP", 3)
        with pytest.raises(NotFoundError, match="cus_nobody"):
            lookups.profile("cus_nobody", 3)
        with pytest.raises(ValueError, match="bogus"):
            lookups.profile("bogus:value", 3)
        with pytest.raises(ValueError):
            lookups.profile("cus_", 3)


@pytest.fixture(scope="class")
def sql_lookups(reference: Settings) -> Iterator[SqlLookups]:
    lookups = SqlLookups(reference, lambda: Engine.open_read_only(reference))
    yield lookups
    lookups.close()


@pytest.fixture(scope="module")
def model_lookups(
    reference: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReadModelLookups]:
    # A copy: the writer's lock would keep the other implementations out.
    copy = Settings(tmp_path_factory.mktemp("model") / "data")
    shutil.copytree(reference.data_dir, copy.data_dir)
    with Engine.open(copy) as engine:
        source = engine_connection(engine)
        assert source[2] is not None, "the read model loads"
        reader = ReadModelLookups(copy, lambda: source)
        reader.warm()
        yield reader
        reader.close()


class TestSql(LookupsContract):
    @pytest.fixture
    def lookups(self, sql_lookups: SqlLookups) -> SqlLookups:
        return sql_lookups


class TestReadModel(LookupsContract):
    @pytest.fixture
    def lookups(self, model_lookups: ReadModelLookups) -> ReadModelLookups:
        return model_lookups


class TestKafka(LookupsContract):
    @pytest.fixture
    def lookups(
        self, broker: Broker, topic_prefix: str, reference: Settings, tmp_path: Path
    ) -> Iterator[KafkaProfileLookups]:
        create_topics(broker.bootstrap, topic_prefix)
        publish_projections(broker.bootstrap, topic_prefix, reference)
        produce_log(broker.bootstrap, f"{topic_prefix}log", reference)
        kafka = KafkaSettings(broker.bootstrap, topic_prefix, 3, timeout=10)
        lookups = KafkaProfileLookups(kafka, reference.runtime_config().scoring)
        lookups.warm()
        try:
            lookups.follower.wait_until_caught_up()
            yield lookups
        finally:
            lookups.close()
