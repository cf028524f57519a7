"""The forms configuration: ``forms.toml`` read into ``FormsConfig`` of ``FormMapping``.

See the ``connectors.sources.forms`` package docstring for the file's format.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Final, get_args
from urllib.parse import urlsplit

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from cdp.errors import ConfigError, UnmappableError
from schemas.crm import ConsentPurpose

FORM_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
"""Form ids appear in the URL path and in key paths: a slug, no dots or slashes."""

FieldName = Annotated[str, Field(min_length=1, max_length=200)]
FormId = Annotated[str, Field(pattern=FORM_ID_PATTERN)]
CONSENT_PURPOSES: Final[tuple[str, ...]] = get_args(ConsentPurpose)
TRAIT_KEYS: Final = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "first_name_kana",
    "last_name_kana",
    "name",
)
"""Mapping keys that name a posted field holding a trait of the same name."""


class FormMapping(BaseModel):
    """Which posted field means what, for one form (``[forms.<form_id>]``).

    Every key names a posted field. ``email``, ``phone`` and the name keys
    become traits (``name`` is a full name in one field; it may be used with or
    instead of ``first_name``/``last_name``). ``anonymous_id`` is the hidden
    field the page fills with the browser's Segment ``anonymousId``;
    ``user_id`` the shop's own customer id when the visitor is logged in.
    ``consents`` maps a consent purpose (email, sms, line, ads, analytics,
    phone) to the checkbox field that grants it. ``redirect`` (an absolute
    http(s) URL) is where the route answers ``303 See Other`` for HTML form
    posts (urlencoded or multipart); JSON posts, and forms without a
    ``redirect``, get the JSON answer.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    email: FieldName | None = None
    phone: FieldName | None = None
    first_name: FieldName | None = None
    last_name: FieldName | None = None
    first_name_kana: FieldName | None = None
    last_name_kana: FieldName | None = None
    name: FieldName | None = None
    anonymous_id: FieldName = "anonymous_id"
    user_id: FieldName | None = None
    consents: Mapping[ConsentPurpose, FieldName] = Field(default_factory=dict)
    redirect: str | None = None

    @field_validator("redirect")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"must be an absolute http(s) URL, not {value!r}")
        return value

    @model_validator(mode="after")
    def _anonymous_id_field_is_its_own(self) -> FormMapping:
        # The hidden field is left out of the recorded fields and its value
        # becomes an identity: it must not double as a visible field.
        for key, posted in self.mapped_fields().items():
            if key != "anonymous_id" and posted == self.anonymous_id:
                raise ValueError(
                    f"anonymous_id field {posted!r} is also mapped as {key}; "
                    "the browser's anonymous id needs a hidden field of its own"
                )
        return self

    def trait_fields(self) -> dict[str, str]:
        """Trait name → posted field name, for the traits this form maps."""
        mapped = {key: getattr(self, key) for key in TRAIT_KEYS}
        return {key: posted for key, posted in mapped.items() if posted is not None}

    def mapped_fields(self) -> dict[str, str]:
        """Mapping key (``email``, ``consents.ads``, ...) → posted field name."""
        out = self.trait_fields()
        out["anonymous_id"] = self.anonymous_id
        if self.user_id is not None:
            out["user_id"] = self.user_id
        out.update({f"consents.{purpose}": posted for purpose, posted in self.consents.items()})
        return out


class FormsConfig(BaseModel):
    """Every configured form (``forms.toml``), by form id."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    forms: Mapping[FormId, FormMapping] = Field(default_factory=dict)

    def mapping_for(self, form_id: str) -> FormMapping:
        """The mapping of ``form_id``; ``UnmappableError`` if it is not configured.

        Refusing (rather than recording the post as an unmapped Form Submitted)
        keeps spam to made-up form ids out of customer data; the route
        dead-letters the post, and after the form is configured ``cdp
        deadletter retry`` brings it in.
        """
        mapping = self.forms.get(form_id)
        if mapping is None:
            raise UnmappableError(
                f"form {form_id!r} is not configured: add [forms.{form_id}] to forms.toml"
            )
        return mapping


def load_forms(path: Path) -> FormsConfig:
    """The forms configured in ``path``; an empty config if the file does not exist.

    ``ConfigError`` names the file and each offending key path.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return FormsConfig()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return FormsConfig.model_validate(data)
    except ValidationError as error:
        detail = "; ".join(_config_problem(problem) for problem in error.errors())
        raise ConfigError(f"{path}: {detail}") from None


def _config_problem(error: ErrorDetails) -> str:
    loc = [str(part) for part in error["loc"]]
    if loc and loc[-1] == "[key]":  # the key of a table, not its value, is wrong
        loc.pop()
        if len(loc) == 2 and loc[0] == "forms":
            reason = "form id must be letters, digits, '-' or '_' (at most 100)"
        else:
            reason = f"unknown consent purpose; use one of {', '.join(CONSENT_PURPOSES)}"
    elif error["type"] == "extra_forbidden":
        reason = "unknown key"
    elif error["type"] == "string_type":
        reason = "must be a string (the name of a posted field)"
    elif error["type"] in ("model_type", "dict_type", "mapping_type"):
        reason = "must be a table"
    else:
        reason = error["msg"].removeprefix("Value error, ")
    return f"{'.'.join(_toml_key(part) for part in loc) or '<file>'}: {reason}"


def _toml_key(part: str) -> str:
    # Written as in the file, so that forms."a.b" is not read as three keys.
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else orjson.dumps(part).decode()


__all__ = [
    "CONSENT_PURPOSES",
    "FORM_ID_PATTERN",
    "TRAIT_KEYS",
    "FieldName",
    "FormId",
    "FormMapping",
    "FormsConfig",
    "load_forms",
]
