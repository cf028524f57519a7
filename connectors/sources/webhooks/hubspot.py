"""HubSpot webhooks: verify HubSpot's request signatures, map deals and engagements.

Signatures (developers.hubspot.com, "Validating requests from HubSpot"), all
keyed by the app's **client secret**:

- **v3** ``X-HubSpot-Signature-v3``: base64 HMAC-SHA256 of
  ``method + URI + body + X-HubSpot-Request-Timestamp``; the URI is the full
  URL HubSpot called with the percent-escapes HubSpot lists decoded
  (``%3A`` → ``:``, ``%2F`` → ``/``, ...). A timestamp (epoch ms) older than
  five minutes is refused, so a captured request cannot be replayed later.
- **v2** (``X-HubSpot-Signature-Version: v2``): ``X-HubSpot-Signature`` is the
  hex SHA-256 of ``secret + method + URI + body``.
- **v1** (``X-HubSpot-Signature-Version: v1``): hex SHA-256 of ``secret + body``.

v3 is checked whenever its header is present (HubSpot sends the older ones
beside it only for compatibility); v1/v2 carry no time, so they cannot stop a
replay: the dedup on ``messageId`` is what keeps a replay from counting twice.

Bodies: the Webhooks API posts a JSON **array** of events (up to 100);
a workflow's "Send a webhook" action posts one JSON **object**. Both are
read as events with HubSpot's field names (``subscriptionType``,
``objectId``, ``propertyName``, ``propertyValue``, ``occurredAt``,
``eventId``), optionally with a ``properties`` object of the record's
properties (plain values or HubSpot's ``{"value": ...}``).

Mapping (``crm`` is ``hubspot``):

- ``deal.creation`` → Deal Created (Won/Lost if created in such a stage);
- ``deal.propertyChange`` of ``dealstage`` → Deal Stage Changed, or Deal Won /
  Deal Lost for the configured won/lost stage ids (default ``closedwon`` /
  ``closedlost``); of ``amount``, ``dealname``, ``closedate``,
  ``hubspot_owner_id``, ``pipeline``, ``deal_currency_code``,
  ``closed_lost_reason``: merged into the deal's facts; such a change without
  the stage (the Webhooks API sends one property per event) → Deal Updated,
  which changes those fields and leaves the deal's status as it was;
- ``object.creation`` / ``object.propertyChange`` of calls (``0-48``),
  meetings (``0-47``), emails (``0-49``), notes (``0-46``) and tasks
  (``0-27``) → Sales Activity Logged (notes and tasks as ``other``);
- anything else is skipped with its reason.

The person: Webhooks API events carry object ids only, never the contact.
We do not call HubSpot back from the webhook (no token in the inbound path,
no network I/O in a mapping); instead the person is read from the event
itself: top-level or ``properties`` keys ``email``, ``phone`` and
``user_id`` (names configurable). A workflow webhook whose body includes the
associated contact's email supplies it; a Webhooks API event without one is
skipped (and dead-lettered) with the reason. docs/sales.md shows the workflow.

``messageId``: ``hubspot:<eventId>`` (the same on HubSpot's retries); a
workflow body without ``eventId`` gets ``hubspot:wf:`` plus a hash of its
content, so a retried delivery is still one event.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from cdp.errors import AuthError, UnmappableError
from connectors.sources.webhooks import (
    Mapped,
    RawEvent,
    Skipped,
    check_digest,
    digest_from_base64,
    digest_from_hex,
    header_value,
    hmac_sha256,
    iso_from_millis,
    iso_from_text,
    lookup,
    need,
    need_id,
    require_secret,
)
from connectors.sources.webhooks.deals import (
    ActivityFacts,
    DealFacts,
    Person,
    Stages,
    activity_event,
    deal_event,
)
from connectors.sources.webhooks.deals import text_of as _text

V3_HEADER: Final = "X-HubSpot-Signature-v3"
TIMESTAMP_HEADER: Final = "X-HubSpot-Request-Timestamp"
SIGNATURE_HEADER: Final = "X-HubSpot-Signature"
VERSION_HEADER: Final = "X-HubSpot-Signature-Version"
MAX_AGE_MS: Final = 5 * 60 * 1000
CRM: Final = "hubspot"

# The escapes HubSpot's v3 instructions decode in the URI before signing.
_URI_DECODE: Final = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
ACTIVITY_OBJECTS: Final = {
    "0-48": "call",
    "0-47": "meeting",
    "0-49": "email",
    "0-46": "other",  # note
    "0-27": "other",  # task
}
_OUTCOME_PROPERTIES: Final = ("hs_call_disposition", "hs_meeting_outcome", "hs_task_status")
_DEAL_PROPERTIES: Final = (
    "dealstage",
    "dealname",
    "amount",
    "closedate",
    "hubspot_owner_id",
    "pipeline",
    "deal_currency_code",
    "closed_lost_reason",
)


@dataclass(frozen=True, slots=True)
class HubSpotMapping:
    """What the HubSpot mapping is configured with (``[hubspot]`` in webhooks.toml)."""

    stages: Stages = field(default_factory=lambda: Stages.of(["closedwon"], ["closedlost"]))
    email_keys: tuple[str, ...] = ("email", "contact_email")
    phone_keys: tuple[str, ...] = ("phone", "contact_phone")
    user_id_keys: tuple[str, ...] = ("user_id", "userId")


DEFAULT_MAPPING: Final = HubSpotMapping()


# --- signatures ---------------------------------------------------------------


def decode_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the listed percent-escapes decoded (either case)."""
    out = uri
    for escape, char in _URI_DECODE.items():
        out = out.replace(escape, char).replace(escape.lower(), char)
    return out


def signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """The ``X-HubSpot-Signature-v3`` value HubSpot sends for this request."""
    key = require_secret(secret, "HubSpot client secret")
    source = method.upper().encode() + decode_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac_sha256(key, source)).decode("ascii")


def signature_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    """The v2 ``X-HubSpot-Signature``: hex SHA-256 of secret + method + URI + body."""
    key = require_secret(secret, "HubSpot client secret")
    return hashlib.sha256(key + method.upper().encode() + uri.encode() + body).hexdigest()


def signature_v1(secret: str, body: bytes) -> str:
    """The v1 ``X-HubSpot-Signature``: hex SHA-256 of secret + body."""
    key = require_secret(secret, "HubSpot client secret")
    return hashlib.sha256(key + body).hexdigest()


def verify(
    method: str,
    uri: str,
    body: bytes,
    headers: Mapping[str, str],
    secret: str,
    now: datetime,
) -> None:
    """Check the request's HubSpot signature; ``AuthError`` saying what is wrong.

    ``headers`` is looked up case-insensitively by the caller's mapping (e.g.
    Starlette's); ``uri`` is the URL HubSpot called (scheme, host, path, query).
    """
    v3 = headers.get(V3_HEADER)
    if v3 is not None:
        stamp = header_value(headers.get(TIMESTAMP_HEADER), TIMESTAMP_HEADER)
        if not stamp.isdigit():
            raise AuthError(f"{TIMESTAMP_HEADER} is not epoch milliseconds: {stamp!r}")
        age = int(now.timestamp() * 1000) - int(stamp)
        if age > MAX_AGE_MS:
            raise AuthError(
                f"{TIMESTAMP_HEADER} is {age // 1000} s old (more than 5 minutes): "
                "refused as a possible replay"
            )
        given = digest_from_base64(header_value(v3, V3_HEADER), V3_HEADER)
        expected = base64.b64decode(signature_v3(secret, method, uri, body, stamp))
        check_digest(expected, given, V3_HEADER)
        return
    version = header_value(headers.get(VERSION_HEADER), f"{V3_HEADER} or {VERSION_HEADER}")
    given = digest_from_hex(
        header_value(headers.get(SIGNATURE_HEADER), SIGNATURE_HEADER), SIGNATURE_HEADER
    )
    match version.lower():
        case "v1":
            expected_hex = signature_v1(secret, body)
        case "v2":
            expected_hex = signature_v2(secret, method, uri, body)
        case _:
            raise AuthError(f"{VERSION_HEADER} {version!r} is not v1 or v2")
    if not hmac.compare_digest(bytes.fromhex(expected_hex), given):
        raise AuthError(
            f"{SIGNATURE_HEADER} ({version}) does not match the request: wrong client secret, "
            "wrong URL configured, or the body was changed on the way"
        )


# --- mapping ------------------------------------------------------------------


def to_events(payload: Any, mapping: HubSpotMapping = DEFAULT_MAPPING) -> Mapped:
    """Raw sales events for a verified body (array or object), and what was skipped."""
    if isinstance(payload, dict):
        items: list[Any] = [payload]
    elif isinstance(payload, list):
        items = payload
    else:
        raise UnmappableError("HubSpot webhook body must be a JSON array or object")
    events: list[RawEvent] = []
    skipped: list[Skipped] = []
    for i, item in enumerate(items):
        try:
            events.append(_event(item, mapping))
        except UnmappableError as error:
            skipped.append(Skipped(f"[{i}]", str(error), item))
    return Mapped(events, skipped)


def _event(item: Any, mapping: HubSpotMapping) -> RawEvent:
    if not isinstance(item, dict):
        raise UnmappableError("an event must be a JSON object")
    kind = need(item, "subscriptionType")
    object_id = need_id(item, "objectId")
    try:
        match kind:
            case "deal.creation" | "deal.propertyChange":
                return deal_event(_deal(item, object_id, kind, mapping), mapping.stages)
            case "object.creation" | "object.propertyChange":
                type_id = str(item.get("objectTypeId", ""))
                if type_id in ACTIVITY_OBJECTS:
                    return activity_event(_activity(item, object_id, type_id, mapping))
                raise UnmappableError(f"objectTypeId {type_id!r} is not a sales activity")
            case _:
                raise UnmappableError(f"subscriptionType {kind!r} has no sales mapping")
    except UnmappableError as error:
        raise UnmappableError(f"HubSpot {kind} {object_id}: {error}") from None


def _properties(item: dict[str, Any]) -> dict[str, Any]:
    """The record's properties (plain or ``{"value": ...}``) with the changed one on top."""
    props: dict[str, Any] = {}
    raw = item.get("properties")
    if isinstance(raw, dict):
        for name, value in raw.items():
            props[name] = value.get("value") if isinstance(value, dict) else value
    name = item.get("propertyName")
    if isinstance(name, str) and name:
        props[name] = item.get("propertyValue")
    return props


def _deal(item: dict[str, Any], deal_id: str, kind: str, mapping: HubSpotMapping) -> DealFacts:
    props = _properties(item)
    if kind == "deal.propertyChange" and not any(p in props for p in _DEAL_PROPERTIES):
        raise UnmappableError(f"property {item.get('propertyName')!r} is not a deal fact we map")
    return DealFacts(
        deal_id=deal_id,
        kind="created" if kind == "deal.creation" else "changed",
        person=_person(item, props, mapping),
        message_id=_message_id(item),
        timestamp=_when(item, props),
        crm=CRM,
        stage=_text(props.get("dealstage")),
        name=_text(props.get("dealname")),
        pipeline=_text(props.get("pipeline")),
        amount=props.get("amount"),
        currency=_text(props.get("deal_currency_code")),
        owner=_text(props.get("hubspot_owner_id")),
        close_date=_close_date(props.get("closedate")),
        lost_reason=_text(props.get("closed_lost_reason")),
    )


def _activity(
    item: dict[str, Any], activity_id: str, type_id: str, mapping: HubSpotMapping
) -> ActivityFacts:
    props = _properties(item)
    outcome = next((_text(props.get(p)) for p in _OUTCOME_PROPERTIES if props.get(p)), None)
    return ActivityFacts(
        activity_id=activity_id,
        activity_type=ACTIVITY_OBJECTS[type_id],
        person=_person(item, props, mapping),
        message_id=_message_id(item),
        timestamp=_when(item, props),
        crm=CRM,
        outcome=outcome,
        owner=_text(props.get("hubspot_owner_id")),
        deal_id=_text(props.get("deal_id")),
    )


def _person(item: dict[str, Any], props: dict[str, Any], mapping: HubSpotMapping) -> Person:
    def first(keys: tuple[str, ...]) -> str | None:
        for key in keys:
            for source in (item, props):
                text = _text(source.get(key))
                if text is not None:
                    return text
        return None

    return Person(first(mapping.user_id_keys), first(mapping.email_keys), first(mapping.phone_keys))


def _message_id(item: dict[str, Any]) -> str:
    event_id = lookup(item, "eventId")
    if isinstance(event_id, str | int) and not isinstance(event_id, bool) and str(event_id):
        return f"hubspot:{event_id}"
    # A workflow body has no event id: its content is the dedup key, less the
    # retry counter HubSpot bumps on each attempt.
    content = {k: v for k, v in item.items() if k != "attemptNumber"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return f"hubspot:wf:{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def _when(item: dict[str, Any], props: dict[str, Any]) -> str | None:
    if item.get("occurredAt") is not None:
        return iso_from_millis(item["occurredAt"], "occurredAt")
    value = props.get("hs_lastmodifieddate")
    if value is None or value == "":
        return None
    if isinstance(value, int) or (isinstance(value, str) and value.strip().isdigit()):
        return iso_from_millis(value, "hs_lastmodifieddate")
    return iso_from_text(value, "hs_lastmodifieddate")


def _close_date(value: Any) -> str | None:
    """HubSpot sends date properties as epoch ms at midnight UTC (or ISO text)."""
    text = _text(value)
    if text is None:
        return None
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC).date().isoformat()
    return text[:10]
