"""Webhook secrets: ``<data dir>/webhooks.toml``.

::

    [shopify]
    secret = "env:SHOPIFY_WEBHOOK_SECRET"   # the app's client secret
    source = "shopify"                       # recorded on the events (default: the platform)

    [line]
    channel_secret = "env:LINE_CHANNEL_SECRET"

    [meta]
    app_secret = "env:META_APP_SECRET"
    verify_token = "env:META_VERIFY_TOKEN"

    [x]
    consumer_secret = "env:X_CONSUMER_SECRET"

A value ``env:NAME`` is read from the environment variable ``NAME`` so that
secrets need not sit in files. A platform without a section is not enabled
(its route answers 404). Unknown keys, empty secrets and missing variables
are ``ConfigError`` naming the file and key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from cdp.config import SECRET_REFERENCE, resolve_secret
from cdp.errors import ConfigError

FILE_NAME = "webhooks.toml"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    source: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _resolve(cls, value: Any) -> Any:
        if isinstance(value, str) and value.startswith(SECRET_REFERENCE):
            try:
                return resolve_secret(value)
            except ConfigError as error:  # pydantic names the file's key for a ValueError
                raise ValueError(str(error)) from None
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value


class Shopify(_Section):
    secret: str


class Line(_Section):
    channel_secret: str

    @property
    def secret(self) -> str:
        """The key the platform signs bodies with."""
        return self.channel_secret


class Meta(_Section):
    app_secret: str
    verify_token: str

    @property
    def secret(self) -> str:
        """The key the platform signs bodies with."""
        return self.app_secret


class X(_Section):
    consumer_secret: str

    @property
    def secret(self) -> str:
        """The key the platform signs bodies with."""
        return self.consumer_secret


class WebhookSettings(BaseModel):
    """Which platforms are enabled, with their secrets."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    shopify: Shopify | None = None
    line: Line | None = None
    meta: Meta | None = None
    x: X | None = None

    def signed(self, platform: str) -> Line | Meta | X | None:
        """The section of a signed SNS platform (``line``, ``meta``, ``x``), if enabled."""
        section = getattr(self, platform)
        return section if isinstance(section, Line | Meta | X) else None


def load(data_dir: Path) -> WebhookSettings:
    """The data directory's webhook settings (none enabled when the file is absent)."""
    path = data_dir / FILE_NAME
    if not path.exists():
        return WebhookSettings()
    try:
        data: Mapping[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        return WebhookSettings.model_validate(data)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"{path}: {problems}") from None
