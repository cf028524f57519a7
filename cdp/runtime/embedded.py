"""The embedded runtime: folds the log into projections inside this process.

Per batch of stored events (in offset order):

1. identity runs sequentially (log order is the order of truth) and says which
   customer each event belongs to, merging customers when an event links them;
2. a merge combines the two customers' profile and lead-score states
   (``combine``) and moves their not-yet-folded events along;
3. each customer's events wait in a pending list and are folded together
   (``fold``) when ``flush`` runs: at a checkpoint, when a state is read, or
   once ``flush_every`` events are pending. The folds are order-independent,
   so this gives the same states as folding event by event, and folding many
   events of one customer at once costs a fraction of folding them one batch
   at a time (the frozen state is thawed and frozen once per flush).

State lives in memory (the live truth for lookups in this process) and is
checkpointed to DuckDB by ``checkpoint()``: changed rows and the read position
in one transaction. ``catch_up`` folds whatever the log holds past the saved
position, so a crash between an append and a checkpoint loses nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import duckdb

from cdp.adapters.duckdb import store
from cdp.ports.log import EventLog, StoredEvent
from cdp.runtime import customer as customer_state
from cdp.runtime.bulk import paused_gc
from cdp.runtime.config import RuntimeConfig
from projections import identity, lead_score, profile
from schemas import AnyEvent


@dataclass(frozen=True, slots=True)
class Checkpointed:
    """What one committed checkpoint of the live tables changed (for read models)."""

    customers: tuple[str, ...]
    """Customers whose rows were written."""
    removed: tuple[str, ...]
    """Customers whose rows were deleted (merged away)."""
    changes: identity.Changes
    next_offset: int
    config_hash: str


@dataclass(slots=True)
class FoldStats:
    """Counters of one runtime's work since it was created."""

    events: int = 0
    unresolved: int = 0
    merges: int = 0
    rejections: int = 0


class EmbeddedRuntime:
    """Identity, profile and lead-score projections folded in memory."""

    def __init__(self, config: RuntimeConfig | None = None, flush_every: int = 100_000) -> None:
        self.config = config or RuntimeConfig()
        self.graph = identity.IdentityGraph(self.config.identity)
        self.next_offset = 0
        self.stats = FoldStats()
        self.flush_every = flush_every
        self._profiles: dict[str, profile.State] = {}
        self._leads: dict[str, lead_score.State] = {}
        self._pending: dict[str, list[AnyEvent]] = defaultdict(list)
        self._pending_count = 0
        self._dirty: set[str] = set()
        self._removed: set[str] = set()
        #: Called after each committed checkpoint of the live tables (no prefix)
        #: with what changed; ``cdp.read.model`` keeps its in-memory copy with it.
        self.on_checkpoint: Callable[[Checkpointed], None] | None = None

    @property
    def profiles(self) -> dict[str, profile.State]:
        """Every customer's profile state (pending events folded first)."""
        self.flush()
        return self._profiles

    @property
    def leads(self) -> dict[str, lead_score.State]:
        """Every customer's lead-score state (pending events folded first)."""
        self.flush()
        return self._leads

    # ----------------------------------------------------------------- restore
    @classmethod
    def restore(
        cls, con: duckdb.DuckDBPyConnection, config: RuntimeConfig | None = None, prefix: str = ""
    ) -> EmbeddedRuntime:
        """A runtime resumed from the checkpoint saved under ``prefix``."""
        runtime = cls(config)
        snapshot = store.load(con, prefix)
        runtime.graph = identity.IdentityGraph.from_rows(
            snapshot.graph_rows, runtime.config.identity
        )
        runtime._profiles = snapshot.profiles
        runtime._leads = snapshot.leads
        runtime.next_offset = snapshot.next_offset
        return runtime

    # -------------------------------------------------------------------- fold
    def apply(self, batch: Iterable[StoredEvent]) -> None:
        """Resolve identities of stored events (offset order) and queue them for folding.

        Events before ``next_offset`` are skipped, so applying twice is harmless.
        """
        pending, graph, stats = self._pending, self.graph, self.stats
        last = self.next_offset - 1
        queued = 0
        for stored in batch:
            if stored.offset <= last:
                continue
            last = stored.offset
            resolution = identity.apply(graph, stored.event, stored.offset)
            stats.events += 1
            if resolution.merges:
                for merge in resolution.merges:
                    self._merge(merge.from_customer, merge.into_customer)
            if resolution.rejections:
                stats.rejections += len(resolution.rejections)
            customer = resolution.customer_id
            if customer is None:
                stats.unresolved += 1
                continue
            pending[customer].append(stored.event)
            queued += 1
        self.next_offset = last + 1
        self._pending_count += queued
        if self._pending_count >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        """Fold every pending event into its customer's states."""
        if not self._pending_count and not self._pending:
            return
        rules = self.config.scoring
        profiles, leads, dirty = self._profiles, self._leads, self._dirty
        for customer, events in self._pending.items():
            folded = customer_state.fold(self._state(customer), events, rules)
            profiles[customer], leads[customer] = folded.profile, folded.lead
            dirty.add(customer)
        self._pending = defaultdict(list)
        self._pending_count = 0

    def _merge(self, loser: str, survivor: str) -> None:
        self.stats.merges += 1
        lost = self._state(loser)
        self._profiles.pop(loser, None)
        self._leads.pop(loser, None)
        merged = customer_state.absorb(self._state(survivor), lost, self.config.scoring)
        if merged is not None:
            self._profiles[survivor], self._leads[survivor] = merged.profile, merged.lead
        moved = self._pending.pop(loser, None)
        if moved:
            self._pending[survivor].extend(moved)
        self._dirty.discard(loser)
        self._removed.add(loser)
        self._dirty.add(survivor)

    def _state(self, customer: str) -> customer_state.CustomerState | None:
        """The customer's folded states (profile and lead score are kept together)."""
        p = self._profiles.get(customer)
        return None if p is None else customer_state.CustomerState(p, self._leads[customer])

    def catch_up(
        self, log: EventLog, progress: Callable[[int], None] | None = None, batch_size: int = 20_000
    ) -> int:
        """Fold everything the log holds past ``next_offset``; return how many events."""
        before = self.stats.events
        with paused_gc():
            for batch in log.read(self.next_offset, batch_size=batch_size):
                self.apply(batch)
                if progress is not None:
                    progress(len(batch))
            self.flush()
        return self.stats.events - before

    # -------------------------------------------------------------- checkpoint
    @property
    def dirty(self) -> bool:
        """True when there are changes not yet checkpointed."""
        return bool(self._dirty or self._removed or self._pending_count)

    def checkpoint(self, con: duckdb.DuckDBPyConnection, prefix: str = "") -> int:
        """Save changed customers, graph changes and the read position atomically.

        Returns the number of customer rows written.
        """
        self.flush()
        rules = self.config.scoring
        rows = (  # a generator: store.save writes it in chunks
            customer_state.customer_row(c, self._profiles[c], self._leads[c], rules)
            for c in sorted(self._dirty)
            if c in self._profiles
        )
        changed = tuple(c for c in sorted(self._dirty) if c in self._profiles)
        removed = tuple(sorted(self._removed - self._dirty))
        changes = self.graph.take_changes()
        written = store.save(
            con,
            customer_rows=rows,
            removed_customers=removed,
            changes=changes,
            next_offset=self.next_offset,
            config_hash=self.config.fingerprint(),
            prefix=prefix,
        )
        self._dirty.clear()
        self._removed.clear()
        if self.on_checkpoint is not None and not prefix:
            self.on_checkpoint(
                Checkpointed(changed, removed, changes, self.next_offset, self.config.fingerprint())
            )
        return written

    def customer_ids(self) -> list[str]:
        """Every live customer id, sorted."""
        return sorted(self.profiles)
