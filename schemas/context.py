"""Shared parts of the Segment envelope: ``context`` and identify ``traits``.

Field names follow the Segment spec (camelCase on the wire); Python code reads
them snake_case. Unknown keys are kept (``extra="allow"``): producers add
their own context and traits, and the platform must not lose them.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from schemas.identifiers import JUNK_VALUES, looks_like_email, normalise_phone


class WireModel(BaseModel):
    """Base of every contract model: frozen, camelCase aliases, extras kept."""

    model_config = ConfigDict(
        frozen=True,
        extra="allow",
        alias_generator=to_camel,
        populate_by_name=True,
        coerce_numbers_to_str=True,
    )


class Campaign(WireModel):
    """UTM parameters of the campaign that brought the visitor (``context.campaign``)."""

    name: str | None = None
    source: str | None = None
    medium: str | None = None
    term: str | None = None
    content: str | None = None


class PageContext(WireModel):
    """The page the event happened on (``context.page``)."""

    path: str | None = None
    referrer: str | None = None
    search: str | None = None
    title: str | None = None
    url: str | None = None


class Library(WireModel):
    """The SDK that sent the event."""

    name: str | None = None
    version: str | None = None


class Address(WireModel):
    """A postal address trait. ``state`` carries the prefecture for Japan."""

    city: str | None = None
    country: str | None = None
    postal_code: str | None = Field(default=None, alias="postalCode")
    state: str | None = None
    street: str | None = None


def _is_placeholder(value: str | None) -> bool:
    # Trackers send "", "null", "undefined" for unknown traits: absent, not wrong.
    return value is not None and value.strip().lower() in JUNK_VALUES


def _check_email(value: str | None) -> str | None:
    if value is None or _is_placeholder(value):
        return None
    if not looks_like_email(value):
        raise ValueError("not an email address")
    return value


def _check_phone(value: str | None) -> str | None:
    if value is None or _is_placeholder(value):
        return None
    if normalise_phone(value) is None:
        raise ValueError("not a phone number (give it with a country code, or a Japanese number)")
    return value


class Traits(WireModel):
    """What is known about a person (identify traits, ``context.traits``).

    The reserved traits of the Segment spec are typed; anything else is kept
    as given. ``email`` and ``phone`` must be plausible; identity normalises
    them further.
    """

    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    first_name_kana: str | None = None
    last_name_kana: str | None = None
    name: str | None = None
    gender: str | None = None
    birthday: date | None = None
    age: int | None = Field(default=None, ge=0, le=150)
    address: Address | None = None
    preferred_channel: str | None = None
    created_at: str | None = None

    _email = field_validator("email")(_check_email)
    _phone = field_validator("phone")(_check_phone)


class Context(WireModel):
    """Where and how the event happened (``context``)."""

    ip: str | None = None
    user_agent: str | None = None
    locale: str | None = None
    timezone: str | None = None
    page: PageContext | None = None
    campaign: Campaign | None = None
    library: Library | None = None
    traits: Traits | None = None
    channel: str | None = None
    source: str | None = None


EMPTY_CONTEXT = Context()

JsonObject = dict[str, Any]
