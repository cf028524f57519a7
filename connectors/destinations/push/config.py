"""Configured push destinations: ``<data dir>/destinations.toml``.

::

    [google]                                  # the destination's name (used by --to)
    platform = "google_ads"
    customer_id = "1234567890"                # the account that owns the user list
    user_list = "customers/1234567890/userLists/987654"
    login_customer_id = "1112223333"          # manager account, when access goes through one
    developer_token = "env:GOOGLE_ADS_DEVELOPER_TOKEN"
    access_token = "env:GOOGLE_ADS_ACCESS_TOKEN"   # OAuth 2 access token (Bearer)

    [meta]
    platform = "meta"
    audience_id = "23850000000000001"         # the customer-file custom audience
    ad_account_id = "act_1234"                # optional, shown by `cdp destinations list`
    access_token = "env:META_ACCESS_TOKEN"

    [line]
    platform = "line"
    channel_access_token = "env:LINE_CHANNEL_ACCESS_TOKEN"
    # audience_group_id = 123   # optional: an existing upload audience; else created

    [crm]
    platform = "webhook"
    url = "https://crm.example.jp/hooks/audiences"
    secret = "env:CRM_WEBHOOK_SECRET"

The sales-force-automation platforms (``salesforce``, ``hubspot``,
``kintone``: lead hand-over with a field mapping) are described in
``connectors.destinations.sfa.config``.

Every destination also takes ``base_url`` (default: the platform's real API
host; tests point it at a loopback fake), ``api_version``, ``consent`` (which
consent a member needs: ``ads`` by default, ``line`` for LINE), ``chunk_size``
(capped at the platform's documented maximum), ``timeout`` (seconds) and
``max_attempts`` (HTTP attempts per request, retries included) and ``backoff``
(seconds before the first retry; doubled each time, capped at 30 s).

Secrets follow the webhooks.toml rule: a value ``env:NAME`` is read from the
environment variable ``NAME`` when the destination is used, so the file can be
listed without them. Unknown keys and unknown platforms are ``ConfigError``
naming the file and the key.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from cdp.errors import ConfigError, NotFoundError
from connectors.destinations.push_destination import PushDestination as _Destination
from connectors.destinations.sfa.config import HubSpot, Kintone, Salesforce

FILE_NAME = "destinations.toml"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class GoogleAds(_Destination):
    """Google Ads Customer Match through OfflineUserDataJobs (REST)."""

    platform: Literal["google_ads"]
    base_url: str = "https://googleads.googleapis.com"
    api_version: str = "v24"
    customer_id: str
    user_list: str
    login_customer_id: str | None = None
    developer_token: str
    access_token: str

    @field_validator("customer_id", "login_customer_id")
    @classmethod
    def _digits(cls, value: str | None) -> str | None:
        if value is None:
            return None
        digits = value.replace("-", "")
        if not digits.isdigit():
            raise ValueError("must be a customer id of digits (dashes allowed)")
        return digits

    @field_validator("user_list")
    @classmethod
    def _user_list(cls, value: str) -> str:
        if not re.fullmatch(r"customers/\d+/userLists/\d+", value):
            raise ValueError("must be a resource name customers/<id>/userLists/<id>")
        return value

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return ("developer_token", "access_token")

    def target(self) -> str:
        return f"google_ads:{self.user_list}"


class Meta(_Destination):
    """A Meta customer-file custom audience (Marketing API ``/{audience_id}/users``)."""

    platform: Literal["meta"]
    base_url: str = "https://graph.facebook.com"
    api_version: str = "v25.0"
    audience_id: str
    ad_account_id: str | None = None
    access_token: str

    @field_validator("audience_id")
    @classmethod
    def _audience(cls, value: str) -> str:
        if not value.isdigit():
            raise ValueError("must be the numeric custom audience id")
        return value

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return ("access_token",)

    def target(self) -> str:
        return f"meta:{self.audience_id}"


class Line(_Destination):
    """A LINE Messaging API audience for uploading user ids (by JSON)."""

    platform: Literal["line"]
    base_url: str = "https://api.line.me"
    consent: str = "line"
    channel_access_token: str
    audience_group_id: int | None = None
    description: str = ""

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return ("channel_access_token",)

    def target(self) -> str:
        return f"line:{self.base_url}"


class Webhook(_Destination):
    """Any HTTP endpoint: signed JSON add/remove batches."""

    platform: Literal["webhook"]
    base_url: str = ""
    url: str
    secret_value: str = Field(alias="secret")

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("url")
    @classmethod
    def _hook_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return value

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return ("secret_value",)

    def target(self) -> str:
        return f"webhook:{self.url}"


AnyDestination = GoogleAds | Meta | Line | Webhook | Salesforce | HubSpot | Kintone
Destination = Annotated[AnyDestination, Field(discriminator="platform")]
_ADAPTER: TypeAdapter[AnyDestination] = TypeAdapter(Destination)
PLATFORMS = ("google_ads", "meta", "line", "webhook", "salesforce", "hubspot", "kintone")


def _problems(error: ValidationError, name: str) -> str:
    parts = []
    for e in error.errors():
        loc = ".".join(str(p) for p in e["loc"] if p not in PLATFORMS)
        parts.append(f"{name}.{loc}: {e['msg']}" if loc else f"{name}: {e['msg']}")
    return "; ".join(parts)


def load_all(data_dir: Path) -> dict[str, AnyDestination]:
    """Every destination configured in the data directory (none when the file is absent)."""
    path = data_dir / FILE_NAME
    if not path.exists():
        return {}
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    out: dict[str, AnyDestination] = {}
    for name, section in data.items():
        if not NAME_RE.match(name):
            raise ConfigError(f"{path}: destination name {name!r} must be letters, digits, _.-")
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [{name}] must be a table")
        if section.get("platform") not in PLATFORMS:
            raise ConfigError(
                f"{path}: {name}.platform must be one of {', '.join(PLATFORMS)}, "
                f"not {section.get('platform')!r}"
            )
        try:
            out[name] = _ADAPTER.validate_python({**section, "name": name})
        except ValidationError as error:
            raise ConfigError(f"{path}: {_problems(error, name)}") from None
    return out


def load(data_dir: Path, name: str) -> AnyDestination:
    """One configured destination; ``NotFoundError`` listing the configured names."""
    every = load_all(data_dir)
    if name not in every:
        known = ", ".join(sorted(every)) or f"none (add one to {data_dir / FILE_NAME})"
        raise NotFoundError(f"no destination named {name!r} is configured; configured: {known}")
    return every[name]
