"""The lookup read model: what ``GET /v1/profiles/...`` answers from in ``cdp serve``.

It holds no customer until one is asked for. ``view`` resolves an identifier
and builds the customer's ``Entry`` (``cdp.read.entry``) from DuckDB point
reads on the writer's database (``cdp.read.tables``: a handful of statements
on this thread's cursor, in one read transaction, through the lookup's ART
indexes), then keeps it in a bounded LRU cache beside a bounded LRU of
identifier → customer. Memory therefore grows with the caches
(``CACHE_ENTRIES``), not with the customers; opening it reads only the read
position and the log clock, so ``cdp serve`` answers within seconds whatever
the data holds.

The embedded runtime reports each committed checkpoint (``EmbeddedRuntime.
on_checkpoint``); ``apply`` then evicts every cached customer the checkpoint
may have changed (rows written or deleted, identifiers that moved and their
old and new owners, merges, the owners of the events it folded) and
publishes the new ``Version`` (read position, config, log clock), all under
the lock readers take. An entry read from the database is cached only when
its read transaction saw the version the cache is at; one read during the
short window between a commit and its report answers with the newer
checkpoint and is not cached, and until the report arrives the cache is
bypassed, so a reader sees one whole checkpoint or the next, never a mix and
never a step back.

Events are attributed exactly as the ``events`` view does (the owner of the
trimmed user id if the graph knows it, else the owner of the anonymous id).
The ring of an entry holds its ``RING`` newest events below the checkpoint.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import tzinfo
from typing import Any

import duckdb
import orjson

from cdp.read import tables
from cdp.read.answer import FACTS, dumps
from cdp.read.entry import Entry, Found, Version, kept
from cdp.read.keys import CUSTOMER_PREFIX
from cdp.read.lookup import ensure_indexes, snapshot
from cdp.read.merges import merge_chain, survivor
from cdp.runtime.embedded import Checkpointed
from projections import lead_score

log = logging.getLogger(__name__)

CACHE_ENTRIES = 20_000
"""Customers whose entries the model keeps (about 5 KB each); identifiers cached: 4x."""
_EMPTY = b"[]"


class ReadModel:
    """Identifier → customer → ``Entry``, read on demand; see the module docstring.

    ``con``: a connection of the database (each reading thread takes its own
    cursor of it); ``capacity``: how many entries the cache keeps.
    """

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        rules: lead_score.Rules,
        zone: tzinfo,
        capacity: int = CACHE_ENTRIES,
    ) -> None:
        self.rules = rules
        self.zone = zone
        self.capacity = capacity
        self._base = con
        self._local = threading.local()
        self._cursors: list[duckdb.DuckDBPyConnection] = []
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Entry, tuple[str, ...]]] = OrderedDict()
        self._owners: OrderedDict[str, str] = OrderedDict()
        self._segment_stamp: object = None
        self._seen = 0  # the newest read position a read transaction saw
        self.version = Version(0, None, None)
        self.failed: str | None = None
        self._appender: Any = None
        self._runtime: Any = None
        self._writer_con: duckdb.DuckDBPyConnection | None = None
        self._indexes_missing = False
        self._swap_lock = threading.Lock()

    @classmethod
    def load(
        cls, con: duckdb.DuckDBPyConnection, rules: lead_score.Rules, zone: tzinfo
    ) -> ReadModel:
        """The model of the checkpoint ``con`` sees: its version only (nothing per customer)."""
        model = cls(con, rules, zone)
        model.reset(con)
        return model

    def reset(self, con: duckdb.DuckDBPyConnection) -> None:
        """Forget every cached customer and read the version again (after a replay)."""
        with snapshot(con):
            version = tables.read_version(con, self.zone)
            stamp = tables.segment_stamp(con)
        with self._lock:
            self._entries.clear()
            self._owners.clear()
            self.version, self._segment_stamp, self.failed = version, stamp, None
            self._seen = max(self._seen, version.next_offset)

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's cursor of the database (made on first use)."""
        cursor: duckdb.DuckDBPyConnection | None = getattr(self._local, "cursor", None)
        if cursor is None:
            with self._lock:
                cursor = self._base.cursor()
                self._cursors.append(cursor)
            self._local.cursor = cursor
        return cursor

    def close(self) -> None:
        """Close the cursors the model made."""
        with self._lock:
            for cursor in self._cursors:
                cursor.close()
            self._cursors.clear()

    # ---------------------------------------------------------------- readers
    def view(self, identifier: str) -> Found | None:
        """The customer an identifier key (or ``cus_`` id) names now, or None.

        A ``cus_`` id of a merged-away customer follows merges to the survivor
        (``cdp.read.merges.survivor``). ``Found.entry.profile`` is None for a
        customer the graph knows without a profile row.
        """
        self._check_runtime()
        with self._lock:
            version = self.version
            if self._seen <= version.next_offset:
                customer = self._owners.get(identifier)
                held = None if customer is None else self._entries.get(customer)
                if held is not None:
                    assert customer is not None
                    self._owners.move_to_end(identifier)
                    self._entries.move_to_end(customer)
                    return Found(customer, held[0], version, _Owners(self), held[1])
        return self._read(identifier, version)

    def _read(self, identifier: str, version: Version) -> Found | None:
        """Build the customer's entry from the database; cache it if it is of ``version``."""
        con = self.cursor()
        with snapshot(con):
            position, _ = tables.position(con)
            if position != version.next_offset:
                version = tables.read_version(con, self.zone, version)
            if identifier.startswith(CUSTOMER_PREFIX):
                customer = survivor(
                    identifier,
                    lambda c: tables.has_row(con, c),
                    lambda c: tables.merged_into(con, c),
                )
            else:
                customer = tables.owner(con, identifier)
            if customer is None:
                return None
            entry, segments = self._build(con, customer, position)
        with self._lock:
            self._seen = max(self._seen, position)
            if position == self.version.next_offset and self.version is version:
                self._owners[identifier] = customer
                self._entries[customer] = (entry, segments)
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
                while len(self._owners) > 4 * self.capacity:
                    self._owners.popitem(last=False)
        return Found(customer, entry, version, _Owners(self), segments)

    def _build(
        self, con: duckdb.DuckDBPyConnection, customer: str, position: int
    ) -> tuple[Entry, tuple[str, ...]]:
        """One customer as the tables hold it (inside the caller's read transaction)."""
        identifiers, direct, segments = tables.customer_parts(
            con, customer, self._segment_stamp is not None
        )
        ring = tables.ring(con, customer, identifiers, position)
        recent = kept(dumps(ring)) if ring else _EMPTY
        merges = _EMPTY
        if direct:
            first = [self._merge_row(m) for m in direct]
            chain = merge_chain(
                customer,
                lambda c: (
                    first
                    if c == customer
                    else [self._merge_row(m) for m in tables.merges_into(con, c)]
                ),
            )
            merges = kept(dumps(chain))
        row = tables.customer_row(con, customer)
        return self._entry(customer, identifiers, row, recent, merges), segments

    def entries(self) -> dict[str, Entry]:
        """A copy of the cached entries (tests, diagnostics)."""
        with self._lock:
            return {c: held[0] for c, held in self._entries.items()}

    def __len__(self) -> int:
        return len(self._entries)

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

    def _entry(
        self,
        customer: str,
        identifiers: tuple[str, ...],
        row: dict[str, Any] | None,
        recent: bytes,
        merges: bytes,
    ) -> Entry:
        if row is None:
            return Entry(customer, identifiers, None, (), None, merges, recent)
        stored = {n: v for n, v in row.items() if n not in ("customer_id", "lead_state")}
        facts = tuple(stored.get(n) for n in FACTS)
        state = row.get("lead_state")
        explain = None
        if state:
            data = orjson.loads(state)
            explain = kept(orjson.dumps([data["last_activity"], data["buckets"]]))
        return Entry(customer, identifiers, kept(dumps(stored)), facts, explain, merges, recent)

    # --------------------------------------------------------------- updating
    def attach(self, appender: Any, con: duckdb.DuckDBPyConnection) -> None:
        """Follow the checkpoints of ``appender.runtime`` (call on the thread that
        checkpoints; ``con`` is its connection)."""
        self._appender, self._writer_con = appender, con
        self._follow(appender.runtime)

    def _follow(self, runtime: Any) -> None:
        con = self._writer_con
        assert con is not None

        def follow(checkpointed: Checkpointed) -> None:
            try:
                if self._indexes_missing:  # on the writer's thread: it may write
                    ensure_indexes(con)
                    self._indexes_missing = False
                self.apply(con, checkpointed)
            except Exception as error:  # the checkpoint is safe; lookups fall back to SQL
                log.exception("read model update failed; profile lookups read DuckDB")
                self.failed = f"{type(error).__name__}: {error}"

        self._runtime = runtime
        runtime.on_checkpoint = follow

    def _check_runtime(self) -> None:
        """A replay swaps the runtime and the tables (dropping their indexes): start
        over from the new tables, and follow the new runtime."""
        appender = self._appender
        if appender is None or appender.runtime is self._runtime:
            return
        with self._swap_lock:
            if appender.runtime is self._runtime:
                return
            self._indexes_missing = True  # made again at the next checkpoint
            self._follow(appender.runtime)
            self.reset(self.cursor())

    def apply(self, con: duckdb.DuckDBPyConnection, done: Checkpointed) -> None:
        """Evict what a committed checkpoint may have changed and publish its version."""
        changes = done.changes
        moved = {row[0]: row[1] for row in changes.rows if row[0]}
        dead = set(done.removed) | {row[1] for row in changes.rows if not row[0]}
        affected = set(done.customers) | dead | set(moved.values())
        affected |= {row[3] for row in changes.rows if not row[0] and row[3]}
        affected |= {m.into_customer for m in changes.merges}
        start = self.version.next_offset
        owners, moment = tables.tail_owners(con, start, done.next_offset)
        affected |= owners
        stamp = tables.segment_stamp(con)
        latest = self.version.as_of
        if moment is not None and (latest is None or moment > latest):
            latest = moment.astimezone(self.zone)
        with self._lock:
            if stamp != self._segment_stamp:
                self._indexes_missing |= self._segment_stamp is None  # a first segment run
                self._entries.clear()
                self._segment_stamp = stamp
            for customer, (entry, _) in list(self._entries.items()):
                if customer in affected or not moved.keys().isdisjoint(entry.identifiers):
                    del self._entries[customer]
            for identifier, customer in list(self._owners.items()):
                if identifier in moved or customer in dead:
                    del self._owners[identifier]
            self.version = Version(done.next_offset, done.config_hash, latest)
            self._seen = max(self._seen, done.next_offset)


class _Owners:
    """Identifier → customer as the graph says now (``Found.owners``): the cache,
    else one indexed read on the calling thread's cursor."""

    def __init__(self, model: ReadModel) -> None:
        self.model = model

    def get(self, key: str, default: str | None = None, /) -> str | None:
        model = self.model
        with model._lock:
            found = model._owners.get(key)
        if found is None:
            found = tables.owner(model.cursor(), key)
        return default if found is None else found
