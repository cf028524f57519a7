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

Pure functions: no broker, no clock. One memo: the AES-GCM cipher of each key set
recently used (``_cipher``), keyed by the keys' secret bytes, since deriving the
event key (one HMAC per key) and setting up the cipher cost three times the
encryption itself; ``forget`` empties it, and a key ring calls it when it learns
that a key was destroyed, so no destroyed secret outlives its tombstone in memory.
A writer seals through a ``Sealer`` per key set (header and cipher made once;
a key ring keeps one per set of identifiers, ``KeyRing.sealers_for``, and
finds an event's by its envelope ids alone when it names nobody else,
``KeyRing.sealers_of``). And nonces and new keys are read from the system's
random source 12 KB at a time (``_Random``): one ``os.urandom`` call per event
cost more than the encryption in a busy server (each call releases and re-takes
the GIL).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
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
CIPHERS_KEPT: Final = 16_384
"""Key sets whose cipher is memoised (about 1 KB each): a live stream's recent people."""


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
        drawn = _random.take(KID_BYTES + KEY_BYTES)
        return cls(drawn[:KID_BYTES], drawn[KID_BYTES:])


def event_key(keys: Sequence[SubjectKey]) -> bytes:
    """The event key of ``keys`` (order does not matter; see the module docstring)."""
    return _derive(b"".join(key.secret for key in sorted(keys, key=lambda key: key.kid)))


@dataclass(frozen=True, slots=True)
class Sealer:
    """Seals data under one set of keys: the header (the GCM associated data) and
    the cipher, made once by ``sealer`` and reused for every event of that set."""

    header: bytes
    cipher: AESGCM

    def seal(self, data: bytes) -> bytes:
        """``data`` sealed under this key set, with a fresh nonce."""
        nonce = _random.take(NONCE_BYTES)
        return self.header + nonce + self.cipher.encrypt(nonce, data, self.header)


def sealer(keys: Sequence[SubjectKey]) -> Sealer:
    """The sealer of ``keys`` (at least one, at most 255, distinct)."""
    unique = {key.kid: key for key in keys}
    if not unique:
        raise ValueError("sealing needs at least one subject key")
    if len(unique) > MAX_KEYS:
        raise ValueError(f"an event names at most {MAX_KEYS} identifiers, not {len(unique)}")
    ordered = sorted(unique.values(), key=lambda key: key.kid)
    header = MAGIC + bytes([len(ordered)]) + b"".join(key.kid for key in ordered)
    return Sealer(header, _cipher(b"".join(key.secret for key in ordered)))


def seal(data: bytes, keys: Sequence[SubjectKey]) -> bytes:
    """``data`` sealed under ``keys`` (at least one, at most 255, distinct)."""
    return sealer(keys).seal(data)


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
    found: list[bytes] = []
    for i in range(4, start, KID_BYTES):  # the key ids, in the order they were sealed
        secret = secret_of(value[i : i + KID_BYTES])
        if secret is None:
            return None
        found.append(secret)
    nonce = value[start : start + NONCE_BYTES]
    try:
        return _cipher(b"".join(found)).decrypt(nonce, value[start + NONCE_BYTES :], value[:start])
    except InvalidTag:
        raise SealError(
            f"sealed value under {count} keys fails authentication (altered, or a wrong key)"
        ) from None


class _Random:
    """Random bytes (GCM nonces, new keys) read from ``os.urandom`` in blocks.

    What ``take(n)`` gives is as random as ``secrets.token_bytes(n)``; only the
    system calls are batched, and no byte is given twice. A forked child drops
    the parent's block, so two processes never use the same nonces or keys."""

    BLOCK = 12 * 1024

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._block = b""
        self._at = 0
        os.register_at_fork(after_in_child=self._drop)

    def take(self, n: int) -> bytes:
        """``n`` (at most ``BLOCK``) fresh random bytes."""
        with self._lock:
            if self._at + n > len(self._block):
                self._block, self._at = os.urandom(self.BLOCK), 0
            drawn = self._block[self._at : self._at + n]
            self._at += n
            return drawn

    def _drop(self) -> None:
        self._lock = threading.Lock()  # a lock held at fork time stays held in the child
        self._block, self._at = b"", 0


_random = _Random()


def forget() -> None:
    """Drop every memoised cipher (a key was destroyed: its secret leaves memory)."""
    _cipher.cache_clear()


@lru_cache(maxsize=CIPHERS_KEPT)
def _cipher(secrets_in_kid_order: bytes) -> AESGCM:
    """The AES-GCM cipher under the event key of these secrets."""
    return AESGCM(_derive(secrets_in_kid_order))


def _derive(secrets_in_kid_order: bytes) -> bytes:
    """The HMAC-SHA256 chain of the module docstring over 32-byte secrets."""
    k = _SEED
    for i in range(0, len(secrets_in_kid_order), KEY_BYTES):
        k = hmac.new(secrets_in_kid_order[i : i + KEY_BYTES], k, hashlib.sha256).digest()
    return k


def _header(value: bytes) -> tuple[int, int]:
    """(key count, offset of the nonce) of a sealed value."""
    if not is_sealed(value) or len(value) < 4:
        raise SealError("not a sealed value")
    count = value[3]
    start = 4 + count * KID_BYTES
    if count == 0 or len(value) < start + NONCE_BYTES + 16:
        raise SealError(f"sealed value too short for {count} keys ({len(value)} bytes)")
    return count, start
