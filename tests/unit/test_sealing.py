"""The sealed form of a Kafka log event (cdp.services.privacy.sealing)."""

from __future__ import annotations

import os
import warnings
from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from cdp.adapters.kafka import codec
from cdp.services.ingest import to_record
from cdp.services.privacy import sealing
from cdp.services.privacy.sealing import (
    NONCE_BYTES,
    SealError,
    SubjectKey,
    event_key,
    is_sealed,
    kids_of,
    seal,
    unseal,
)

KEYS = [SubjectKey.new() for _ in range(4)]


@given(st.binary(max_size=2000), st.lists(st.sampled_from(KEYS), min_size=1, max_size=4))
def test_what_is_sealed_opens_with_its_keys_in_any_order(
    data: bytes, keys: list[SubjectKey]
) -> None:
    sealed = seal(data, keys)
    secrets = {k.kid: k.secret for k in keys}
    assert is_sealed(sealed)
    if len(data) >= 16:  # shorter runs may occur in random ciphertext by chance
        assert data not in sealed
    assert set(kids_of(sealed)) == set(secrets)
    assert unseal(sealed, secrets.get) == data
    assert event_key(keys) == event_key(list(reversed(keys)))


def test_without_any_one_key_the_event_cannot_be_opened() -> None:
    sealed = seal(b'{"email":"hanako@example.jp"}', KEYS[:3])
    for gone in KEYS[:3]:
        secrets = {k.kid: k.secret for k in KEYS[:3] if k is not gone}
        assert unseal(sealed, secrets.get) is None


def test_the_memoised_cipher_is_the_event_keys_and_forget_empties_it() -> None:
    """The cipher memo derives what ``event_key`` documents, opens only with every
    secret at hand, and ``forget`` (a key ring reading a tombstone) leaves none."""
    data = b'{"email":"hanako@example.jp"}'
    sealed = seal(data, KEYS[1:3])
    start = 4 + 2 * len(KEYS[0].kid)
    by_hand = AESGCM(event_key(KEYS[1:3])).decrypt(
        sealed[start : start + NONCE_BYTES], sealed[start + NONCE_BYTES :], sealed[:start]
    )
    assert by_hand == data
    secrets = {k.kid: k.secret for k in KEYS[1:3]}
    assert unseal(sealed, secrets.get) == data
    assert sealing._cipher.cache_info().currsize > 0
    del secrets[KEYS[2].kid]  # destroyed: the memo holds its cipher, but it is not used
    assert unseal(sealed, secrets.get) is None
    sealing.forget()
    assert sealing._cipher.cache_info().currsize == 0


def test_nonces_and_keys_never_repeat_and_a_forked_child_draws_its_own() -> None:
    taken = {sealing._random.take(NONCE_BYTES) for _ in range(3 * 1024)}  # three blocks
    assert len(taken) == 3 * 1024 and all(len(n) == NONCE_BYTES for n in taken)
    keys = {SubjectKey.new() for _ in range(1000)}  # from the same blocks, never the same
    assert len({k.kid for k in keys}) == len({k.secret for k in keys}) == 1000
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork in a threaded process
        pid = os.fork()
    if pid == 0:  # the child: what would the parent's next nonce be?
        os.write(write, sealing._random.take(NONCE_BYTES))
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, NONCE_BYTES)
    os.close(read)
    os.close(write)
    assert len(child) == NONCE_BYTES and child != sealing._random.take(NONCE_BYTES)


def test_altered_bytes_or_a_wrong_secret_are_refused() -> None:
    sealed = bytearray(seal(b'{"a":1}', KEYS[:2]))
    secrets = {k.kid: k.secret for k in KEYS[:2]}
    sealed[-1] ^= 1
    with pytest.raises(SealError, match="fails authentication"):
        unseal(bytes(sealed), secrets.get)
    sealed[-1] ^= 1
    wrong = {kid: bytes(32) for kid in secrets}
    with pytest.raises(SealError):
        unseal(bytes(sealed), wrong.get)
    with pytest.raises(SealError, match="too short"):
        unseal(bytes(sealed[:20]), secrets.get)


def test_events_written_before_sealing_still_read() -> None:
    plain = b'{"type":"track"}'
    assert not is_sealed(plain)
    assert codec.open_value(plain, None) == plain
    with pytest.raises(SealError, match="no key ring"):
        codec.open_value(seal(plain, KEYS[:1]), None)
    with pytest.raises(ValueError, match="at least one"):
        seal(plain, [])


def test_the_message_id_of_every_form_of_log_record_is_read_without_unsealing() -> None:
    """Sealed records carry the id as their key; those sealed before that change,
    in a ``message-id`` header (key: a key id); records in the clear, in the JSON."""
    raw = {"type": "track", "event": "Page Viewed", "anonymousId": "a-1", "messageId": "m-7"}
    record = to_record(raw, datetime(2026, 12, 6, tzinfo=UTC), "web")
    sealed = codec.encode(record, sealing.sealer(KEYS[:2]))
    assert is_sealed(sealed.value) and sealed.key == b"m-7"
    assert sealed.headers == [(codec.SOURCE_HEADER, b"web")]
    assert codec.message_id_of(sealed.value, sealed.headers, sealed.key) == "m-7"
    older = [(codec.SOURCE_HEADER, b"web"), (codec.MESSAGE_ID_HEADER, b"m-7")]
    assert codec.message_id_of(sealed.value, older, KEYS[0].kid.hex().encode()) == "m-7"
    with pytest.raises(ValueError, match="without a message id"):
        codec.message_id_of(sealed.value, [], None)
    clear = codec.encode(record)
    assert clear.key == b"a-1"  # the routing key
    assert codec.message_id_of(clear.value, clear.headers, clear.key) == "m-7"
    assert sealed.size == len(b"m-7") + len(sealed.value) + len(codec.SOURCE_HEADER) + 3
