"""The one discriminated union of every event, and its (de)serializer.

``decode(raw)`` is the only way raw data becomes an ``Event``: it finds the
event's tag (the message type, or for typed tracks the event name), runs the
upcasters for that tag, then validates through one ``TypeAdapter``. Errors
become ``EventValidationError`` naming each field path and reason.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import orjson
from pydantic import Discriminator, Tag, TypeAdapter, ValidationError

from schemas.context import Context
from schemas.crm import (
    TYPED_TRACKS,
    ConsentUpdated,
    EmailDelivered,
    EmailLinkClicked,
    EmailOpened,
    FormSubmitted,
    MessageReceived,
    MessageSent,
    OrderCompleted,
    OrderRefunded,
    ProductAdded,
    ProductViewed,
    SupportTicketClosed,
    SupportTicketOpened,
    SurveyAnswered,
)
from schemas.envelope import (
    NO_NUL_PATTERN,
    Alias,
    Envelope,
    Group,
    Identify,
    Page,
    Screen,
    Track,
)
from schemas.errors import EventTooLargeError, EventValidationError, FieldProblem
from schemas.sales import (
    SALES_EVENT_NAMES,
    SALES_TRACKS,
    DealCreated,
    DealLost,
    DealStageChanged,
    DealUpdated,
    DealWon,
    SalesActivityLogged,
)
from schemas.stored import PartCache, with_parts
from schemas.upcasters import upcast

MAX_EVENT_BYTES: Final = 32 * 1024
MESSAGE_TYPES: Final = ("track", "identify", "page", "screen", "group", "alias")
TYPED_EVENT_NAMES: Final[dict[str, type[Envelope]]] = {
    cls.model_fields["event"].annotation.__args__[0]: cls  # type: ignore[union-attr]  # Literal
    for cls in (*TYPED_TRACKS, *SALES_TRACKS)
}
GENERIC_MODELS: Final[dict[str, type[Envelope]]] = {
    "track": Track,
    "identify": Identify,
    "page": Page,
    "screen": Screen,
    "group": Group,
    "alias": Alias,
}
FORMERLY_GENERIC: Final[frozenset[str]] = SALES_EVENT_NAMES
"""Track names that got a typed contract after a release had accepted them as
generic tracks (the sales events, issue 17): a stored track of such a name that
the typed contract refuses was accepted then as a generic track, and is read as
one (``decode_stored``), so replay folds it as it always did."""
#: tag → current schema version (the model's default ``schemaVersion``).
SCHEMA_VERSIONS: Final[dict[str, int]] = {
    tag: int(model.model_fields["schema_version"].default)
    for tag, model in {**GENERIC_MODELS, **TYPED_EVENT_NAMES}.items()
}


def tag_of(raw: Any) -> str | None:
    """The union tag of a raw dict or a model: message type, or typed event name."""
    if isinstance(raw, dict):
        kind, name = raw.get("type"), raw.get("event")
    else:
        kind, name = getattr(raw, "type", None), getattr(raw, "event", None)
    if kind == "track" and isinstance(name, str) and name in TYPED_EVENT_NAMES:
        return name
    return kind if kind in MESSAGE_TYPES else None


Event = Annotated[
    Annotated[Track, Tag("track")]
    | Annotated[Identify, Tag("identify")]
    | Annotated[Page, Tag("page")]
    | Annotated[Screen, Tag("screen")]
    | Annotated[Group, Tag("group")]
    | Annotated[Alias, Tag("alias")]
    | Annotated[ProductViewed, Tag("Product Viewed")]
    | Annotated[ProductAdded, Tag("Product Added")]
    | Annotated[OrderCompleted, Tag("Order Completed")]
    | Annotated[OrderRefunded, Tag("Order Refunded")]
    | Annotated[FormSubmitted, Tag("Form Submitted")]
    | Annotated[MessageReceived, Tag("Message Received")]
    | Annotated[MessageSent, Tag("Message Sent")]
    | Annotated[EmailDelivered, Tag("Email Delivered")]
    | Annotated[EmailOpened, Tag("Email Opened")]
    | Annotated[EmailLinkClicked, Tag("Email Link Clicked")]
    | Annotated[SurveyAnswered, Tag("Survey Answered")]
    | Annotated[SupportTicketOpened, Tag("Support Ticket Opened")]
    | Annotated[SupportTicketClosed, Tag("Support Ticket Closed")]
    | Annotated[ConsentUpdated, Tag("Consent Updated")]
    | Annotated[DealCreated, Tag("Deal Created")]
    | Annotated[DealStageChanged, Tag("Deal Stage Changed")]
    | Annotated[DealWon, Tag("Deal Won")]
    | Annotated[DealLost, Tag("Deal Lost")]
    | Annotated[DealUpdated, Tag("Deal Updated")]
    | Annotated[SalesActivityLogged, Tag("Sales Activity Logged")],
    Discriminator(
        tag_of,
        custom_error_type="invalid_type",
        custom_error_message=f"type must be one of {', '.join(MESSAGE_TYPES)}",
    ),
]
"""Any event the platform accepts (the ``Annotated`` union; see ``AnyEvent``)."""

AnyEvent = Envelope
"""Static type of a decoded event: every member of ``Event`` is an ``Envelope``."""

EVENT_ADAPTER: Final[TypeAdapter[Envelope]] = TypeAdapter(Event)
"""Validates against the whole union (used for JSON Schema and by tools)."""

# decode() dispatches on the tag itself: a callable discriminator makes pydantic
# materialise and re-walk the input, which costs ~40% of validation time.
_ADAPTERS: Final[dict[str, TypeAdapter[Envelope]]] = {
    tag: TypeAdapter(model) for tag, model in {**GENERIC_MODELS, **TYPED_EVENT_NAMES}.items()
}
_TYPE_ERROR = f"type must be one of {', '.join(MESSAGE_TYPES)}"


def _path(loc: tuple[int | str, ...], tag: str | None) -> str:
    parts = list(loc)
    if parts and parts[0] == tag:
        parts = parts[1:]  # the union tag pydantic puts first
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_JSON_TYPES: Final = {
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def _reason(error: Any) -> str:
    """pydantic's message, reworded where the wire contract has a clearer one."""
    kind = error["type"]
    if kind == "string_pattern_mismatch" and error.get("ctx", {}).get("pattern") == NO_NUL_PATTERN:
        return "must not contain a NUL character (\\u0000)"
    if kind == "string_type":
        found = _JSON_TYPES.get(type(error.get("input")), "not a string")
        return f"must be a string, not {found} (send ids and names as JSON strings)"
    return str(error["msg"])


def problems_of(error: ValidationError, tag: str | None) -> list[FieldProblem]:
    """Field paths and reasons of a pydantic error, in wire names."""
    return [FieldProblem(_path(e["loc"], tag), _reason(e)) for e in error.errors()]


def decode(raw: dict[str, Any]) -> Envelope:
    """Upcast and validate one raw event dict; raise ``EventValidationError``."""
    if not isinstance(raw, dict):
        raise EventValidationError([FieldProblem("", "an event must be a JSON object")])
    tag = tag_of(raw)
    if tag is None:
        message_id = raw.get("messageId")
        raise EventValidationError(
            [FieldProblem("type", f"{raw.get('type')!r} is not valid: {_TYPE_ERROR}")],
            message_id if isinstance(message_id, str) else None,
        )
    raw = upcast(tag, raw, SCHEMA_VERSIONS[tag])
    try:
        return _ADAPTERS[tag].validate_python(raw)
    except ValidationError as error:
        message_id = raw.get("messageId")
        raise EventValidationError(
            problems_of(error, tag), message_id if isinstance(message_id, str) else None
        ) from None


def loads(data: bytes | str) -> dict[str, Any]:
    """Parse one JSON event, enforcing the size limit; raise ``EventValidationError``."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > MAX_EVENT_BYTES:
        raise EventTooLargeError(size, MAX_EVENT_BYTES)
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise EventValidationError([FieldProblem("", f"not valid JSON ({error})")]) from None
    if not isinstance(raw, dict):
        raise EventValidationError([FieldProblem("", "an event must be a JSON object")])
    return raw


def dumps(raw: dict[str, Any]) -> bytes:
    """The stored form of a raw event (compact JSON); raise if over the size limit."""
    message_id = raw.get("messageId")
    try:
        data = orjson.dumps(raw)
    except orjson.JSONEncodeError as error:  # e.g. nested deeper than orjson writes (254)
        raise EventValidationError(
            [FieldProblem("", f"cannot be stored as JSON: {error}")],
            message_id if isinstance(message_id, str) else None,
        ) from None
    if len(data) > MAX_EVENT_BYTES:
        raise EventTooLargeError(
            len(data), MAX_EVENT_BYTES, message_id if isinstance(message_id, str) else None
        )
    return data


#: Fields the door now refuses unless they are NUL-free strings; logs written
#: before that rule may hold numbers (then coerced to their text) or NULs.
_STRICT_STRING_FIELDS: Final = (
    "messageId",
    "userId",
    "anonymousId",
    "event",
    "name",
    "groupId",
    "previousId",
)


def _as_formerly_accepted(raw: dict[str, Any]) -> dict[str, Any] | None:
    """``raw`` read the way the contract read it before ids and names were strict:
    a number as its text (pydantic's ``coerce_numbers_to_str``), a NUL as U+FFFD.
    ``None`` when nothing in it needs that."""
    out: dict[str, Any] | None = None
    for key in _STRICT_STRING_FIELDS:
        value = raw.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            fixed: str = str(value)
        elif isinstance(value, str) and "\x00" in value:
            fixed = value.replace("\x00", "\ufffd")
        else:
            continue
        if out is None:
            out = dict(raw)
        out[key] = fixed
    return out


#: tag → the caches of its model-typed parts that repeat across events (see
#: ``schemas.stored``): the context of every tag, the properties of typed tracks.
_CONTEXTS: Final = PartCache(Context)
_PARTS: Final[dict[str, dict[str, PartCache]]] = {
    tag: {"context": _CONTEXTS}
    | (
        {"properties": PartCache(model.model_fields["properties"].annotation)}  # type: ignore[arg-type]  # a Props model
        if tag in TYPED_EVENT_NAMES
        else {}
    )
    for tag, model in {**GENERIC_MODELS, **TYPED_EVENT_NAMES}.items()
}


def decode_stored(data: bytes | str | dict[str, Any]) -> Envelope:
    """Decode an event as stored in the log (already stamped and size-checked),
    given as its bytes or already parsed.

    Validated once, at the door: an event at its tag's current schema version
    reuses the validated models of its parts seen before (``schemas.stored``),
    giving exactly what validation gives; an older version is upcast first.

    The log is immutable, so events the door accepted under an older, laxer
    contract must still decode: a numeric id or a NUL in an id or name (refused
    at the door since) is read as it was read then, and so is a track whose name
    was typed later (``FORMERLY_GENERIC``), deterministically, so replay gives
    the same answer it always gave.
    """
    raw = data if isinstance(data, dict) else orjson.loads(data)
    if type(raw) is dict:
        tag = tag_of(raw)
        version = raw.get("schemaVersion", SCHEMA_VERSIONS.get(tag))  # type: ignore[arg-type]
        if tag is not None and type(version) is int and version == SCHEMA_VERSIONS[tag]:
            try:
                return _ADAPTERS[tag].validate_python(with_parts(raw, _PARTS[tag]))
            except ValidationError:
                pass  # read below as before, with the errors as decode words them
    try:
        return decode(raw)
    except EventValidationError:
        if not isinstance(raw, dict):
            raise
        legacy = _as_formerly_accepted(raw)
        if legacy is not None:
            return decode(legacy)
        generic = as_formerly_generic(raw)
        if generic is None:
            raise
        return generic


def as_formerly_generic(raw: dict[str, Any]) -> Envelope | None:
    """``raw`` read as the generic track a release before its name was typed stored
    (``FORMERLY_GENERIC``); ``None`` when it has another name or is no valid track."""
    name = raw.get("event")
    if raw.get("type") != "track" or not isinstance(name, str) or name not in FORMERLY_GENERIC:
        return None
    try:
        return _ADAPTERS["track"].validate_python(raw)
    except ValidationError:
        return None
