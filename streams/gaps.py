"""Every record of a partition, in offset order: the agents' guard against skipped records.

``cdp.log`` and ``cdp.events.by-customer`` are written without transactions
and never compacted, so the offsets of each partition are contiguous. An
agent therefore knows the next offset it must see (the identity agent from
its journal, the profile agent from a per-partition key in its table), and a
record past it means the consumer skipped records.

That happens: faust's recovery seeks the stream partitions to their
committed offsets once more after the agents have started consuming, and on
tansu the identity agent was seen to receive log offset 424 and then 509,
never 425..508. Folding on would lose those events for good (faust even
commits past such a gap, which it takes for a compacted range).

So an agent folds a partition's records only up to the first gap, drops the
rest of that partition's batch and seeks the partition back to the expected
offset; the skipped records come again. ``Seeks`` keeps the seeks owed and
repeats one that brought nothing back within ``RESEEK_AFTER`` seconds (a
seek can itself be overtaken by records already in flight). A gap below the
partition's earliest offset is not a skip but retention: the agent then
jumps to the earliest offset and logs what was lost.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from typing import Final

RESEEK_AFTER: Final = 3.0
"""Seconds after which a seek that brought nothing back is repeated."""


class Seeks:
    """The seeks owed, per partition: where to, and when last asked for."""

    def __init__(
        self, reseek_after: float = RESEEK_AFTER, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.reseek_after = reseek_after
        self._clock = clock
        self._owed: dict[Hashable, tuple[int, float]] = {}

    def gap(self, tp: Hashable, expected: int) -> bool:
        """A gap before ``expected`` was found on ``tp``: True when a seek is due now."""
        now = self._clock()
        owed = self._owed.get(tp)
        if owed is not None and owed[0] == expected and now - owed[1] < self.reseek_after:
            return False
        self._owed[tp] = (expected, now)
        return True

    def arrived(self, tp: Hashable, offset: int) -> None:
        """``offset`` of ``tp`` was folded: a seek to it or before is settled."""
        owed = self._owed.get(tp)
        if owed is not None and offset >= owed[0]:
            del self._owed[tp]

    def due(self) -> list[tuple[Hashable, int]]:
        """Seeks that brought nothing back in time (they are marked as asked again)."""
        now = self._clock()
        late = [
            (tp, at) for tp, (at, asked) in self._owed.items() if now - asked >= self.reseek_after
        ]
        for tp, at in late:
            self._owed[tp] = (at, now)
        return late

    def forget(self, tps: Iterable[Hashable]) -> None:
        """The partitions went to another worker (a rebalance): nothing is owed for them."""
        for tp in tps:
            self._owed.pop(tp, None)

    def __len__(self) -> int:
        return len(self._owed)


class Cursors:
    """The next offset to fold, per partition; records are admitted one by one.

    ``admit`` says whether to fold a record: the next one (the cursor moves on),
    or one below it (a redelivery, which the folds themselves recognise). A
    record past the cursor is a gap: it and the rest of its partition's batch
    must wait for the seek back (``gapped`` holds such partitions until
    ``new_batch``).
    """

    def __init__(self) -> None:
        self.next: dict[Hashable, int] = {}
        self.gapped: dict[Hashable, int] = {}

    def new_batch(self) -> None:
        self.gapped = {}

    def admit(self, tp: Hashable, offset: int) -> bool:
        """True: fold it. ``tp`` must be ``known`` (``start`` it first)."""
        if tp in self.gapped:
            return False
        expected = self.next[tp]
        if offset > expected:
            self.gapped[tp] = expected
            return False
        if offset == expected:
            self.next[tp] = offset + 1
        return True

    def known(self, tp: Hashable) -> bool:
        return tp in self.next

    def start(self, tp: Hashable, offset: int) -> None:
        """Fold ``tp`` from ``offset`` on (its stored position, or where its records begin)."""
        self.next[tp] = offset

    def forget(self, tps: Iterable[Hashable]) -> None:
        for tp in tps:
            self.next.pop(tp, None)
            self.gapped.pop(tp, None)
