"""The profile agent's work, free of faust: by-customer messages → table values.

The table (keyed by customer id; one changelog record per write, so each
write is atomic) holds per customer::

    {"state": cdp.customer.to_json(...) | None,   # profile + lead score
     "last": int,          # highest log offset folded (event or merge_out)
     "absorbed": [ids],    # losers whose states are in "state"
     "into": id | None}    # set once merged away: a tombstone

Why this is exact under at-least-once redelivery (faust commits an offset
only after flushing everything sent before, and a changelog keeps a prefix of
the writes; no transactions needed):

- ``event``/``merge_out`` messages of one customer reach its partition in log
  order from the single identity agent, so one at or below ``last`` was
  folded already: skipped.
- ``absorb`` is deduplicated by the loser id in ``absorbed``; a survivor that
  absorbs takes the loser's own ``absorbed`` too, so a duplicate forwarded
  later is still recognised.
- A tombstone keeps the state it handed over: a redelivered ``merge_out``
  re-sends the same ``absorb`` (the survivor skips it if it had it), and an
  ``absorb`` that reaches a tombstone is forwarded to its survivor.
- Every skipped duplicate re-publishes the current snapshot, so a snapshot
  lost in a crash is published again.

A ``Batch`` applies many messages and folds each customer's events at once
(like the embedded runtime's ``flush``): one decode, one fold, one table
write and one snapshot per customer per batch. ``States`` keeps the decoded
states of the customers written last, so a customer met again in a later
batch is not decoded from its JSON again (with the memory store; see there).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cdp.runtime import customer
from projections import lead_score
from schemas import AnyEvent
from streams import messages
from streams.messages import ByCustomer


class States:
    """Decoded states of the customers written last, keyed by the JSON object written.

    The memory store hands back the very object the agent wrote, so an
    identity check (``is``) proves the cached state is the one that JSON
    encodes (``from_json(to_json(s)) == s``): no decode. A store that decodes
    a new object on every read (RocksDB) simply misses. Bounded (least
    recently used out): memory grows with the cache, not the customer count.
    """

    def __init__(self, size: int = 50_000) -> None:
        self.size = size
        self._states: OrderedDict[str, tuple[object, customer.CustomerState]] = OrderedDict()

    def decode(self, key: str, data: Mapping[str, Any]) -> customer.CustomerState:
        """The state ``data`` (the table's JSON for ``key``) encodes."""
        hit = self._states.get(key)
        if hit is not None and hit[0] is data:
            self._states.move_to_end(key)
            return hit[1]
        state = customer.from_json(data)
        self.remember(key, data, state)
        return state

    def remember(self, key: str, data: object, state: customer.CustomerState) -> None:
        """``data`` was written for ``key`` and encodes ``state``."""
        self._states[key] = (data, state)
        self._states.move_to_end(key)
        if len(self._states) > self.size:
            self._states.popitem(last=False)

    def clear(self) -> None:
        self._states.clear()


@dataclass(slots=True)
class Entry:
    """One customer's table value, decoded, with events waiting to be folded."""

    state: customer.CustomerState | None = None
    last: int = -1
    absorbed: set[str] = field(default_factory=set)
    into: str | None = None
    pending: list[AnyEvent] = field(default_factory=list)

    @classmethod
    def from_value(
        cls, value: Mapping[str, Any] | None, decode: Callable[[Mapping[str, Any]], Any]
    ) -> Entry:
        if value is None:
            return cls()
        state = value["state"]
        return cls(
            None if state is None else decode(state),
            int(value["last"]),
            set(value["absorbed"]),
            value["into"],
        )

    def settle(self, rules: lead_score.Rules) -> customer.CustomerState | None:
        """Fold the pending events in; the state after them."""
        if self.pending:
            self.state = customer.fold(self.state, self.pending, rules)
            self.pending = []
        return self.state

    def to_value(self, rules: lead_score.Rules, key: str, states: States) -> dict[str, Any]:
        state = self.settle(rules)
        data = None if state is None else customer.to_json(state)
        if state is not None:
            states.remember(key, data, state)
        return {
            "state": data,
            "last": self.last,
            "absorbed": sorted(self.absorbed),
            "into": self.into,
        }


def snapshot(customer_id: str, entry: Entry, rules: lead_score.Rules) -> bytes | None:
    """The ``cdp.profiles`` value of an entry (``None``: no profile, e.g. merged away)."""
    state = entry.settle(rules)
    if entry.into is not None or state is None:
        return None
    return messages.profile_value(
        customer.customer_row(customer_id, state.profile, state.lead, rules)
    )


@dataclass(slots=True)
class Result:
    """What a batch produced: table writes, messages to send, snapshots to publish."""

    writes: list[tuple[str, dict[str, Any]]]
    by_customer: list[ByCustomer]
    snapshots: list[tuple[str, bytes | None]]


class Batch:
    """Applies by-customer messages to customers' entries (looked up once each)."""

    def __init__(
        self,
        rules: lead_score.Rules,
        lookup: Callable[[str], Mapping[str, Any] | None],
        states: States | None = None,
    ) -> None:
        self.rules = rules
        self._lookup = lookup
        self.states = states if states is not None else States()
        self.entries: dict[str, Entry] = {}
        self.changed: dict[str, None] = {}  # insertion-ordered set
        self.touched: dict[str, None] = {}
        self.by_customer: list[ByCustomer] = []

    def entry(self, key: str) -> Entry:
        found = self.entries.get(key)
        if found is None:
            value = self._lookup(key)
            found = self.entries[key] = Entry.from_value(
                value, lambda data: self.states.decode(key, data)
            )
        return found

    def apply(self, message: ByCustomer) -> None:
        """Apply one message (keyed by ``message.customer``)."""
        key = message.customer
        entry = self.entry(key)
        self.touched[key] = None
        if message.kind == "event":
            self._event(key, entry, message)
        elif message.kind == "merge_out":
            self._merge_out(key, entry, message)
        else:
            self._absorb(key, entry, message)

    def _event(self, key: str, entry: Entry, message: ByCustomer) -> None:
        if entry.into is not None:  # cannot happen in log order; never lose the event
            data = message.data if message.data is not None else b""
            self.by_customer.append(messages.event_message(entry.into, message.offset, data))
        elif message.offset > entry.last:
            entry.pending.append(message.event())
            entry.last = message.offset
            self.changed[key] = None

    def _merge_out(self, key: str, entry: Entry, message: ByCustomer) -> None:
        if entry.into is None:
            if message.offset <= entry.last:  # seen but not merged: cannot happen
                return
            assert message.into is not None
            entry.into = message.into
            entry.last = message.offset
            self.changed[key] = None
        # First time or redelivered: hand over the state (the survivor dedups).
        state = entry.settle(self.rules)
        self.by_customer.append(
            messages.absorb_message(
                entry.into,
                key,
                None if state is None else customer.to_json(state),
                tuple(sorted(entry.absorbed)),
            )
        )

    def _absorb(self, key: str, entry: Entry, message: ByCustomer) -> None:
        assert message.source is not None
        if entry.into is not None:  # merged away since: pass it on to the survivor
            self.by_customer.append(
                ByCustomer(
                    "absorb",
                    entry.into,
                    source=message.source,
                    state=message.state,
                    absorbed=message.absorbed,
                )
            )
        elif message.source not in entry.absorbed:
            lost = None if message.state is None else customer.from_json(message.state)
            entry.state = customer.absorb(entry.settle(self.rules), lost, self.rules)
            entry.absorbed.update((message.source, *message.absorbed))
            self.changed[key] = None

    def finish(self) -> Result:
        """Fold what is pending; the writes, messages and snapshots of the batch."""
        rules = self.rules
        writes = [
            (key, self.entries[key].to_value(rules, key, self.states)) for key in self.changed
        ]
        snapshots = [(key, snapshot(key, self.entries[key], rules)) for key in self.touched]
        return Result(writes, self.by_customer, snapshots)
