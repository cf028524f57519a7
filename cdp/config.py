"""Configuration: where the data directory is and which rules the folds use.

The data directory (``--data-dir`` or ``CDP_DATA_DIR``, default ``./.cdp-data``)
holds everything: ``cdp.duckdb`` (event log + projections) and optional rule
files. Lead-scoring rules come from ``<data dir>/scoring.toml`` when present,
else the packaged defaults (``cdp/defaults/scoring.toml``); a broken file is a
``ConfigError`` naming the file and key.

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
    from cdp.runtime.embedded import RuntimeConfig
    from projections import lead_score

DEFAULT_DATA_DIR = Path(".cdp-data")
DATA_DIR_ENV = "CDP_DATA_DIR"
DEFAULT_SCORING = Path(__file__).parent / "defaults" / "scoring.toml"
DATABASE_FILE = "cdp.duckdb"


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
        from cdp.runtime.embedded import RuntimeConfig  # noqa: PLC0415  (heavy; see the module doc)

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
