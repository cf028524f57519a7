"""Webhook sources: verify a platform's signature, map its payload to raw events.

Pure and I/O-free: each module takes the raw request body, header values and
the configured secret, and returns raw Segment-format event dicts (camelCase
envelope) ready for ``cdp.services.ingest`` (``schemas.stamp`` then ``schemas.decode``).
The HTTP routes that call them own the I/O.

Modules:

- ``shopify``: ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the body);
  ``orders/create``, ``orders/paid`` → Order Completed, ``refunds/create`` →
  Order Refunded.
- ``orders``: the platform's own documented generic order JSON (no signature
  scheme of its own; the route authenticates it with a write key) → Order
  Completed / Order Refunded.
- ``line``: LINE Messaging API, ``X-Line-Signature`` (base64 HMAC-SHA256);
  follow/unfollow → Consent Updated, message → Message Received, postback →
  track "LINE Postback".
- ``meta``: Meta webhooks (Instagram messaging): the ``hub.*`` GET challenge
  and ``X-Hub-Signature-256`` (``sha256=<hex HMAC-SHA256>``); messages →
  Message Received / Message Sent.
- ``x``: X Account Activity API: the CRC ``response_token`` and
  ``x-twitter-webhooks-signature`` (``sha256=<base64 HMAC-SHA256>``); direct
  messages → Message Received / Message Sent, mentions → Message Received.
- ``hubspot``, ``salesforce``, ``kintone`` (routes in ``cdp.http.sales_webhooks``):
  the SFA's deals and activities → the sales events, built by ``deals``
  (docs/sales.md).

Errors (from ``cdp.errors``): ``AuthError`` when a signature, token or challenge
is missing, malformed or wrong (the route answers 401 and stores nothing);
``UnmappableError`` when a verified payload as a whole cannot become events
(dead-lettered with the message as the reason); ``ConfigError`` when the
configured secret is empty, which would make any signature "verify".

Payloads that batch several items (LINE, Meta, X) return ``Mapped``: the events
plus one ``Skipped`` per item that produced none (unsupported kind, group-only
sender, missing field), so the route can dead-letter each one with its reason
instead of dropping it silently.

This module holds what the sources share: the result types, the HMAC checks
and the field readers whose errors name the offending path.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NamedTuple

from cdp.errors import AuthError, ConfigError, UnmappableError
from schemas.identifiers import looks_like_email, normalise_phone

RawEvent = dict[str, Any]
"""A raw Segment-format event dict, before ``schemas.stamp``."""

SHA256_BYTES: Final = 32
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_MILLIS: Final = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


@dataclass(frozen=True, slots=True)
class Skipped:
    """One verified item that produced no event: where it was, why, and the item itself."""

    location: str
    """Path of the item in the payload, e.g. ``events[2]``."""
    reason: str
    item: Any
    """The item as received, for the dead-letter store."""

    def __str__(self) -> str:
        return f"{self.location}: {self.reason}"


class Mapped(NamedTuple):
    """What a batching webhook body became: events, and the items that became none."""

    events: list[RawEvent]
    skipped: list[Skipped]


# --- signatures ---------------------------------------------------------------


def require_secret(secret: str, name: str) -> bytes:
    """The secret as UTF-8 bytes; ``ConfigError`` if it is empty (anything would verify)."""
    if not secret:
        raise ConfigError(f"the {name} is empty; configure it before accepting webhooks")
    return secret.encode("utf-8")


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 of ``message`` under ``key`` (the raw 32-byte digest)."""
    return hmac.new(key, message, hashlib.sha256).digest()


def header_value(value: str | None, header: str) -> str:
    """A present, non-blank header value, trimmed; ``AuthError`` naming the header if not."""
    if value is None or not value.strip():
        raise AuthError(f"{header} header is missing")
    return value.strip()


def digest_from_base64(value: str, header: str) -> bytes:
    """Decode a base64 SHA-256 digest; ``AuthError`` if it is not one."""
    try:
        digest = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AuthError(f"{header} is not valid base64") from None
    _check_length(digest, header)
    return digest


def digest_from_hex(value: str, header: str) -> bytes:
    """Decode a hex SHA-256 digest; ``AuthError`` if it is not one."""
    try:
        digest = bytes.fromhex(value)
    except ValueError:
        raise AuthError(f"{header} is not hexadecimal") from None
    _check_length(digest, header)
    return digest


def _check_length(digest: bytes, header: str) -> None:
    if len(digest) != SHA256_BYTES:
        raise AuthError(
            f"{header} is not an HMAC-SHA256 digest "
            f"(decodes to {len(digest)} bytes, expected {SHA256_BYTES})"
        )


def strip_prefix(value: str, prefix: str, header: str, shape: str) -> str:
    """``value`` without its scheme ``prefix``; ``AuthError`` describing ``shape`` if absent."""
    if not value.startswith(prefix):
        raise AuthError(f"{header} is malformed: expected {shape}")
    return value[len(prefix) :]


def check_digest(expected: bytes, given: bytes, header: str) -> None:
    """Constant-time comparison; ``AuthError`` if the digests differ."""
    if not hmac.compare_digest(expected, given):
        raise AuthError(
            f"{header} does not match the body: wrong secret, or the body was changed on the way"
        )


# --- reading payloads ---------------------------------------------------------


@contextmanager
def within(path: str) -> Iterator[None]:
    """Prefix the field path of an ``UnmappableError`` raised inside with ``path``.

    Readers raise messages that start with the path they were given
    (``price must be ...``); inside ``within("items[1]")`` that becomes
    ``items[1].price must be ...``.
    """
    try:
        yield
    except UnmappableError as error:
        raise UnmappableError(f"{path}.{error}") from None


def lookup(data: Any, path: str) -> Any:
    """The value at dotted ``path`` in nested dicts, or ``None`` if any step is missing."""
    value = data
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def need(data: Any, path: str) -> Any:
    """The value at ``path``; ``UnmappableError`` naming it if missing, null or empty."""
    value = lookup(data, path)
    if value is None or value == "":
        raise UnmappableError(f"{path} is missing")
    return value


def need_id(data: Any, path: str) -> str:
    """An identifier at ``path`` (string or integer) as text; ``UnmappableError`` if not one."""
    return as_id(need(data, path), path)


def as_id(value: Any, path: str) -> str:
    """An identifier value (string or integer) as text; ``UnmappableError`` if not one."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise UnmappableError(f"{path} must be a string or an integer id, not {value!r}")
    text = str(value).strip()
    if not text:
        raise UnmappableError(f"{path} is missing")
    return text


def optional_id(data: Any, path: str) -> str | None:
    """An identifier at ``path`` as text, or ``None`` if absent."""
    value = lookup(data, path)
    return None if value is None or value == "" else as_id(value, path)


def optional_text(data: Any, path: str) -> str | None:
    """A string at ``path``, or ``None`` if absent or blank; ``UnmappableError`` if not text."""
    value = lookup(data, path)
    if value is None:
        return None
    if not isinstance(value, str):
        raise UnmappableError(f"{path} must be a string, not {value!r}")
    return value if value.strip() else None


def need_list(data: Any, path: str) -> list[Any]:
    """A list at ``path``; ``UnmappableError`` naming the path if missing or not a list."""
    value = lookup(data, path)
    if not isinstance(value, list):
        what = "missing" if value is None else f"not a list ({type(value).__name__})"
        raise UnmappableError(f"{path} is {what}")
    return value


def amount(value: Any, path: str) -> str:
    """A non-negative decimal amount (number or decimal string) as canonical text.

    Text, not ``Decimal``: raw events are JSON, and the contract parses the
    string exactly (no float rounding).
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise UnmappableError(f"{path} must be a decimal amount, not {value!r}")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise UnmappableError(f"{path} must be a decimal amount, not {value!r}") from None
    if not number.is_finite() or number < 0:
        raise UnmappableError(f"{path} must be a finite amount of at least 0, not {value!r}")
    return str(number)


def iso(moment: datetime) -> str:
    """``moment`` in UTC as ISO-8601 with milliseconds and ``Z``."""
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_from_millis(value: Any, path: str) -> str:
    """Epoch milliseconds (integer, or its decimal text) as an ISO-8601 UTC timestamp."""
    millis: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        millis = value
    elif isinstance(value, str) and value.strip().isdigit():
        millis = int(value.strip())
    if millis is None or not 0 < millis <= _MAX_MILLIS:
        raise UnmappableError(f"{path} must be epoch milliseconds, not {value!r}")
    return iso(_EPOCH + timedelta(milliseconds=millis))


def iso_from_text(value: Any, path: str) -> str:
    """An ISO-8601 timestamp with a UTC offset, normalised to UTC ``Z``.

    A time without an offset is refused rather than guessed: a shop in Japan
    writing local time would otherwise be nine hours off.
    """
    if not isinstance(value, str):
        raise UnmappableError(f"{path} must be an ISO-8601 timestamp, not {value!r}")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise UnmappableError(f"{path} is not an ISO-8601 timestamp: {value!r}") from None
    if moment.tzinfo is None:
        raise UnmappableError(
            f"{path} {value!r} has no UTC offset; write it like 2026-01-01T10:00:00+09:00"
        )
    try:
        return iso(moment)
    except OverflowError:  # e.g. 0001-01-01T00:00:00+05:00 is in year 0 in UTC
        raise UnmappableError(
            f"{path} {value!r} is outside years 1-9999 once converted to UTC"
        ) from None


def drop_none(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` without its ``None`` values (absent and null mean the same to the contracts)."""
    return {key: value for key, value in data.items() if value is not None}


def person_traits(
    email: str | None,
    phone: str | None,
    first_name: str | None = None,
    last_name: str | None = None,
) -> dict[str, Any]:
    """``context.traits`` for a person; an email or phone the contract would refuse is left out.

    An unusable phone number typed at checkout must not cost us the order it
    came with, so it is dropped here rather than failing validation later.
    """
    out: dict[str, Any] = {}
    if email is not None and looks_like_email(email):
        out["email"] = email.strip()
    if phone is not None and normalise_phone(phone) is not None:
        out["phone"] = phone.strip()
    if first_name is not None:
        out["first_name"] = first_name
    if last_name is not None:
        out["last_name"] = last_name
    return out


# --- building events ----------------------------------------------------------

WRITTEN_VERSIONS: Final[dict[str, int]] = {
    "Order Completed": 2,
    "Order Refunded": 1,
    "Message Received": 1,
    "Message Sent": 1,
    "Consent Updated": 1,
}
"""Contract version of the shape these sources write, per typed event. Written
into ``schemaVersion`` so that a later contract version upcasts these events
instead of misreading them as its own shape."""


def track(
    event: str,
    message_id: str,
    properties: dict[str, Any],
    *,
    timestamp: str | None,
    user_id: str | None = None,
    anonymous_id: str | None = None,
    traits: dict[str, Any] | None = None,
) -> RawEvent:
    """A raw track event; ``timestamp`` ``None`` leaves the event time to ``schemas.stamp``."""
    raw: RawEvent = {"type": "track", "event": event, "messageId": message_id}
    if user_id is not None:
        raw["userId"] = user_id
    if anonymous_id is not None:
        raw["anonymousId"] = anonymous_id
    if timestamp is not None:
        raw["timestamp"] = timestamp
    raw["properties"] = properties
    if traits:
        raw["context"] = {"traits": traits}
    version = WRITTEN_VERSIONS.get(event)
    if version is not None:
        raw["schemaVersion"] = version
    return raw


__all__ = [
    "SHA256_BYTES",
    "WRITTEN_VERSIONS",
    "Mapped",
    "RawEvent",
    "Skipped",
    "amount",
    "as_id",
    "check_digest",
    "digest_from_base64",
    "digest_from_hex",
    "drop_none",
    "header_value",
    "hmac_sha256",
    "iso",
    "iso_from_millis",
    "iso_from_text",
    "lookup",
    "need",
    "need_id",
    "need_list",
    "optional_id",
    "optional_text",
    "person_traits",
    "require_secret",
    "strip_prefix",
    "track",
    "within",
]
