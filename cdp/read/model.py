"""The lookup read model: what ``GET /v1/profiles/...`` answers from, in memory.

Loaded once from the checkpointed tables (``load``, one bulk query per table
in one read transaction) and kept up to date by the embedded runtime: after
each committed checkpoint it hands over what changed (``EmbeddedRuntime.
on_checkpoint``), and ``apply`` re-reads those customers' rows, moves the
identifiers and merges, files the events appended since the previous
checkpoint into the customers' recent-event rings, and publishes.

Per customer it holds one immutable ``Entry``: the profile's stored columns
pre-serialised as JSON, the few values the "now" columns are computed from,
the lead-score buckets that explain the score (compact JSON), the identifiers,
the merges (JSON) and a ring of the ``RING`` most recent events (JSON). Beside
it: identifier → customer, merged-away customer → survivor, and the log clock
and read position of the checkpoint. ``apply`` builds new entries aside and
swaps them in under a lock held only for the dict updates; readers take the
same lock to resolve an identifier and pick its entry, so a reader sees one
whole checkpoint or the next, never a mix (``view``).

Events are attributed exactly as the ``events`` view does (the owner of the
trimmed user id if the graph knows it, else the owner of the anonymous id).
Identifiers only change owner through merges, which move rings along; the one
other way an old event changes owner, an identifier seen in the log before
the graph knew it, is watched (``_unowned``) and rebuilds the rings from the
log when it happens.

The entry and its recent-event ring are in ``cdp.read.entry``; the bulk reads
of the tables and the log in ``cdp.read.tables``.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import replace
from datetime import tzinfo
from typing import Any

import duckdb
import orjson

from cdp.adapters.duckdb import store
from cdp.read.answer import FACTS, dumps
from cdp.read.entry import (
    ANON_PREFIX,
    USER_PREFIX,
    Entry,
    Found,
    Version,
    attribute,
    event_json,
    kept,
    merge_rings,
)
from cdp.read.keys import CUSTOMER_PREFIX
from cdp.read.merges import merge_chain, survivor
from cdp.read.tables import (
    EVENT_SQL,
    arrow_rows,
    customer_chunks,
    load_rings,
    load_segments,
    load_unowned,
)
from cdp.runtime.clock import AS_OF_SQL
from cdp.runtime.embedded import Checkpointed
from projections import lead_score

log = logging.getLogger(__name__)

_EMPTY = b"[]"


class ReadModel:
    """Identifier → customer → ``Entry``; see the module docstring."""

    def __init__(self, rules: lead_score.Rules, zone: tzinfo) -> None:
        self.rules = rules
        self.zone = zone
        self._lock = threading.Lock()
        self._entries: dict[str, Entry] = {}
        self._owners: dict[str, str] = {}
        self._redirect: dict[str, str] = {}
        self._segments: dict[str, tuple[str, ...]] = {}
        self._segment_stamp: object = None
        self._merges_into: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._unowned: set[str] = set()
        self.version = Version(0, None, None)
        self.failed: str | None = None

    # ---------------------------------------------------------------- readers
    def view(self, identifier: str) -> Found | None:
        """The customer an identifier key (or ``cus_`` id) names now, or None.

        A ``cus_`` id of a merged-away customer follows merges to the survivor
        (``cdp.read.merges.survivor``).
        ``Found.entry.profile`` is None for a customer the graph knows without a
        profile row.
        """
        with self._lock:
            entries = self._entries
            customer: str | None = identifier
            if identifier.startswith(CUSTOMER_PREFIX):
                customer = survivor(
                    identifier,
                    lambda c: (e := entries.get(c)) is not None and e.profile is not None,
                    self._redirect.get,
                )
            else:
                customer = self._owners.get(identifier)
            if customer is None:
                return None
            entry = entries.get(customer) or Entry(customer, (), None, (), None, _EMPTY, _EMPTY)
            return Found(
                customer, entry, self.version, self._owners, self._segments.get(customer, ())
            )

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> dict[str, Entry]:
        """A copy of every entry (tests, diagnostics)."""
        with self._lock:
            return dict(self._entries)

    def owners(self) -> dict[str, str]:
        with self._lock:
            return dict(self._owners)

    # ---------------------------------------------------------------- loading
    @classmethod
    def load(
        cls, con: duckdb.DuckDBPyConnection, rules: lead_score.Rules, zone: tzinfo
    ) -> ReadModel:
        """The model of the checkpoint ``con`` sees (one read transaction)."""
        model = cls(rules, zone)
        model._load(con)
        return model

    def _load(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("BEGIN TRANSACTION")
        try:
            positions = con.execute(
                "SELECT next_offset, config_hash FROM positions WHERE name = ?",
                [store.POSITION_NAME],
            ).fetchall()
            position = positions[0] if positions else None
            next_offset = int(position[0]) if position else 0
            graph = con.sql(
                "SELECT identifier, customer_id, merged_into FROM identity_graph"
            ).fetchall()
            owners: dict[str, str] = {}
            redirect: dict[str, str] = {}
            members: dict[str, list[str]] = defaultdict(list)
            canon: dict[str, str] = {}
            for identifier, raw_customer, into in graph:
                customer = canon.setdefault(raw_customer, raw_customer)
                if identifier:
                    owners[identifier] = customer
                    members[customer].append(identifier)
                else:
                    redirect[customer] = canon.setdefault(into, into)
            merges_into: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for merge in arrow_rows(
                con.sql(
                    'SELECT from_customer, into_customer, via, reason, message_id, "offset", "at" '
                    "FROM merges"
                ).to_arrow_table(),
                self.zone,
            ):
                merges_into[merge["into_customer"]].append(self._merge_row(merge))
            rings = load_rings(con, next_offset, self.zone)
            self._unowned = load_unowned(con, next_offset)
            clock = con.execute(
                f'SELECT {AS_OF_SQL} FROM event_log WHERE "offset" < ?', [next_offset]
            ).fetchall()[0]
            self._merges_into = merges_into
            entries: dict[str, Entry] = {}
            for chunk in customer_chunks(con, None, self.zone):
                for row in chunk:
                    customer = canon.setdefault(row["customer_id"], row["customer_id"])
                    entries[customer] = self._entry(
                        customer,
                        tuple(sorted(members.pop(customer, ()))),
                        row,
                        rings.get(customer, _EMPTY),
                    )
            for customer, identifiers in members.items():  # in the graph, no row (yet)
                entries[customer] = self._entry(
                    customer, tuple(sorted(identifiers)), None, rings.get(customer, _EMPTY)
                )
            segments, stamp = load_segments(con)
        finally:
            con.execute("ROLLBACK")
        as_of = clock[0].astimezone(self.zone) if clock and clock[0] is not None else None
        with self._lock:
            self._entries, self._owners, self._redirect = entries, owners, redirect
            self._segments, self._segment_stamp = segments, stamp
            self.version = Version(next_offset, str(position[1]) if position else None, as_of)
            self.failed = None

    # --------------------------------------------------------------- building
    def _merge_row(self, merge: dict[str, Any]) -> dict[str, Any]:
        at = merge.get("at")
        return {
            "from_customer": merge["from_customer"],
            "into_customer": merge["into_customer"],
            "via": merge["via"],
            "reason": merge["reason"],
            "message_id": merge["message_id"],
            "offset": merge["offset"],
            "at": at.astimezone(self.zone) if at is not None else None,
        }

    def _merges_json(self, customer: str) -> bytes:
        """Every merge that formed ``customer``, transitively, in log order."""
        into = self._merges_into
        if customer not in into:
            return _EMPTY
        return kept(dumps(merge_chain(customer, lambda c: into.get(c, ()))))

    def _entry(
        self,
        customer: str,
        identifiers: tuple[str, ...],
        row: dict[str, Any] | None,
        recent: bytes,
    ) -> Entry:
        merges = self._merges_json(customer)
        if row is None:
            return Entry(customer, identifiers, None, (), None, merges, recent)
        stored = {}
        for name, value in row.items():
            if name in ("customer_id", "lead_state"):
                continue
            stored[name] = value
        facts = tuple(stored.get(n) for n in FACTS)
        state = row.get("lead_state")
        explain = None
        if state:
            data = orjson.loads(state)
            explain = kept(orjson.dumps([data["last_activity"], data["buckets"]]))
        return Entry(customer, identifiers, kept(dumps(stored)), facts, explain, merges, recent)

    # --------------------------------------------------------------- updating
    def attach(self, runtime: Any, con: duckdb.DuckDBPyConnection) -> None:
        """Follow ``runtime``'s checkpoints (call on the thread that checkpoints)."""

        def follow(checkpointed: Checkpointed) -> None:
            try:
                self.apply(con, checkpointed)
            except Exception as error:  # the checkpoint is safe; lookups fall back to SQL
                log.exception("read model update failed; profile lookups read DuckDB")
                self.failed = f"{type(error).__name__}: {error}"

        runtime.on_checkpoint = follow

    def apply(self, con: duckdb.DuckDBPyConnection, done: Checkpointed) -> None:
        """Publish what a committed checkpoint changed (see the module docstring)."""
        changes = done.changes
        owners = self._owners
        moved: dict[str, str] = {}
        redirect: dict[str, str] = {}
        for identifier, customer, _seq, into in changes.rows:
            if identifier:
                moved[identifier] = customer
            else:
                redirect[customer] = into
        if self._unowned & {k for k in moved if k not in owners}:
            # An identifier the log already held before the graph knew it: old
            # events may change owner without a merge. Rare: reload everything.
            self._load(con)
            return
        new_owners = _Overlay(moved, owners)
        affected: set[str] = set(done.customers)
        removed = set(done.removed) | set(redirect)
        gained: dict[str, set[str]] = defaultdict(set)
        lost: dict[str, set[str]] = defaultdict(set)
        for identifier, customer in moved.items():
            previous = owners.get(identifier)
            if previous != customer:
                gained[customer].add(identifier)
                affected.add(customer)
                if previous is not None:
                    lost[previous].add(identifier)
                    affected.add(previous)
        for merge in changes.merges:
            row = self._merge_row({name: getattr(merge, name) for name in store.MERGE_COLUMNS})
            self._merges_into[row["into_customer"]].append(row)
            affected.add(row["into_customer"])
        version = self.version
        # Events folded by this checkpoint, filed as the view will attribute them.
        tail = arrow_rows(
            con.sql(
                f'{EVENT_SQL} WHERE "offset" >= ? AND "offset" < ?',
                params=[version.next_offset, done.next_offset],
            ).to_arrow_table(),
            self.zone,
        )
        added: dict[str, list[Any]] = defaultdict(list)
        latest = version.as_of
        unowned = set()
        for row in tail:
            owner = attribute(new_owners, row["u"], row["a"])
            if owner is not None:
                added[owner].append(event_json(row))
            for prefix, value in ((USER_PREFIX, row["u"]), (ANON_PREFIX, row["a"])):
                if value is not None and (prefix + value) not in new_owners:
                    unowned.add(prefix + value)
        # The clock over the same rows, by its one definition (cdp.log_clock).
        (moment,) = con.execute(
            f'SELECT {AS_OF_SQL} FROM event_log WHERE "offset" >= ? AND "offset" < ?',
            [version.next_offset, done.next_offset],
        ).fetchall()[0]
        if moment is not None and (latest is None or moment > latest):
            latest = moment.astimezone(self.zone)
        affected |= set(added)
        entries = self._entries
        rings: dict[str, list[Any]] = defaultdict(list)
        for loser in changes.merged_away:  # its events go where its identifiers went
            survivor = loser
            while survivor in redirect:
                survivor = redirect[survivor]
            old = entries.get(loser)
            if old is not None and old.recent != _EMPTY:
                rings[survivor].extend(orjson.loads(old.recent))
            affected.add(survivor)
        rows: dict[str, dict[str, Any]] = {}
        for chunk in customer_chunks(con, sorted(set(done.customers)), self.zone):
            rows.update((r["customer_id"], r) for r in chunk)
        fresh: dict[str, Entry] = {}
        for customer in affected - removed:
            old = entries.get(customer)
            identifiers = set(old.identifiers if old else ())
            identifiers = (identifiers - lost.get(customer, set())) | gained.get(customer, set())
            ring = rings.get(customer, [])
            if customer in added or ring:
                if old is not None and old.recent != _EMPTY:
                    ring.extend(orjson.loads(old.recent))
                recent = kept(dumps(merge_rings([ring, added.get(customer, [])])))
            else:
                recent = old.recent if old else _EMPTY
            stored_row = rows.get(customer)
            if stored_row is None and old is not None:
                fresh[customer] = replace(
                    old,
                    identifiers=tuple(sorted(identifiers)),
                    merges=self._merges_json(customer),
                    recent=recent,
                )
            else:
                fresh[customer] = self._entry(
                    customer, tuple(sorted(identifiers)), stored_row, recent
                )
        segments, stamp = self._segments, self._segment_stamp
        fresh_segments = load_segments(con)
        if fresh_segments[1] != stamp:
            segments, stamp = fresh_segments
        with self._lock:
            entries.update(fresh)
            for customer in removed:
                entries.pop(customer, None)
            owners.update(moved)
            self._redirect.update(redirect)
            self._segments, self._segment_stamp = segments, stamp
            self.version = Version(done.next_offset, done.config_hash, latest)
        self._unowned = (self._unowned | unowned) - set(moved)


class _Overlay(dict[str, str]):
    """``changes`` over ``base`` without copying ``base`` (reads only)."""

    def __init__(self, changes: dict[str, str], base: dict[str, str]) -> None:
        super().__init__(changes)
        self.base = base

    def __missing__(self, key: str) -> str:
        return self.base[key]

    def get(self, key: str, default: Any = None) -> Any:
        found = super().get(key)
        return self.base.get(key, default) if found is None else found

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or key in self.base
