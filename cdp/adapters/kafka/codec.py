"""How events and dead letters are written to Kafka records, and read back.

Pure functions, no broker import: the log adapter (``cdp.adapters.kafka.log``), the
faust worker (``streams/``) and the Parquet archiver share them, so every
runtime reads exactly what the collector wrote.

Record format of the log topic (``cdp.log``):

- **value**: ``Record.data``, the exact JSON bytes the embedded DuckDB log
  stores as ``payload``; read back with ``schemas.decode_stored`` (which
  runs the upcasters), here ``decode_event``.
- **key**: the routing key, UTF-8: ``userId``, else ``anonymousId``, else
  ``messageId``. The log topic has one partition, so the key decides no
  placement there; it is what a consumer re-keys by before identity is known,
  and it keeps one person's events together if the topic is ever read as a
  keyed stream.
- **headers**: ``source`` (UTF-8) when the record has one; nothing else.

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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from cdp.ports.log import Record
from schemas import AnyEvent, decode_stored

SOURCE_HEADER = "source"
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
        return len(self.key) + len(self.value) + sum(len(k) + len(v) for k, v in self.headers)


def routing_key(event: AnyEvent) -> bytes:
    """``userId``, else ``anonymousId``, else ``messageId``, UTF-8 encoded."""
    fields = event.__dict__
    chosen = fields.get("user_id") or fields.get("anonymous_id") or event.message_id
    return str(chosen).encode()


def encode(record: Record) -> Message:
    """The log-topic record for a validated event."""
    headers: Headers = [] if record.source is None else [(SOURCE_HEADER, record.source.encode())]
    return Message(routing_key(record.event), record.data, headers)


def decode_event(value: bytes) -> AnyEvent:
    """The event in a log-topic value (``EventValidationError`` when it is not one)."""
    return decode_stored(value)


def source_of(headers: Sequence[tuple[str, bytes]] | None) -> str | None:
    """The ``source`` header of a log-topic record, if any."""
    for name, value in headers or ():
        if name == SOURCE_HEADER:
            return value.decode()
    return None


def message_id_of(value: bytes) -> str:
    """The ``messageId`` of a log-topic value without validating the whole event.

    Cheap enough to rebuild a dedup index from the whole topic; ``ValueError``
    when the value is not a JSON object with a string ``messageId``."""
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
