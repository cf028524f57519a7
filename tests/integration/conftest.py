"""Fixtures for tests that use a real data directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp.config import Settings
from cdp.engine import Engine


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
