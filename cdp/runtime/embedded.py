"""The embedded runtime: folds the log into projections inside this process.

Per batch of stored events (in offset order):

1. identity runs sequentially (log order is the order of truth) and says which
   customer each event belongs to, merging customers when an event links them;
2. each customer's events wait in a pending list, and a merge moves the
   loser's pending events to the survivor and is itself queued;
3. ``flush`` (at a checkpoint, when a state is read, or once ``flush_every``
   events are pending) loads the states it needs, applies the queued merges
   in log order (``combine`` of the two customers' states) and folds each
   customer's pending events at once (``fold``). The folds are
   order-independent and ``combine`` equals folding the union (property
   tests in tests/unit), so this gives the same states as folding event by
   event, at a fraction of the cost.

Where states live. Without a ``StateStore`` (``cdp.ports.states``) every
state stays in memory: the pure form the tests and the Kafka parity checks
use. With one (``Engine`` gives the DuckDB ``customers`` table), memory holds
only the states changed since the last checkpoint plus a bounded LRU cache of
clean ones (``cache_size``); any other state is read from the store when an
event needs it. When more than ``max_dirty`` customers are changed, the
runtime checkpoints by itself. So memory grows with the cache, not with the
customer count; the identity graph (``projections.identity``) stays in
memory (about 1 KB per customer, docs/architecture.md).

``checkpoint()`` writes changed rows, graph changes and the read position in
one transaction. ``catch_up`` folds whatever the log holds past the saved
position, so a crash between an append and a checkpoint loses nothing. Large
catch-ups (a replay, a bulk ingest) take the grouped path of
``cdp.runtime.grouped`` instead, which folds each customer once.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from cdp.ports.log import EventLog, StoredEvent
from cdp.ports.states import StateStore
from cdp.runtime import customer as customer_state
from cdp.runtime.config import RuntimeConfig
from cdp.runtime.heap import paused_gc
from projections import identity, lead_score, profile
from schemas import AnyEvent

CACHE_SIZE = 20_000
"""Clean customer states kept in memory (LRU) besides the changed ones."""
MAX_DIRTY = 50_000
"""Changed customers that trigger a checkpoint of their own (bounds memory)."""
FLUSH_EVERY = 20_000
"""Pending events that trigger a fold (decoded events are the heaviest objects)."""

CustomerState = customer_state.CustomerState


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
    """Identity, profile and lead-score projections folded in this process."""

    def __init__(
        self,
        config: RuntimeConfig | None = None,
        states: StateStore | None = None,
        *,
        flush_every: int = FLUSH_EVERY,
        cache_size: int = CACHE_SIZE,
        max_dirty: int = MAX_DIRTY,
    ) -> None:
        self.config = config or RuntimeConfig()
        self.states = states
        self.graph = identity.IdentityGraph(self.config.identity)
        self.next_offset = 0
        self.stats = FoldStats()
        self.flush_every = flush_every
        self.cache_size = cache_size
        self.max_dirty = max_dirty
        self._changed: dict[str, CustomerState] = {}  # not yet checkpointed
        self._clean: OrderedDict[str, CustomerState] = OrderedDict()  # LRU, as saved
        self._removed: set[str] = set()  # merged away, rows still to delete
        self._merges: list[tuple[str, str]] = []  # (loser, survivor) not yet combined
        self._pending: dict[str, list[AnyEvent]] = defaultdict(list)
        self._pending_count = 0
        #: Called after each committed checkpoint of the live tables (no prefix)
        #: with what changed; ``cdp.read.model`` keeps its copy with it.
        self.on_checkpoint: Callable[[Checkpointed], None] | None = None
        #: Whether checkpoints report to ``on_checkpoint`` (the live set only).
        self.live = True

    # ----------------------------------------------------------------- restore
    @classmethod
    def restore(
        cls,
        states: StateStore,
        graph_rows: Iterable[identity.Row],
        next_offset: int,
        config: RuntimeConfig | None = None,
        **options: int,
    ) -> EmbeddedRuntime:
        """A runtime resumed from a checkpoint: its graph and position; states stay
        in ``states`` and are read when needed."""
        runtime = cls(config, states, **options)
        runtime.graph = identity.IdentityGraph.from_rows(graph_rows, runtime.config.identity)
        runtime.next_offset = next_offset
        return runtime

    # ------------------------------------------------------------------ states
    def state(self, customer: str) -> CustomerState | None:
        """One customer's folded states (pending events folded first), ``None`` if unknown."""
        self.flush()
        found = self._get(customer)
        if found is None and self.states is not None and customer not in self._removed:
            self._load((customer,))
            found = self._get(customer)
        return found

    def states_in_memory(self) -> Iterator[tuple[str, CustomerState]]:
        """Every state held in memory (all of them when there is no store)."""
        self.flush()
        yield from self._changed.items()
        yield from self._clean.items()

    @property
    def profiles(self) -> dict[str, profile.State]:
        """Every customer's profile state: all of them in memory at once, so for
        tests and small data (``cdp replay --verify`` compares the tables instead)."""
        return {c: s.profile for c, s in self._all_states()}

    @property
    def leads(self) -> dict[str, lead_score.State]:
        """Every customer's lead-score state (see ``profiles``)."""
        return {c: s.lead for c, s in self._all_states()}

    def _all_states(self) -> Iterator[tuple[str, CustomerState]]:
        yield from self.states_in_memory()
        if self.states is not None:
            held = self._changed.keys() | self._clean.keys()
            rest = [c for c in self.graph.customers() if c not in held]
            for customer, (p, lead) in self.states.load(rest).items():
                yield customer, CustomerState(p, lead)

    def _get(self, customer: str) -> CustomerState | None:
        found = self._changed.get(customer)
        if found is None:
            found = self._clean.get(customer)
            if found is not None:
                self._clean.move_to_end(customer)
        return found

    def _load(self, customers: Iterable[str]) -> None:
        """Read the saved states of ``customers`` not in memory into the clean cache."""
        if self.states is None:
            return
        changed, clean, removed = self._changed, self._clean, self._removed
        missing = [c for c in customers if c not in changed and c not in clean and c not in removed]
        for customer, (p, lead) in self.states.load(missing).items():
            clean[customer] = CustomerState(p, lead)

    # -------------------------------------------------------------------- fold
    def apply(self, batch: Iterable[StoredEvent]) -> None:
        """Resolve identities of stored events (offset order) and queue them for folding.

        Events before ``next_offset`` are skipped, so applying twice is harmless.
        """
        pending, graph, stats, merges = self._pending, self.graph, self.stats, self._merges
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
                    stats.merges += 1
                    loser, survivor = merge.from_customer, merge.into_customer
                    merges.append((loser, survivor))
                    moved = pending.pop(loser, None)
                    if moved:
                        pending[survivor].extend(moved)
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
        """Apply queued merges and fold every pending event into its customer's states."""
        if not self._pending and not self._merges:
            return
        rules = self.config.scoring
        needed = set(self._pending)
        for loser, survivor in self._merges:
            needed.add(loser)
            needed.add(survivor)
        self._load(needed)
        changed, clean, removed = self._changed, self._clean, self._removed
        for loser, survivor in self._merges:
            lost = changed.pop(loser, None) or clean.pop(loser, None)
            removed.add(loser)
            merged = customer_state.absorb(self._get(survivor), lost, rules)
            if merged is not None:
                clean.pop(survivor, None)
                changed[survivor] = merged
        for customer, events in self._pending.items():
            state = changed.get(customer) or clean.pop(customer, None)
            changed[customer] = customer_state.fold(state, events, rules)
        self._merges = []
        self._pending = defaultdict(list)
        self._pending_count = 0
        if self.states is not None and len(changed) > self.max_dirty:
            self.checkpoint()
        self._trim()

    def _trim(self) -> None:
        if self.states is None:
            return
        clean = self._clean
        while len(clean) > self.cache_size:
            clean.popitem(last=False)

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
        return bool(self._changed or self._removed or self._pending or self._merges)

    def checkpoint(self) -> int:
        """Save changed customers, graph changes and the read position atomically.

        Returns the number of customer rows written. Needs a store.
        """
        if self.states is None:
            raise RuntimeError("a runtime without a state store has nowhere to checkpoint")
        self.flush()
        rules = self.config.scoring
        changed = tuple(sorted(self._changed))
        rows = (  # a generator: the store writes it in chunks
            customer_state.customer_row(c, s.profile, s.lead, rules)
            for c in changed
            for s in (self._changed[c],)
        )
        removed = tuple(sorted(self._removed - self._changed.keys()))
        written = self.saved(rows, removed, changed)
        self._clean.update(self._changed)
        self._changed.clear()
        self._removed.clear()
        self._trim()
        return written

    def saved(
        self,
        rows: Iterable[dict[str, object]],
        removed: tuple[str, ...],
        changed: tuple[str, ...],
        staged: bool = False,
    ) -> int:
        """Write ``rows`` (with ``staged``: and the rows staged before) with the
        graph's changes and the read position in one transaction, then tell
        ``on_checkpoint`` which customers ``changed``."""
        assert self.states is not None
        changes = self.graph.take_changes()
        fingerprint = self.config.fingerprint()
        written = self.states.save(
            customer_rows=rows,
            removed_customers=removed,
            changes=changes,
            next_offset=self.next_offset,
            config_hash=fingerprint,
            staged=staged,
        )
        if self.on_checkpoint is not None and self.live:
            self.on_checkpoint(
                Checkpointed(changed, removed, changes, self.next_offset, fingerprint)
            )
        return written

    def forget(self) -> None:
        """Drop every cached state (after the store was written behind the cache)."""
        self._clean.clear()

    def customer_ids(self) -> list[str]:
        """Every live customer id, sorted (from the identity graph)."""
        return sorted(self.graph.customers())
