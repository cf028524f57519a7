"""Crypto-shredding of the distributed log: each event sealed under its people's keys.

``cdp.log`` is kept forever and Kafka cannot delete one record from the middle
of a topic. So in Kafka mode every event is stored *sealed*: encrypted with
AES-256-GCM under an **event key derived from the keys of every identifier
the event carries** (its user id, anonymous id, email, phone, LINE id...).
Each identifier has its own random 256-bit key, created the first time the
platform sees it and kept in the key topic (``cdp.adapters.kafka.keys``).
Erasing a person destroys the keys of all their identifiers; every event that
carried any of them can then never be read again, by anyone, while everyone
else's events stay exactly as they were (nothing is rewritten).

Why *every* identifier's key, not one per event: an event that names two
people (an identify of one user carrying an email the merge rules refused to
link) is personal data of both; deriving its key from all its identifiers
makes it unreadable as soon as either is erased, as the embedded runtime
deletes such an event with either person.

The derivation is a chain of HMAC-SHA256 over the identifiers' keys in the
order of their key ids: ``k0 = "cdp-seal-v1"``, ``k(i+1) = HMAC(key_i, k_i)``.
Without any one key the event key cannot be computed.

Sealed value (bytes)::

    b"\\x00S1"  n (1 byte)  n key ids (8 bytes each)  nonce (12)  ciphertext+tag

The header (magic, count, key ids) is the GCM associated data, so it cannot
be altered without detection. A stored event in the clear is a JSON object
and starts with ``{``; ``is_sealed`` tells them apart, so a log written before
sealing reads as before.

Pure functions: no broker, no clock, no global state.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cdp.errors import CdpError, TerminalError

MAGIC: Final = b"\x00S1"
KID_BYTES: Final = 8
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
MAX_KEYS: Final = 255
_SEED: Final = b"cdp-seal-v1"


class SealError(TerminalError, CdpError):
    """A sealed value that is malformed or fails authentication (altered bytes)."""


@dataclass(frozen=True, slots=True)
class SubjectKey:
    """One identifier's key: its id (random, names nobody) and the 32 secret bytes."""

    kid: bytes
    secret: bytes

    @classmethod
    def new(cls) -> SubjectKey:
        """A fresh random key."""
        return cls(secrets.token_bytes(KID_BYTES), secrets.token_bytes(KEY_BYTES))


def event_key(keys: Sequence[SubjectKey]) -> bytes:
    """The event key of ``keys`` (order does not matter; see the module docstring)."""
    k = _SEED
    for key in sorted(keys, key=lambda key: key.kid):
        k = hmac.new(key.secret, k, hashlib.sha256).digest()
    return k


def seal(data: bytes, keys: Sequence[SubjectKey]) -> bytes:
    """``data`` sealed under ``keys`` (at least one, at most 255, distinct)."""
    unique = {key.kid: key for key in keys}
    if not unique:
        raise ValueError("sealing needs at least one subject key")
    if len(unique) > MAX_KEYS:
        raise ValueError(f"an event names at most {MAX_KEYS} identifiers, not {len(unique)}")
    ordered = sorted(unique.values(), key=lambda key: key.kid)
    header = MAGIC + bytes([len(ordered)]) + b"".join(key.kid for key in ordered)
    nonce = secrets.token_bytes(NONCE_BYTES)
    return header + nonce + AESGCM(event_key(ordered)).encrypt(nonce, data, header)


def is_sealed(value: bytes | None) -> bool:
    """Whether ``value`` is a sealed value (else: a stored event in the clear)."""
    return value is not None and value[:3] == MAGIC


def kids_of(value: bytes) -> tuple[bytes, ...]:
    """The key ids a sealed value needs (``SealError`` when it is not one)."""
    count, _ = _header(value)
    return tuple(value[4 + i * KID_BYTES : 4 + (i + 1) * KID_BYTES] for i in range(count))


def unseal(value: bytes, secret_of: Callable[[bytes], bytes | None]) -> bytes | None:
    """The data inside ``value``, or ``None`` when a key is gone (the person was erased).

    ``secret_of(kid)`` gives a key's secret, ``None`` when it was destroyed.
    ``SealError`` when the value is malformed or was altered."""
    count, start = _header(value)
    keys: list[SubjectKey] = []
    for kid in kids_of(value):
        secret = secret_of(kid)
        if secret is None:
            return None
        keys.append(SubjectKey(kid, secret))
    nonce = value[start : start + NONCE_BYTES]
    try:
        return AESGCM(event_key(keys)).decrypt(nonce, value[start + NONCE_BYTES :], value[:start])
    except InvalidTag:
        raise SealError(
            f"sealed value under {count} keys fails authentication (altered, or a wrong key)"
        ) from None


def _header(value: bytes) -> tuple[int, int]:
    """(key count, offset of the nonce) of a sealed value."""
    if not is_sealed(value) or len(value) < 4:
        raise SealError("not a sealed value")
    count = value[3]
    start = 4 + count * KID_BYTES
    if count == 0 or len(value) < start + NONCE_BYTES + 16:
        raise SealError(f"sealed value too short for {count} keys ({len(value)} bytes)")
    return count, start
