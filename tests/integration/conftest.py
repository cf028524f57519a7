"""Fixtures for tests that use a real data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.sources import SourceRegistry
from tests.integration.test_collector import Service, served


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(tmp_path / "data")


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    opened = Engine.open(settings)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    """The collector app on loopback over a fresh data directory, with a ``web``
    source; modules that need another service define their own ``service``."""
    settings = Settings(tmp_path / "data")
    yield from served(settings, SourceRegistry(settings.data_dir).add("web"))
