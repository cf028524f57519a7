"""The state-store port: where a runtime keeps customers' fold states between folds.

The embedded runtime (``cdp.runtime.embedded``) holds only a bounded cache of
customer states in memory; every other state lives in a ``StateStore``. A
checkpoint writes the changed states, the identity graph's changes and the
read position in one transaction (``save``), so the store always holds one
whole checkpoint; ``load`` reads states back on a cache miss. The DuckDB
adapter is ``cdp.adapters.duckdb.states`` (the ``customers`` table).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Protocol

from projections import identity, lead_score, profile

StatePair = tuple[profile.State, lead_score.State]
"""One customer's profile and lead-score states."""


class StateStore(Protocol):
    """Customer states of one projection set, saved a checkpoint at a time."""

    def load(self, customers: Collection[str], /) -> dict[str, StatePair]:
        """The saved states of those of ``customers`` that have one (others are absent)."""
        ...

    def save(
        self,
        *,
        customer_rows: Iterable[dict[str, Any]],
        removed_customers: Iterable[str],
        changes: identity.Changes,
        next_offset: int,
        config_hash: str,
        staged: bool = False,
    ) -> int:
        """Write one checkpoint atomically (rows may be a generator); with ``staged``,
        the rows ``stage`` wrote are part of it. Return the rows written."""
        ...

    def stage(self, customer_rows: Iterable[dict[str, Any]], /) -> int:
        """Write rows for the next ``save(staged=True)`` outside its transaction (a
        large catch-up: the open transaction stays small). Return how many."""
        ...
