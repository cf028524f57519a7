"""What a process's log writer shares with the reader of that log in its other threads.

``cdp serve --kafka`` writes events to the log topic (sealed,
``cdp.services.privacy.sealing``) and reads them back at once: its topic
follower (``cdp.adapters.kafka.follower``) keeps every identifier's recent
events for the lookups. Opening each of its own events again would cost as much
as sealing it, so the writer hands the follower what it has just written:

- the events themselves, the exact bytes it sealed, by offset in the log topic
  (``wrote`` / ``take``): the follower uses them instead of unsealing; at most
  ``KEEP`` are held (a few MB), so a follower that falls further behind opens
  the rest as before;
- the keys its ring holds (``known``), for its own events past that window:
  the follower catches up on the key topic only for keys other writers made.

Thread-safe: the writer's thread writes, the follower's thread reads.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from cdp.adapters.kafka.keys import KeyRing

KEEP: Final = 20_000
"""Events held for the follower (the newest; about two seconds of a busy collector)."""


class OwnWrites:
    """The writer's side of the log topic ``topic``, for a reader of the same topic."""

    def __init__(self, topic: str, keep: int = KEEP) -> None:
        self.topic = topic
        self._keep = keep
        self._ring: KeyRing | None = None
        self._events: dict[int, bytes] = {}  # offset → the stored event's bytes
        self._lock = threading.Lock()

    def hold(self, ring: KeyRing | None) -> None:
        """The writer's current key ring (a re-opened log brings a new one)."""
        self._ring = ring

    def known(self, kid: bytes) -> bytes | None:
        """The secret of ``kid`` if the writer's ring holds it (``None``: ask the topic)."""
        ring = self._ring
        return None if ring is None else ring.known(kid)

    def wrote(self, offsets: Sequence[int], data: Sequence[bytes]) -> None:
        """The writer stored ``data[i]`` at ``offsets[i]`` (acknowledged)."""
        with self._lock:
            events = self._events
            events.update(zip(offsets, data, strict=True))
            excess = len(events) - self._keep
            if excess > 0:  # the oldest first: a dict keeps insertion order
                for offset in list(itertools.islice(events, excess)):
                    del events[offset]

    def take(self, offsets: Iterable[int]) -> dict[int, bytes]:
        """The events of ``offsets`` this writer stored and still holds, handed over
        (each is given once)."""
        with self._lock:
            events = self._events
            found = {}
            for offset in offsets:
                data = events.pop(offset, None)
                if data is not None:
                    found[offset] = data
            return found
