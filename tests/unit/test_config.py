"""``cdp.config``: the environment reads and the ``env:NAME`` secret rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from cdp import config
from cdp.errors import ConfigError


def test_the_data_dir_comes_from_the_option_then_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(config.DATA_DIR_ENV, raising=False)
    assert config.Settings.resolve().data_dir == config.DEFAULT_DATA_DIR
    monkeypatch.setenv(config.DATA_DIR_ENV, str(tmp_path / "env"))
    assert config.Settings.resolve().data_dir == tmp_path / "env"
    assert config.Settings.resolve(tmp_path / "given").data_dir == tmp_path / "given"


def test_unset_variables_give_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        config.MEMORY_LIMIT_ENV,
        config.KAFKA_BOOTSTRAP_ENV,
        config.KAFKA_PREFIX_ENV,
        config.BROKER_PROFILE_ENV,
        config.DEBUG_ENV,
    ):
        monkeypatch.delenv(name, raising=False)
    assert config.duckdb_memory_limit() == "1GB"
    assert config.kafka_bootstrap() is None
    assert config.kafka_prefix() is None
    assert config.broker_profile() == "kafka"
    assert config.debug() is False


def test_set_variables_are_read_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(config.MEMORY_LIMIT_ENV, "8GB")
    monkeypatch.setenv(config.KAFKA_BOOTSTRAP_ENV, "broker:9092")
    monkeypatch.setenv(config.KAFKA_PREFIX_ENV, "")  # an empty prefix is a prefix
    monkeypatch.setenv(config.BROKER_PROFILE_ENV, "tansu")
    monkeypatch.setenv(config.DEBUG_ENV, "1")
    assert config.duckdb_memory_limit() == "8GB"
    assert config.kafka_bootstrap() == "broker:9092"
    assert config.kafka_prefix() == ""
    assert config.broker_profile() == "tansu"
    assert config.debug() is True
    monkeypatch.setenv(config.KAFKA_BOOTSTRAP_ENV, "")
    monkeypatch.setenv(config.DEBUG_ENV, "")
    assert config.kafka_bootstrap() is None
    assert config.debug() is False


def test_a_secret_reference_reads_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDP_TEST_SECRET", "s3cret")
    assert config.resolve_secret("env:CDP_TEST_SECRET") == "s3cret"
    assert config.resolve_secret("literal-secret") == "literal-secret"


def test_a_missing_secret_names_the_key_and_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CDP_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"^\[shopify\] secret: environment variable "):
        config.resolve_secret("env:CDP_TEST_SECRET", "[shopify] secret")
    monkeypatch.setenv("CDP_TEST_SECRET", "")
    with pytest.raises(ConfigError, match=r"^environment variable CDP_TEST_SECRET is not set$"):
        config.resolve_secret("env:CDP_TEST_SECRET")
