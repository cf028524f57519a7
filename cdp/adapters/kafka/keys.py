"""The key topic (``cdp.keys``): one key per identifier, for sealing the distributed log.

``cdp.services.privacy.sealing`` says why events are sealed. This module keeps
the keys: a compacted topic, one partition, where each record is

- **key**: the key id (8 random bytes; names nobody);
- **value**: ``token`` (32 bytes, HMAC-SHA256 of the identifier key under the
  installation's pepper, ``cdp.services.privacy.files``) followed by the
  32-byte secret; a **tombstone** (no value) when the key was destroyed.

Writers (the collector, ``cdp ingest --kafka``) hold the pepper: they find an
identifier's key by its token, and create one (written with ``acks=all``
*before* any event sealed under it) the first time they meet it. Two writers
meeting a new identifier at the same moment each create one: both records
stay, each event names the key it used, and erasure destroys every key of the
token. Readers (the workers, the archiver, the collector's own reads) need no
pepper: they look a key up by its id.

**Erasure** (``destroy``) writes a tombstone per key of the person's
identifiers. Every reader drops a destroyed key as soon as it reads the
tombstone; the broker removes the key's bytes when it compacts the topic
(``max.compaction.lag.ms`` and ``segment.ms`` bound when: ``cdp kafka init``
sets one minute, so a segment rolls at the next key written after a minute and
is compacted then; tansu, memory only, never compacts).

Memory: about 150 bytes per key in each process that holds the ring.
Not thread-safe: one thread uses a ring at a time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from cdp.adapters.kafka.consumers import CLIENT_DEFAULTS, kafka_python
from cdp.adapters.kafka.log_reader import LogReader, unavailable
from cdp.services.privacy import sealing
from cdp.services.privacy.files import token as token_hex
from cdp.services.privacy.sealing import KEY_BYTES, KID_BYTES, Sealer, SubjectKey
from projections.identity.extract import carries_envelope_only, every_identifier_of
from schemas import AnyEvent

log = logging.getLogger(__name__)

TOKEN_BYTES = 32
REFRESH_SECONDS = 1.0
"""A writer re-reads the topic at most this often, to learn of destroyed keys."""
SEALERS_KEPT = 16_384
"""Sets of identifiers whose sealer a writer keeps (about 1 KB each), oldest dropped first."""


class KeyRing:
    """The keys of the topic ``topic``; with ``pepper``, also the writer's half."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        *,
        timeout: float = 30.0,
        pepper: bytes | None = None,
        producer_factory: Any = None,
        client_id: str = "cdp-keys",
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.timeout = timeout
        self._pepper = pepper
        self._producer_factory = producer_factory
        self._producer: Any = None
        self._secrets: dict[bytes, bytes] = {}
        self._kids_of: dict[bytes, list[bytes]] = {}  # token → kids, oldest first
        self._token_of: dict[bytes, bytes] = {}  # kid → token
        self._gone: set[bytes] = set()  # kids known destroyed (or never written)
        self._cache: dict[str, SubjectKey] = {}  # identifier key → the key this writer uses
        self._cached_as: dict[bytes, set[str]] = {}  # kid → identifier keys cached with it
        self._sealers: dict[tuple[str, ...], Sealer] = {}  # identifier keys → their sealer
        # (userId, anonymousId) → sealer, for events that name nobody else
        self._by_envelope: dict[tuple[str | None, str | None], Sealer | None] = {}
        self._position: int | None = None
        self._refreshed = 0.0
        self._reader = LogReader(
            bootstrap, topic, timeout=timeout, max_batch_bytes=1024 * 1024, client_id=client_id
        )
        try:
            self._reader.check_topic()
            self.catch_up()
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self._secrets)

    # ------------------------------------------------------------------ reading
    def catch_up(self) -> None:
        """Read every record written since the last call (keys and tombstones)."""
        if self._position is None:
            self._position = self._beginning()
        end = self._reader.high_water()
        for chunk in self._reader.records(self._position, end, 100_000):
            for message in chunk:
                self._apply(message.key, message.value)
        self._position = max(self._position, end)
        self._refreshed = time.monotonic()

    def secret_of(self, kid: bytes) -> bytes | None:
        """The secret of key ``kid``; ``None`` once it was destroyed.

        A key the ring has not read yet is looked for once at the end of the
        topic: a writer stores a key before any event sealed under it, so what
        is still missing then was destroyed (and compacted away)."""
        secret = self._secrets.get(kid)
        if secret is not None or kid in self._gone:
            return secret
        self.catch_up()
        secret = self._secrets.get(kid)
        if secret is None:
            self._gone.add(kid)
        return secret

    def known(self, kid: bytes) -> bytes | None:
        """The secret of ``kid`` as read so far (no broker call): for a reader that
        calls ``catch_up`` itself when ``unread`` says it must."""
        return self._secrets.get(kid)

    def unread(self, kids: Iterable[bytes]) -> bool:
        """Whether any of ``kids`` is neither read nor known destroyed."""
        return any(kid not in self._secrets and kid not in self._gone for kid in kids)

    def settle(self, kids: Iterable[bytes]) -> None:
        """After a ``catch_up``: the ``kids`` still unread were destroyed."""
        self._gone.update(kid for kid in kids if kid not in self._secrets)

    def prepare(self, kids: Iterable[bytes]) -> None:
        """Make each of ``kids`` read or known destroyed, with at most one ``catch_up``:
        a reader of a batch of sealed records calls it once, then opens each with
        ``known`` (``secret_of`` per record would ask the broker once per new key)."""
        wanted = list(kids)
        if self.unread(wanted):
            self.catch_up()
            self.settle(wanted)

    # ------------------------------------------------------------------ writing
    def refresh(self) -> None:
        """Re-read the topic if it was last read over ``REFRESH_SECONDS`` ago, to
        learn of keys destroyed by an erasure elsewhere (a writer calls it per write)."""
        if time.monotonic() - self._refreshed > REFRESH_SECONDS:
            self.catch_up()

    def sealers_for(self, identifier_sets: Sequence[tuple[str, ...]]) -> list[Sealer | None]:
        """The sealer of each set of identifier keys (``None`` for an empty set: an
        event naming nobody is stored in the clear), its keys created and stored
        first when new (``keys_for``, one write for all of them).

        Kept per set until one of its keys is destroyed: most events of a stream
        come from people seen moments before, and then sealing is a lookup."""
        self.refresh()
        memo = self._sealers
        found: dict[tuple[str, ...], Sealer | None] = {(): None}
        missing: list[tuple[str, ...]] = []
        for names in identifier_sets:
            if names not in found:
                known = memo.get(names)
                if known is None:
                    missing.append(names)
                found[names] = known
        if missing:
            wanted = list(dict.fromkeys(n for names in missing for n in names))
            keys = dict(zip(wanted, self.keys_for(wanted), strict=True))
            for names in missing:
                made = found[names] = sealing.sealer([keys[n] for n in names])
                while len(memo) >= SEALERS_KEPT:
                    del memo[next(iter(memo))]  # the oldest
                memo[names] = made
        return [found[names] for names in identifier_sets]

    def sealers_of(self, events: Sequence[AnyEvent]) -> list[Sealer | None]:
        """The sealer of each event: ``sealers_for`` of ``every_identifier_of`` it.

        An event that names nobody beyond its envelope's ``userId`` and
        ``anonymousId`` (most of a stream: ``carries_envelope_only``) is looked
        up by those two ids, without extracting and normalising them again;
        kept like ``sealers_for``'s, until one of their keys is destroyed."""
        self.refresh()  # first: learn of keys destroyed elsewhere before any lookup
        memo = self._by_envelope
        found: list[Sealer | None] = []
        unknown: list[int] = []
        for i, event in enumerate(events):
            if carries_envelope_only(event):
                pair = (event.user_id, event.anonymous_id)
                if pair in memo:
                    found.append(memo[pair])
                    continue
            found.append(None)
            unknown.append(i)
        if unknown:
            sets = [every_identifier_of(events[i]) for i in unknown]
            for i, made in zip(unknown, self.sealers_for(sets), strict=True):
                found[i] = made
                event = events[i]
                if carries_envelope_only(event):
                    while len(memo) >= SEALERS_KEPT:
                        del memo[next(iter(memo))]  # the oldest
                    memo[event.user_id, event.anonymous_id] = made
        return found

    def keys_for(self, identifier_keys: Iterable[str]) -> list[SubjectKey]:
        """The key of each identifier key (``email:a@b.jp``), created and stored
        (acknowledged by the broker) first when it has none."""
        self.refresh()
        found: list[SubjectKey] = []
        created: dict[str, tuple[bytes, SubjectKey]] = {}
        for identifier in identifier_keys:
            key = self._cache.get(identifier)
            if key is None and identifier in created:
                key = created[identifier][1]
            if key is None:
                token = self._token(identifier)
                kids = self._kids_of.get(token)
                if kids:
                    key = SubjectKey(kids[0], self._secrets[kids[0]])
                    self._cache_as(identifier, key)
                else:
                    key = SubjectKey.new()
                    created[identifier] = (token, key)
            found.append(key)
        if created:
            # Stored before any event sealed under them; remembered only once stored.
            self._send([(key.kid, token + key.secret) for token, key in created.values()])
            for identifier, (token, key) in created.items():
                self._remember(token, key.kid, key.secret)
                self._cache_as(identifier, key)
        return found

    def destroy(self, identifier_keys: Iterable[str]) -> int:
        """Destroy every key of these identifier keys (tombstones, acknowledged);
        the number of keys destroyed."""
        self.catch_up()
        doomed: list[bytes] = []
        for identifier in identifier_keys:
            self._cache.pop(identifier, None)
            doomed.extend(self._kids_of.get(self._token(identifier), ()))
        if doomed:
            self._send([(kid, None) for kid in doomed])
            for kid in doomed:
                self._apply(kid, None)
        return len(doomed)

    def close(self) -> None:
        """Close the consumer and the producer."""
        if self._producer is not None:
            self._producer.close(timeout=self.timeout)
            self._producer = None
        self._reader.close()

    # ------------------------------------------------------------------ inside
    def _token(self, identifier: str) -> bytes:
        if self._pepper is None:
            raise RuntimeError("this key ring was opened without the pepper: it cannot write")
        return bytes.fromhex(token_hex(self._pepper, identifier))

    def _apply(self, kid: bytes | None, value: bytes | None) -> None:
        if kid is None or len(kid) != KID_BYTES:
            log.warning("%s: a record with a malformed key id is ignored", self.topic)
            return
        if value is None:
            if self._secrets.pop(kid, None) is not None:
                sealing.forget()  # no memoised cipher keeps a destroyed secret
                self._sealers.clear()
                self._by_envelope.clear()
            token = self._token_of.pop(kid, None)
            if token is not None:
                kids = [k for k in self._kids_of.get(token, ()) if k != kid]
                if kids:
                    self._kids_of[token] = kids
                else:
                    self._kids_of.pop(token, None)
            self._gone.add(kid)
            for ident in self._cached_as.pop(kid, ()):
                self._cache.pop(ident, None)
            return
        if len(value) != TOKEN_BYTES + KEY_BYTES:
            log.warning("%s: key %s has a malformed value; ignored", self.topic, kid.hex())
            return
        if kid not in self._secrets and kid not in self._gone:
            self._remember(value[:TOKEN_BYTES], kid, value[TOKEN_BYTES:])

    def _cache_as(self, identifier: str, key: SubjectKey) -> None:
        self._cache[identifier] = key
        self._cached_as.setdefault(key.kid, set()).add(identifier)

    def _remember(self, token: bytes, kid: bytes, secret: bytes) -> None:
        self._secrets[kid] = secret
        self._token_of[kid] = token
        self._kids_of.setdefault(token, []).append(kid)

    def _beginning(self) -> int:
        return self._reader.low_water()

    def _send(self, records: list[tuple[bytes, bytes | None]]) -> None:
        kafka = kafka_python()
        try:
            if self._producer is None:
                factory = self._producer_factory or kafka.KafkaProducer
                timeout_ms = int(self.timeout * 1000)
                self._producer = factory(
                    bootstrap_servers=self.bootstrap,
                    client_id="cdp-keys-writer",
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=5,
                    request_timeout_ms=timeout_ms,
                    max_block_ms=timeout_ms,
                    allow_auto_create_topics=False,
                    **CLIENT_DEFAULTS,
                )
            futures = [
                self._producer.send(self.topic, key=kid, value=value, partition=0)
                for kid, value in records
            ]
            self._producer.flush(timeout=self.timeout)
            for future in futures:
                future.get(timeout=0)
        except kafka.errors.KafkaError as error:
            producer, self._producer = self._producer, None
            if producer is not None:
                producer.close(timeout=0)
            raise unavailable(f"cannot write {len(records)} keys to {self.topic}", error) from None
