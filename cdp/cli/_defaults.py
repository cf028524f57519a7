"""Constants that command signatures need when the command tree is built.

Typer reads every command's options (names, defaults, help) whenever ``cdp``
starts, ``--help`` included. Importing the modules that own these values would
load pydantic, DuckDB or Kafka clients for every invocation, so the CLI keeps
copies here; tests/e2e/test_cli_hygiene.py fails when a copy drifts from its
source. (Environment variable names need no copy: ``cdp.config`` is cheap.)
"""

from __future__ import annotations

#: ``cdp.adapters.kafka.topics.DEFAULT_PREFIX``
KAFKA_DEFAULT_PREFIX = "cdp."
#: ``cdp.adapters.kafka.topics.DEFAULT_PARTITIONS``
KAFKA_DEFAULT_PARTITIONS = 4
#: ``cdp.adapters.kafka.topics.DEFAULT_APP_ID``
KAFKA_DEFAULT_APP_ID = "cdp-worker"
#: ``cdp.services.analytics.DEFAULT_TZ``
ANALYTICS_DEFAULT_TZ = "Asia/Tokyo"
#: ``cdp.services.tokens.SCOPES``
TOKEN_SCOPES: tuple[str, ...] = ("profiles:read", "segments:read", "privacy:write")
