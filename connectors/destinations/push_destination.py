"""What every configured push destination has (``<data dir>/destinations.toml``).

``PushDestination`` is the base of the ad-platform destinations
(``connectors.destinations.push.config``) and of the sales-force-automation
ones (``connectors.destinations.sfa.config``). It lives outside both packages
so that each can import it without importing the other.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cdp import config
from cdp.errors import ConfigError

CONSENTS = ("ads", "email", "line", "sms", "none")


class PushDestination(BaseModel):
    """Fields every destination takes; see ``connectors.destinations.push.config``."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = ""
    base_url: str
    api_version: str = ""
    consent: str = "ads"
    chunk_size: int = Field(default=0, ge=0)
    timeout: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=6, ge=1, le=20)
    backoff: float = Field(default=0.5, gt=0, le=60)

    @field_validator("consent")
    @classmethod
    def _consent(cls, value: str) -> str:
        if value not in CONSENTS:
            raise ValueError(f"must be one of {', '.join(CONSENTS)}")
        return value

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def secret(self, field: str) -> str:
        """A secret field resolved (``env:NAME`` read now); ``ConfigError`` if unset."""
        raw = getattr(self, field)
        if not isinstance(raw, str) or not raw:
            raise ConfigError(f"destination {self.name!r}: {field} is not set")
        return config.resolve_secret(raw, f"destination {self.name!r}: {field}")

    @property
    def secret_fields(self) -> tuple[str, ...]:
        return ()

    def target(self) -> str:
        """What the destination writes to, for people and for the sync journal."""
        return self.base_url
