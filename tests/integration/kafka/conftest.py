"""Kafka-protocol broker fixtures: the Kafka suite runs against both brokers
that install from PyPI (tansu and noida-db), or against ``CDP_TEST_KAFKA_BOOTSTRAP``.

``broker`` is module-scoped and parametrised by kind, so each test module
starts each broker once. Tests needing a fresh broker use ``fresh_broker``.
Topic names in tests should be unique per test (``topic_prefix``) so tests
sharing a broker never see each other's data.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import brokers

KINDS = ["external"] if os.environ.get(brokers.ENV_BOOTSTRAP) else list(brokers.KINDS)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the ``long`` tests first: under ``pytest -n 4`` each then starts on its
    own worker at once and overlaps the short tests, instead of trailing them."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="module", params=KINDS)
def broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[brokers.Broker]:
    """A running broker of each kind, shared by the tests of one module."""
    running = brokers.start(request.param, tmp_path_factory.mktemp(f"broker-{request.param}"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(params=KINDS)
def fresh_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[brokers.Broker]:
    """A broker of each kind for this test alone."""
    running = brokers.start(request.param, tmp_path / "broker")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A topic-name prefix unique to this test."""
    return f"t{uuid.uuid4().hex[:10]}."
