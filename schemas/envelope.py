"""The Segment-spec envelope and its six message types.

Every event has a ``messageId`` (the dedup key), ``timestamp`` (event time,
already corrected by ``schemas.stamp``), ``receivedAt`` (when the platform
accepted it), and at least one of ``userId`` / ``anonymousId``.
``schemaVersion`` is the version of the event type's contract the producer
wrote (see ``schemas.upcasters``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, Field, model_validator

from schemas.context import EMPTY_CONTEXT, Context, JsonObject, Traits, WireModel

MAX_ID_LENGTH = 200


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside years 1-9999 once converted to UTC") from None


#: An aware time as the same instant in UTC: folds order and compare in UTC, an
#: instant that does not exist in UTC is refused at the door (it would break
#: every fold later), and stdlib UTC compares faster than pydantic's tzinfo.
#: The stored bytes keep the producer's own offset.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_in_utc)]


#: A string without NUL characters (pydantic-core's Rust regex: ~10 ns a field).
#: NUL breaks C-string consumers downstream (ad platform uploads, CSV tools,
#: terminals) and is never part of a real id or name.
NO_NUL_PATTERN = r"^[^\x00]*$"

# The Segment spec defines ids and names as strings. The official SDKs
# stringify numeric ids themselves, so a number here is a producer bug: it is
# refused naming the field (``strict``) instead of being coerced, which would
# let ``123`` and ``"123"`` (or ``1.5`` and ``"1.50"``) pass for one another.
Id = Annotated[
    str, Field(strict=True, min_length=1, max_length=MAX_ID_LENGTH, pattern=NO_NUL_PATTERN)
]
EventName = Annotated[str, Field(strict=True, min_length=1, max_length=200, pattern=NO_NUL_PATTERN)]
Name = Annotated[str, Field(strict=True, pattern=NO_NUL_PATTERN)]


class Envelope(WireModel):
    """Fields every message carries."""

    message_id: Id
    anonymous_id: Id | None = None
    user_id: Id | None = None
    timestamp: UtcDatetime
    received_at: UtcDatetime
    original_timestamp: UtcDatetime | None = None
    sent_at: UtcDatetime | None = None
    context: Context = EMPTY_CONTEXT
    integrations: JsonObject = Field(default_factory=dict)
    schema_version: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _needs_an_id(self) -> Envelope:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("needs userId or anonymousId")
        return self

    @property
    def event_time(self) -> datetime:
        """The corrected event time folds order by."""
        return self.timestamp


class Track(Envelope):
    """A user action with no typed contract of its own."""

    type: Literal["track"]
    event: EventName
    properties: JsonObject = Field(default_factory=dict)


class Identify(Envelope):
    """Who the user is: ties ``userId``/``anonymousId`` to traits."""

    type: Literal["identify"]
    traits: Traits = Traits()


class Page(Envelope):
    """A web page view."""

    type: Literal["page"]
    name: Name | None = None
    category: str | None = None
    properties: JsonObject = Field(default_factory=dict)


class Screen(Envelope):
    """An app screen view."""

    type: Literal["screen"]
    name: Name | None = None
    category: str | None = None
    properties: JsonObject = Field(default_factory=dict)


class Group(Envelope):
    """The user belongs to a group (company, household, ...)."""

    type: Literal["group"]
    group_id: Id
    traits: dict[str, Any] = Field(default_factory=dict)


class Alias(Envelope):
    """Merge a previous identity (``previousId``) into ``userId``."""

    type: Literal["alias"]
    previous_id: Id
    user_id: Id
