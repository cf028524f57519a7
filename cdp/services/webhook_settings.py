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

    [hubspot]                                  # the SFA sources: docs/sales.md
    client_secret = "env:HUBSPOT_CLIENT_SECRET"

    [salesforce]
    organization_id = "00D5g000004AbCdEAK"

    [kintone]
    token = "env:KINTONE_WEBHOOK_TOKEN"
    [kintone.apps.15]
    kind = "deal"

A value ``env:NAME`` is read from the environment variable ``NAME`` so that
secrets need not sit in files. A platform without a section is not enabled
(its route answers 404). Unknown keys, empty secrets and missing variables
are ``ConfigError`` naming the file and key.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class HubSpot(_Section):
    """HubSpot app webhooks and workflow webhooks (``connectors.sources.webhooks.hubspot``)."""

    client_secret: str
    public_url: str | None = None
    """The URL as configured in HubSpot, which v2/v3 signatures cover; needed when a
    proxy changes the scheme, host or path on the way (default: the URL received)."""
    won_stages: tuple[str, ...] = ("closedwon",)
    lost_stages: tuple[str, ...] = ("closedlost",)
    email_keys: tuple[str, ...] = ("email", "contact_email")
    phone_keys: tuple[str, ...] = ("phone", "contact_phone")
    user_id_keys: tuple[str, ...] = ("user_id", "userId")

    @property
    def secret(self) -> str:
        """The key the platform signs requests with."""
        return self.client_secret


class SalesforcePerson(BaseModel):
    """Which sObject fields of an Outbound Message name the contact."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    user_id: str | None = None
    email: str | None = None
    phone: str | None = None


class Salesforce(_Section):
    """Salesforce Outbound Messages (``connectors.sources.webhooks.salesforce``)."""

    organization_id: str = Field(pattern=r"^00D[0-9A-Za-z]{12}([0-9A-Za-z]{3})?$")
    person: SalesforcePerson = SalesforcePerson()
    lost_reason_field: str = "Loss_Reason__c"
    activity_types: dict[str, str] = Field(default_factory=dict)


class KintoneApp(BaseModel):
    """One kintone app: a deal app or an activity app, with its field codes."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kind: Literal["deal", "activity"]
    fields: dict[str, str] = Field(default_factory=dict)
    won_stages: tuple[str, ...] = ()
    lost_stages: tuple[str, ...] = ()
    activity_types: dict[str, str] = Field(default_factory=dict)

    @field_validator("fields")
    @classmethod
    def _known_names(cls, value: dict[str, str]) -> dict[str, str]:
        known = {
            "deal_id", "activity_id", "name", "stage", "pipeline", "amount", "currency", "owner",
            "close_date", "lost_reason", "activity_type", "outcome", "user_id", "email", "phone",
        }  # fmt: skip
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown names {unknown}; known: {sorted(known)}")
        return value


class Kintone(_Section):
    """kintone webhooks (``connectors.sources.webhooks.kintone``)."""

    token: str = Field(min_length=16)
    """The secret in the webhook URL (``/v1/webhooks/kintone/<token>``)."""
    allowed_networks: tuple[str, ...] = ()
    apps: dict[str, KintoneApp] = Field(default_factory=dict)

    @field_validator("allowed_networks")
    @classmethod
    def _networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for net in value:
            ipaddress.ip_network(net, strict=False)  # ValueError names the bad one
        return value


class WebhookSettings(BaseModel):
    """Which platforms are enabled, with their secrets."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    shopify: Shopify | None = None
    line: Line | None = None
    meta: Meta | None = None
    x: X | None = None
    hubspot: HubSpot | None = None
    salesforce: Salesforce | None = None
    kintone: Kintone | None = None

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
