"""The union-find of the identity graph: ``IdentityGraph`` and ``apply``.

Customer ids are derived from the first identifier they were created from,
and the survivor of a merge is the customer created earlier, so replaying the
log gives the same ids, merges and rejections. See ``projections.identity``
for why the graph is mutable.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Final

from projections.identity.extract import ANON_KEY, USER_KEY, envelope_keys, identifiers_of
from projections.identity.records import (
    Changes,
    Merge,
    Rejection,
    Resolution,
    Row,
    _resolution,
)
from projections.identity.rules import DEFAULT_RULES, Rules
from schemas.envelope import Alias
from schemas.events import AnyEvent

_NONE: Final[tuple[()]] = ()


def customer_id_for(identifier: str) -> str:
    """The id of a customer first created from ``identifier`` (before collision suffixes)."""
    return "cus_" + hashlib.blake2b(identifier.encode()).hexdigest()[:20]


class IdentityGraph:
    """Identifier → customer assignments, with merge history for redirects.

    Mutated only by ``apply``. Each live customer has at least one identifier
    and at most one user id; a merged-away customer id redirects to the one it
    was merged into.
    """

    __slots__ = (
        "_anon",
        "_changed",
        "_members",
        "_merged_away",
        "_merges",
        "_owner",
        "_redirect",
        "_rejections",
        "_seq",
        "_user",
        "rules",
    )

    def __init__(self, rules: Rules = DEFAULT_RULES) -> None:
        self.rules: Final = rules
        self._owner: dict[str, str] = {}  # identifier key -> live customer id
        self._members: dict[str, list[str]] = {}  # live customer -> keys; creation order
        self._seq: dict[str, int] = {}  # every customer ever created -> creation sequence
        self._redirect: dict[str, str] = {}  # merged-away customer -> customer it joined
        self._anon: dict[str, int] = {}  # live customer -> number of anonymous ids
        self._user: dict[str, str] = {}  # live customer -> its user_id key, if any
        self._changed: set[str] = set()
        self._merged_away: list[str] = []
        self._merges: list[Merge] = []
        self._rejections: list[Rejection] = []

    def customer_of(self, identifier: str) -> str | None:
        """The live customer of an identifier key, ``None`` if unknown."""
        return self._owner.get(identifier)

    def identifiers_of_customer(self, customer_id: str) -> tuple[str, ...]:
        """The sorted identifier keys of a live customer; ``()`` for unknown or merged-away ids."""
        return tuple(sorted(self._members.get(customer_id, _NONE)))

    def customers(self) -> Iterator[str]:
        """Live customer ids in creation order (do not ``apply`` while iterating)."""
        return iter(self._members)

    def redirect(self, customer_id: str) -> str:
        """The live customer that ``customer_id`` ended up in (itself if never merged)."""
        redirect = self._redirect
        while customer_id in redirect:
            customer_id = redirect[customer_id]
        return customer_id

    def take_changes(self) -> Changes:
        """What changed since the previous call (or creation), and forget it.

        Call it regularly even without incremental persistence: it is the only
        thing that releases the recorded merges and rejections.
        """
        identifiers = tuple(sorted(self._changed))
        merged_away = tuple(self._merged_away)
        owner, seq, redirect = self._owner, self._seq, self._redirect
        rows = [(k, owner[k], seq[owner[k]], "") for k in identifiers]
        rows += [("", c, seq[c], redirect[c]) for c in merged_away]
        changes = Changes(
            identifiers, merged_away, tuple(self._merges), tuple(self._rejections), tuple(rows)
        )
        self._changed = set()
        self._merged_away = []
        self._merges = []
        self._rejections = []
        return changes

    def to_rows(self) -> list[Row]:
        """A snapshot (see ``ROW_COLUMNS``), sorted; ``from_rows`` restores it exactly."""
        seq = self._seq
        rows = [(k, c, seq[c], "") for k, c in self._owner.items()]
        rows += [("", c, seq[c], into) for c, into in self._redirect.items()]
        rows.sort()
        return rows

    @classmethod
    def from_rows(cls, rows: Iterable[Row], rules: Rules = DEFAULT_RULES) -> IdentityGraph:
        """The graph ``to_rows`` (or accumulated ``Changes.rows``) describe.

        Raises ``ValueError`` naming the offending row when the rows are not a
        consistent snapshot. A cap lowered since the snapshot applies to new
        links only.
        """
        graph = cls(rules)
        owner, members, seq = graph._owner, graph._members, graph._seq
        # Creation order must survive the restore: it decides merge survivors.
        for row in sorted(rows, key=lambda r: r[2]):
            identifier, customer, number, merged_into = row
            if seq.setdefault(customer, number) != number:
                raise ValueError(f"customer {customer!r} has two sequence numbers: {row!r}")
            if not identifier:
                graph._redirect[customer] = merged_into
                continue
            if identifier in owner:
                raise ValueError(f"identifier {identifier!r} appears twice: {row!r}")
            owner[identifier] = customer
            members.setdefault(customer, []).append(identifier)
            graph._anon.setdefault(customer, 0)
            if identifier.startswith(ANON_KEY):
                graph._anon[customer] += 1
            elif identifier.startswith(USER_KEY):
                if customer in graph._user:
                    raise ValueError(f"customer {customer!r} has two user ids: {row!r}")
                graph._user[customer] = identifier
        if sorted(seq.values()) != list(range(len(seq))):
            raise ValueError("customer sequence numbers are not 0..n-1")
        for customer, into in graph._redirect.items():
            # Survivors are always older, which also rules out redirect cycles.
            if customer in members or seq.get(into, seq[customer]) >= seq[customer]:
                raise ValueError(f"customer {customer!r} is live or not merged into an older one")
        return graph

    def _apply(
        self, keys: tuple[str, ...], message_id: str, at: datetime, alias: bool, offset: int
    ) -> Resolution:
        owner, users = self._owner, self._user
        first = keys[0]
        event_user = first if first.startswith(USER_KEY) else None
        # The primary is the first known customer that can take the event's user id.
        primary: str | None = None
        for k in keys:
            c = owner.get(k)
            if c is not None and (event_user is None or users.get(c, event_user) == event_user):
                primary = c
                break
        created = primary is None
        if primary is None:
            primary = self._create(first)
        merges: list[Merge] | None = None
        rejections: list[Rejection] | None = None
        for k in keys:
            c = owner.get(k)
            if c == primary:
                continue
            refusal = self._attach(primary, k) if c is None else self._refuse_merge(primary, c)
            if refusal is not None:
                rejection = Rejection(primary, k, refusal, message_id, offset, at)
                self._rejections.append(rejection)
                if rejections is None:
                    rejections = []
                rejections.append(rejection)
            elif c is not None:
                merge = self._merge(primary, c, k, message_id, at, alias, offset)
                primary = merge.into_customer
                self._merges.append(merge)
                if merges is None:
                    merges = []
                merges.append(merge)
        return _resolution(
            primary,
            _NONE if merges is None else tuple(merges),
            _NONE if rejections is None else tuple(rejections),
            created,
        )

    def _create(self, first: str) -> str:
        customer = base = customer_id_for(first)
        n = 1
        while customer in self._seq:  # an 80-bit collision; keep ids unique, deterministically
            n += 1
            customer = f"{base}_{n}"
        self._seq[customer] = len(self._seq)
        self._members[customer] = [first]
        self._anon[customer] = 1 if first.startswith(ANON_KEY) else 0
        if first.startswith(USER_KEY):
            self._user[customer] = first
        self._owner[first] = customer
        self._changed.add(first)
        return customer

    def _attach(self, customer: str, identifier: str) -> str | None:
        """Attach an unknown identifier, or say why not."""
        if identifier.startswith(ANON_KEY):
            if self._anon[customer] >= self.rules.max_anonymous_ids:
                return f"anonymous id cap ({self.rules.max_anonymous_ids}) reached"
            self._anon[customer] += 1
        elif identifier.startswith(USER_KEY):
            current = self._user.get(customer)
            if current is not None:
                return f"conflicting user ids: {current} vs {identifier}"
            self._user[customer] = identifier
        self._owner[identifier] = customer
        self._members[customer].append(identifier)
        self._changed.add(identifier)
        return None

    def _refuse_merge(self, primary: str, other: str) -> str | None:
        """Why ``other`` may not merge with ``primary``, or ``None`` if it may."""
        mine, theirs = self._user.get(primary), self._user.get(other)
        if mine is not None and theirs is not None:  # one key, one customer: they differ
            return f"conflicting user ids: {mine} vs {theirs} (kept in {other})"
        total = self._anon[primary] + self._anon[other]
        cap = self.rules.max_anonymous_ids
        if total > cap:
            return f"anonymous id cap ({cap}) reached: merging {other} would give {total}"
        return None

    def _merge(
        self,
        primary: str,
        other: str,
        via: str,
        message_id: str,
        at: datetime,
        alias: bool,
        offset: int,
    ) -> Merge:
        seq = self._seq
        survivor, loser = (other, primary) if seq[other] < seq[primary] else (primary, other)
        moved = self._members.pop(loser)
        kept = self._members[survivor]
        owner = self._owner
        for k in moved:
            owner[k] = survivor
        self._changed.update(moved)
        if len(moved) > len(kept):  # extend the shorter list; member order is not observable
            moved, kept = kept, moved
            self._members[survivor] = kept
        kept.extend(moved)
        self._anon[survivor] += self._anon.pop(loser)
        user = self._user.pop(loser, None)
        if user is not None:
            self._user[survivor] = user
        self._redirect[loser] = survivor
        self._merged_away.append(loser)
        reason = f"alias of {via}" if alias else f"shared identifier {via}"
        return Merge(loser, survivor, reason, via, message_id, offset, at)


def apply(graph: IdentityGraph, event: AnyEvent, offset: int) -> Resolution:
    """Fold one event (at log ``offset``) into ``graph`` and say what was decided.

    Events must come in log order. The primary customer is the first known
    identifier's (priority order) that can take the event's user id, else a new
    one named by ``customer_id_for`` the first identifier. Every other
    identifier is attached to it if unknown, or its customer merged with it,
    unless that would join two user ids or exceed the anonymous id cap, in
    which case a ``Rejection`` is recorded and the identifier stays where it is.
    """
    keys = identifiers_of(event, graph._owner.__contains__)
    if not keys:
        return _resolution(None, _NONE, _NONE, False)
    return graph._apply(keys, event.message_id, event.timestamp, type(event) is Alias, offset)


def apply_envelope(
    graph: IdentityGraph,
    user_id: str | None,
    anonymous_id: str | None,
    message_id: str,
    at: datetime,
    offset: int,
) -> Resolution:
    """``apply`` for an event that links nothing beyond its envelope (``envelope_only``:
    not a linking type, no ``context.traits``), from the log's columns: the same
    decision without decoding the event (tests/unit/test_identity_envelope.py)."""
    keys = envelope_keys(user_id, anonymous_id)
    if not keys:
        return _resolution(None, _NONE, _NONE, False)
    return graph._apply(keys, message_id, at, False, offset)
