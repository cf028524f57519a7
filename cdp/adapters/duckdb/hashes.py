"""``HashSet``: which 64-bit message hashes the embedded log holds, in 8 bytes each.

The log's dedup (``cdp.adapters.duckdb.log``) asks, for every appended
record, whether its ``message_hash`` is already stored. A Python ``dict`` or
``set`` of ints costs ~100-180 bytes per entry (1.4 GB at 11M events); this
keeps sorted ``array('q')`` runs (8 bytes per hash) and a small set of the
latest hashes. When the set is full it becomes a run, and runs of similar size
are merged (as in an LSM tree), so a lookup bisects a handful of arrays and
each hash is copied O(log n) times over the life of the log.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left
from collections.abc import Iterable

RECENT = 1 << 16
"""Hashes kept in the set before they become a sorted run."""


class HashSet:
    """A set of signed 64-bit ints in sorted arrays plus a small set of recent ones."""

    __slots__ = ("_recent", "_runs")

    def __init__(self, hashes: Iterable[int] | array[int] = ()) -> None:
        first = hashes if isinstance(hashes, array) else array("q", hashes)
        self._runs: list[array[int]] = [array("q", sorted(first))] if len(first) else []
        self._recent: set[int] = set()

    def __contains__(self, value: int) -> bool:
        if value in self._recent:
            return True
        for run in self._runs:
            i = bisect_left(run, value)
            if i < len(run) and run[i] == value:
                return True
        return False

    def add(self, value: int) -> None:
        """Remember ``value`` (adding one already held is harmless)."""
        self._recent.add(value)
        if len(self._recent) >= RECENT:
            self._runs.append(array("q", sorted(self._recent)))
            self._recent = set()
            runs = self._runs
            while len(runs) > 1 and len(runs[-2]) <= 2 * len(runs[-1]):
                newer, older = runs.pop(), runs.pop()
                runs.append(array("q", heapq.merge(older, newer)))

    @classmethod
    def from_sorted_bytes(cls, data: bytes) -> HashSet:
        """A set from the native-endian bytes of sorted int64 values (an Arrow buffer)."""
        made = cls()
        run = array("q")
        run.frombytes(data)
        if len(run):
            made._runs = [run]
        return made
