"""How events and dead letters are written to Kafka records, and read back.

Pure functions, no broker import: the log adapter (``cdp.adapters.kafka.log``), the
faust worker (``streams/``) and the Parquet archiver share them, so every
runtime reads exactly what the collector wrote.

Record format of the log topic (``cdp.log``):

- **value**: ``Record.data``, the exact JSON bytes the embedded DuckDB log
  stores as ``payload``, **sealed** under the keys of the identifiers the
  event carries (``cdp.services.privacy.sealing``; erasing a person destroys
  their keys, ``cdp.adapters.kafka.keys``); ``open_value`` unseals it, and
  ``schemas.decode_stored`` (which runs the upcasters) reads it, here
  ``decode_event``. A value written before sealing (JSON in the clear) reads
  as it is.
- **key**: the event's ``messageId`` (UTF-8) for sealed records, so that the
  dedup index is rebuilt without unsealing (records sealed before 2026-12-06
  carry it in a ``message-id`` header instead, and the hex id of their first
  key as the key: both still read); for records written before sealing, the
  routing key (``userId``, else ``anonymousId``, else ``messageId``). The
  topic has one partition and is never compacted: no reader routes on the key.
- **headers**: ``source`` (UTF-8) when the record has one.

Record format of the dead-letter topic (``cdp.services.deadletters``): key
``"<source>/<origin>"`` (UTF-8), value a JSON object
``{"receivedAt", "source", "origin", "reason", "body"}`` where ``origin`` is
the collector endpoint (``batch``, ``webhook:shopify:orders/create``...) or
the topic a worker read the record from, and ``body`` is the rejected bytes in
base64 (they need not be UTF-8 or JSON).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from cdp.ports.log import Record
from cdp.services.privacy import sealing
from cdp.services.privacy.sealing import Sealer
from schemas import AnyEvent, decode_stored

SOURCE_HEADER = "source"
MESSAGE_ID_HEADER = "message-id"
"""Where records sealed before 2026-12-06 carry their ``messageId`` (now the key)."""
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka record to produce: key, value and headers, as bytes."""

    key: bytes
    value: bytes
    headers: Headers

    @property
    def size(self) -> int:
        """Bytes of key, value and headers (what counts toward batch and request limits)."""
        size = len(self.key) + len(self.value)
        for name, value in self.headers:  # a loop, not sum(): once per record sent
            size += len(name) + len(value)
        return size


def routing_key(event: AnyEvent) -> bytes:
    """``userId``, else ``anonymousId``, else ``messageId``, UTF-8 encoded."""
    fields = event.__dict__
    chosen = fields.get("user_id") or fields.get("anonymous_id") or event.message_id
    return str(chosen).encode()


def encode(record: Record, sealer: Sealer | None = None) -> Message:
    """The log-topic record for a validated event, sealed by ``sealer`` when given
    (``KeyRing.sealers_for``: the sealer of the event's identifiers' keys)."""
    headers: Headers = [] if record.source is None else [(SOURCE_HEADER, record.source.encode())]
    if sealer is None:
        return Message(routing_key(record.event), record.data, headers)
    return Message(record.message_id.encode(), sealer.seal(record.data), headers)


def open_value(value: bytes, secret_of: Callable[[bytes], bytes | None] | None) -> bytes | None:
    """The stored event's bytes in a log-topic value: unsealed when sealed (``None``
    when its keys were destroyed: the person was erased), else as they are.

    ``secret_of`` is a key ring's (``KeyRing.secret_of``); without one, a sealed
    value raises ``SealError``."""
    if not sealing.is_sealed(value):
        return value
    if secret_of is None:
        raise sealing.SealError("a sealed log record, and no key ring to open it")
    return sealing.unseal(value, secret_of)


def decode_event(
    value: bytes, secret_of: Callable[[bytes], bytes | None] | None = None
) -> AnyEvent | None:
    """The event in a log-topic value, ``None`` when it was erased
    (``EventValidationError`` when it is not an event, ``SealError`` when sealed bytes
    were altered)."""
    data = open_value(value, secret_of)
    return None if data is None else decode_stored(data)


def source_of(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The ``source`` header of a log-topic record, if any."""
    for name, value in headers or ():
        if name == SOURCE_HEADER:
            return value.decode()
    return None


def message_id_of(
    value: bytes, headers: Sequence[tuple[str, bytes]] | None = None, key: bytes | None = None
) -> str:
    """The ``messageId`` of a log-topic record without validating the whole event:
    a sealed record's key (or its ``message-id`` header, in records sealed before
    the key held it), else the ``messageId`` in the JSON value.

    Cheap enough to rebuild a dedup index from the whole topic; ``ValueError``
    when the value is not a JSON object with a string ``messageId``."""
    if sealing.is_sealed(value):
        for name, header in headers or ():
            if name == MESSAGE_ID_HEADER:
                return header.decode()
        if not key:
            raise ValueError("sealed log record without a message id in its key")
        return key.decode()
    document = orjson.loads(value)
    mid = document.get("messageId") if isinstance(document, dict) else None
    if not isinstance(mid, str):
        raise ValueError("log record has no string messageId")
    return mid


def id_digest(message_id: str) -> bytes:
    """The 128-bit blake2b digest a dedup index keys on (collision odds ~2⁻¹²⁸ per pair).

    Shared by the log adapter's index and the archiver's first-copy index, so
    both call the same records duplicates."""
    return hashlib.blake2b(message_id.encode(), digest_size=16).digest()


# ----------------------------------------------------------------- dead letters
@dataclass(frozen=True, slots=True)
class DeadLetterMessage:
    """A rejected input as carried on the dead-letter topic."""

    received_at: datetime
    source: str | None
    origin: str
    reason: str
    body: bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "receivedAt": self.received_at.isoformat(),
            "source": self.source,
            "origin": self.origin,
            "reason": self.reason,
            "body": base64.b64encode(self.body).decode(),
        }


def encode_dead_letter(letter: DeadLetterMessage) -> Message:
    """The dead-letter-topic record of a rejected input (key ``source/origin``)."""
    key = f"{letter.source or ''}/{letter.origin}".encode()
    return Message(key, orjson.dumps(letter.as_dict()), [])


def decode_dead_letter(value: bytes) -> DeadLetterMessage:
    """Read back a dead-letter-topic value (``ValueError`` / ``KeyError`` if malformed)."""
    data = orjson.loads(value)
    return DeadLetterMessage(
        received_at=datetime.fromisoformat(data["receivedAt"]),
        source=data["source"],
        origin=data["origin"],
        reason=data["reason"],
        body=base64.b64decode(data["body"]),
    )
