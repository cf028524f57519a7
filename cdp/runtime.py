"""The embedded runtime: folds the log into projections inside this process.

Per batch of stored events (in offset order):

1. identity runs sequentially (log order is the order of truth) and says which
   customer each event belongs to, merging customers when an event links them;
2. a merge combines the two customers' profile and lead-score states
   (``combine``) and moves their not-yet-folded events along;
3. each touched customer's events are folded at once (``fold``): the folds are
   order-independent, so grouping by customer gives the same states as event
   by event.

State lives in memory (the live truth for lookups in this process) and is
checkpointed to DuckDB by ``checkpoint()``: changed rows and the read position
in one transaction. ``catch_up`` folds whatever the log holds past the saved
position, so a crash between an append and a checkpoint loses nothing.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import duckdb
import orjson

from cdp import store
from cdp.log import EventLog, StoredEvent
from projections import identity, lead_score, profile
from schemas import AnyEvent


@dataclass(frozen=True, slots=True)
class RuntimeConfig:
    """The rules the folds run with; their hash is saved with every checkpoint."""

    scoring: lead_score.Rules = lead_score.DEFAULT_RULES
    identity: identity.Rules = field(default_factory=identity.Rules)

    def fingerprint(self) -> str:
        """A short hash of the rules: a checkpoint built with other rules needs a replay."""
        text = orjson.dumps(
            {"scoring": repr(self.scoring), "identity": repr(self.identity)},
            option=orjson.OPT_SORT_KEYS,
        )
        return hashlib.sha256(text).hexdigest()[:16]


@dataclass(slots=True)
class FoldStats:
    """Counters of one runtime's work since it was created."""

    events: int = 0
    unresolved: int = 0
    merges: int = 0
    rejections: int = 0


class EmbeddedRuntime:
    """Identity, profile and lead-score projections folded in memory."""

    def __init__(self, config: RuntimeConfig | None = None) -> None:
        self.config = config or RuntimeConfig()
        self.graph = identity.IdentityGraph(self.config.identity)
        self.profiles: dict[str, profile.State] = {}
        self.leads: dict[str, lead_score.State] = {}
        self.next_offset = 0
        self.stats = FoldStats()
        self._dirty: set[str] = set()
        self._removed: set[str] = set()

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
        runtime.profiles = snapshot.profiles
        runtime.leads = snapshot.leads
        runtime.next_offset = snapshot.next_offset
        return runtime

    # -------------------------------------------------------------------- fold
    def apply(self, batch: Iterable[StoredEvent]) -> None:
        """Fold stored events (offset order); events before ``next_offset`` are skipped."""
        pending: dict[str, list[AnyEvent]] = defaultdict(list)
        graph, stats = self.graph, self.stats
        last = self.next_offset - 1
        for stored in batch:
            if stored.offset <= last:
                continue
            last = stored.offset
            resolution = identity.apply(graph, stored.event, stored.offset)
            stats.events += 1
            if resolution.merges:
                for merge in resolution.merges:
                    self._merge(merge.from_customer, merge.into_customer, pending)
            if resolution.rejections:
                stats.rejections += len(resolution.rejections)
            customer = resolution.customer_id
            if customer is None:
                stats.unresolved += 1
                continue
            pending[customer].append(stored.event)
        self.next_offset = last + 1

        rules = self.config.scoring
        p_initial, l_initial = profile.initial(), lead_score.initial()
        for customer, events in pending.items():
            self.profiles[customer] = profile.fold(self.profiles.get(customer, p_initial), events)
            self.leads[customer] = lead_score.fold(
                self.leads.get(customer, l_initial), events, rules
            )
            self._dirty.add(customer)

    def _merge(self, loser: str, survivor: str, pending: dict[str, list[AnyEvent]]) -> None:
        self.stats.merges += 1
        rules = self.config.scoring
        lost_profile = self.profiles.pop(loser, None)
        if lost_profile is not None:
            kept = self.profiles.get(survivor)
            self.profiles[survivor] = (
                lost_profile if kept is None else profile.combine(kept, lost_profile)
            )
        lost_lead = self.leads.pop(loser, None)
        if lost_lead is not None:
            kept_lead = self.leads.get(survivor)
            self.leads[survivor] = (
                lost_lead if kept_lead is None else lead_score.combine(kept_lead, lost_lead, rules)
            )
        if loser in pending:
            pending[survivor].extend(pending.pop(loser))
        self._dirty.discard(loser)
        self._removed.add(loser)
        self._dirty.add(survivor)

    def catch_up(
        self, log: EventLog, progress: Callable[[int], None] | None = None, batch_size: int = 20_000
    ) -> int:
        """Fold everything the log holds past ``next_offset``; return how many events."""
        before = self.stats.events
        for batch in log.read(self.next_offset, batch_size=batch_size):
            self.apply(batch)
            if progress is not None:
                progress(len(batch))
        return self.stats.events - before

    # -------------------------------------------------------------- checkpoint
    @property
    def dirty(self) -> bool:
        """True when there are changes not yet checkpointed."""
        return bool(self._dirty or self._removed)

    def checkpoint(self, con: duckdb.DuckDBPyConnection, prefix: str = "") -> int:
        """Save changed customers, graph changes and the read position atomically.

        Returns the number of customer rows written.
        """
        rules = self.config.scoring
        rows = [
            store.customer_row(c, self.profiles[c], self.leads[c], rules)
            for c in sorted(self._dirty)
        ]
        store.save(
            con,
            customer_rows=rows,
            removed_customers=sorted(self._removed - self._dirty),
            changes=self.graph.take_changes(),
            next_offset=self.next_offset,
            config_hash=self.config.fingerprint(),
            prefix=prefix,
        )
        self._dirty.clear()
        self._removed.clear()
        return len(rows)

    def customer_ids(self) -> list[str]:
        """Every live customer id, sorted."""
        return sorted(self.profiles)
