"""Configuration: where the data directory is and which rules the folds use.

The data directory (``--data-dir`` or ``CDP_DATA_DIR``, default ``./.cdp-data``)
holds everything: ``cdp.duckdb`` (event log + projections) and optional rule
files. Lead-scoring rules come from ``<data dir>/scoring.toml`` when present,
else the packaged defaults (``cdp/defaults/scoring.toml``); a broken file is a
``ConfigError`` naming the file and key.

Every environment variable the platform reads is read here, and only here
(tests/unit/test_layering.py checks it); other modules call the functions below:

==============================  ==========================  ========================
variable                        read by                     meaning
==============================  ==========================  ========================
``CDP_DATA_DIR``                ``Settings.resolve``        the data directory
``CDP_DUCKDB_MEMORY_LIMIT``     ``duckdb_memory_limit``     DuckDB's memory [1GB]
``CDP_KAFKA_BOOTSTRAP``         ``kafka_bootstrap``         broker HOST:PORT
``CDP_KAFKA_PREFIX``            ``kafka_prefix``            topic name prefix [cdp.]
``CDP_KAFKA_INPUT_PREFIX``      ``kafka_input_prefix``      prefix of the input log [the prefix]
``CDP_KAFKA_REPLICATION``       ``cdp kafka init`` option   copies of each partition [1]
``CDP_KAFKA_BROKER_PROFILE``    ``broker_profile``          the faust worker's broker
``CDP_HEALTH_MAX_LAG``          ``health_max_lag``          workers' lag for degraded [1000]
``CDP_DEBUG``                   ``debug``                   tracebacks of internal errors
``NAME`` of ``env:NAME``        ``resolve_secret``          a secret in a config file
==============================  ==========================  ========================

The CLI also names ``CDP_DATA_DIR`` and the Kafka variables as typer
``envvar`` of its options (so ``--help`` shows them); the names come from here.

Importing this module is cheap (the CLI resolves settings before every
command, ``--help`` included): the fold rules and the runtime load only when a
command asks for them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cdp.runtime.config import RuntimeConfig
    from projections import lead_score

DEFAULT_DATA_DIR = Path(".cdp-data")
DATA_DIR_ENV = "CDP_DATA_DIR"
MEMORY_LIMIT_ENV = "CDP_DUCKDB_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "1GB"
"""DuckDB's own memory (it spills larger work to ``<data dir>/duckdb-tmp``).

DuckDB's default is 80% of RAM, and its buffer pool keeps every block it has
read or written up to that limit, so a process's size followed the size of
the log rather than its work. Fold state lives in DuckDB tables with a
bounded cache (``cdp.runtime.embedded``), and bulk work (``cdp.runtime.grouped``)
runs under a lower limit of its own. Override with ``CDP_DUCKDB_MEMORY_LIMIT``
(e.g. ``4GB`` for faster segment queries over a very large log)."""
KAFKA_BOOTSTRAP_ENV = "CDP_KAFKA_BOOTSTRAP"
KAFKA_PREFIX_ENV = "CDP_KAFKA_PREFIX"
KAFKA_INPUT_PREFIX_ENV = "CDP_KAFKA_INPUT_PREFIX"
KAFKA_REPLICATION_ENV = "CDP_KAFKA_REPLICATION"
BROKER_PROFILE_ENV = "CDP_KAFKA_BROKER_PROFILE"
DEFAULT_BROKER_PROFILE = "kafka"
DEBUG_ENV = "CDP_DEBUG"
HEALTH_MAX_LAG_ENV = "CDP_HEALTH_MAX_LAG"
DEFAULT_HEALTH_MAX_LAG = 1000
"""Events the workers may be behind before ``/health`` says ``degraded`` (Kafka mode)."""
SECRET_REFERENCE = "env:"
DEFAULT_SCORING = Path(__file__).parent / "defaults" / "scoring.toml"
DATABASE_FILE = "cdp.duckdb"
SEQUENCE_PRODUCT_A = "TEA-STARTER"
"""Default ``product_a`` of the built-in segment ``a_buyers_without_b``: the demo shop's
starter kit, the first product of its planted A→B pair (``cdp.demo.generate.PRODUCT_A``;
tests/unit/test_generate.py keeps the two equal; the service must not import the demo)."""
SEQUENCE_PRODUCT_B = "MATCHA-BULK-500"
"""Default ``product_b`` of ``a_buyers_without_b``: the bulk matcha bought after it
(``cdp.demo.generate.PRODUCT_B``)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Resolved settings of one data directory."""

    data_dir: Path

    @classmethod
    def resolve(cls, data_dir: Path | None = None) -> Settings:
        """Explicit path, else ``CDP_DATA_DIR``, else ``./.cdp-data``."""
        chosen = data_dir or Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)
        return cls(chosen.expanduser())

    @property
    def database(self) -> Path:
        return self.data_dir / DATABASE_FILE

    @property
    def scoring_file(self) -> Path:
        """The rules file in use: the data directory's own, else the packaged one."""
        own = self.data_dir / "scoring.toml"
        return own if own.exists() else DEFAULT_SCORING

    def runtime_config(self) -> RuntimeConfig:
        """The fold rules for this data directory."""
        from cdp.runtime.config import RuntimeConfig  # noqa: PLC0415  (heavy; see the module doc)

        return RuntimeConfig(scoring=load_scoring(self.scoring_file))


def load_scoring(path: Path) -> lead_score.Rules:
    """Lead-scoring rules from a TOML file; ``ConfigError`` naming file and key."""
    import tomllib  # noqa: PLC0415

    from cdp.errors import ConfigError  # noqa: PLC0415
    from projections import lead_score  # noqa: PLC0415

    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"cannot read scoring rules {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return lead_score.Rules.from_mapping(data, source=str(path))
    except ValueError as error:
        raise ConfigError(str(error)) from None


# ------------------------------------------------------------ environment reads
def duckdb_memory_limit() -> str:
    """``CDP_DUCKDB_MEMORY_LIMIT``, else ``DEFAULT_MEMORY_LIMIT``."""
    return os.environ.get(MEMORY_LIMIT_ENV, DEFAULT_MEMORY_LIMIT)


def kafka_bootstrap() -> str | None:
    """``CDP_KAFKA_BOOTSTRAP`` (HOST:PORT), or ``None`` when unset or empty."""
    return os.environ.get(KAFKA_BOOTSTRAP_ENV) or None


def kafka_prefix() -> str | None:
    """``CDP_KAFKA_PREFIX``, or ``None`` when unset (an empty prefix is a prefix)."""
    return os.environ.get(KAFKA_PREFIX_ENV)


def kafka_input_prefix() -> str | None:
    """``CDP_KAFKA_INPUT_PREFIX`` (the input log's prefix), or ``None`` when unset."""
    return os.environ.get(KAFKA_INPUT_PREFIX_ENV)


def broker_profile() -> str:
    """``CDP_KAFKA_BROKER_PROFILE`` (the faust worker's broker kind), else ``kafka``."""
    return os.environ.get(BROKER_PROFILE_ENV, DEFAULT_BROKER_PROFILE)


def health_max_lag() -> int:
    """``CDP_HEALTH_MAX_LAG`` (events), else ``DEFAULT_HEALTH_MAX_LAG``; ``ConfigError`` if not a
    whole number >= 0."""
    raw = os.environ.get(HEALTH_MAX_LAG_ENV)
    if raw is None or not raw.strip():
        return DEFAULT_HEALTH_MAX_LAG
    if not raw.strip().isdigit():
        from cdp.errors import ConfigError  # noqa: PLC0415  (see the module doc)

        raise ConfigError(f"{HEALTH_MAX_LAG_ENV} must be a whole number of events, not {raw!r}")
    return int(raw)


def debug() -> bool:
    """Whether ``CDP_DEBUG`` is set to anything but the empty string."""
    return bool(os.environ.get(DEBUG_ENV))


def resolve_secret(value: str, where: str = "") -> str:
    """A secret from a config file: ``env:NAME`` is the variable ``NAME``, read now
    (so secrets need not sit in files); any other value is the secret itself.

    ``ConfigError`` naming ``where`` (the file's key) and the variable when it is
    unset or empty."""
    if not value.startswith(SECRET_REFERENCE):
        return value
    name = value[len(SECRET_REFERENCE) :]
    resolved = os.environ.get(name)
    if not resolved:
        from cdp.errors import ConfigError  # noqa: PLC0415  (see the module doc)

        prefix = f"{where}: " if where else ""
        raise ConfigError(f"{prefix}environment variable {name} is not set")
    return resolved
