"""The identity graph: which customer each identifier belongs to.

A union-find over identifier keys (``kind:value``, see ``schemas.identifiers``)
folded over the log in order. Each event's identifiers are linked into one
customer unless a merge rule refuses the link:

- junk values (``"null"``, ``"0"``, test addresses, ...) never become
  identifiers, so they never link anything;
- two different user ids are never merged automatically (not even by an
  ``alias`` between two known user ids);
- a customer holds at most ``Rules.max_anonymous_ids`` anonymous ids.

Every merge and every refusal names the event that caused it (``Merge``,
``Rejection``), so any customer can be explained from the log. Customer ids
are derived from the first identifier they were created from, and the survivor
of a merge is the customer created earlier, so replaying the log gives the same
ids, merges and rejections.

Deviation from the house style (frozen ``State`` + ``apply -> State``): the
graph is global, millions of identifiers, and copying it per event is out of
the question. ``IdentityGraph`` therefore owns mutable dicts, and ``apply`` is
the only thing that mutates them; it returns a ``Resolution`` describing what it
did. ``take_changes`` hands the runtime what changed since the last call for
incremental persistence; ``to_rows``/``from_rows`` snapshot and restore.
Still pure: no I/O, no clock, no globals.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from schemas.context import Traits
from schemas.crm import FormSubmitted, MessageReceived, MessageSent
from schemas.envelope import Alias, Identify
from schemas.events import AnyEvent
from schemas.identifiers import normalise

_USER: Final = "user_id:"
_ANON: Final = "anonymous_id:"
_CHANNEL_TRAITS: Final = (
    ("line", "line_user_id"),
    ("x", "x_user_id"),
    ("instagram", "instagram_user_id"),
)
_NONE: Final[tuple[()]] = ()
_LINKING: Final[frozenset[type]] = frozenset(
    {Identify, Alias, FormSubmitted, MessageReceived, MessageSent}
)

Row = tuple[str, str, int, str]
"""A snapshot row; its columns are named by ``ROW_COLUMNS``."""

ROW_COLUMNS: Final = ("identifier", "customer_id", "seq", "merged_into")
"""Two kinds of row share one shape (str/int only, for JSON and DuckDB):
``(identifier, customer_id, seq, "")`` places an identifier in a live customer;
``("", customer_id, seq, merged_into)`` records a merged-away customer.
``seq`` is the customer's creation sequence number."""


@dataclass(frozen=True, slots=True)
class Rules:
    """Merge rules."""

    max_anonymous_ids: int = 50
    """Cap of anonymous ids per customer: a shared device or a bot must not
    swallow everyone who ever used it."""

    def __post_init__(self) -> None:
        if self.max_anonymous_ids < 1:
            raise ValueError(f"max_anonymous_ids must be at least 1, not {self.max_anonymous_ids}")


@dataclass(frozen=True, slots=True)
class Merge:
    """Customer ``from_customer`` was folded into ``into_customer`` by an event."""

    from_customer: str
    into_customer: str
    reason: str
    via: str
    """The identifier key that joined them."""
    message_id: str
    offset: int
    at: datetime
    """Event time of the event that caused the merge."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A link the rules refused: ``identifier`` did not join ``customer_id``."""

    customer_id: str
    identifier: str
    reason: str
    message_id: str
    offset: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Resolution:
    """What ``apply`` decided for one event."""

    customer_id: str | None
    """The event's customer after all merges; ``None`` when it carries no usable identifier."""
    merges: tuple[Merge, ...]
    rejections: tuple[Rejection, ...]
    created: bool
    """A new customer was created by this event."""


# A frozen dataclass's __init__ sets each field through object.__setattr__,
# which costs more than the rest of apply() for an event whose identifiers are
# all known. The slot descriptors build the same object in half the time.
_SET_RESOLUTION: Final = tuple(
    Resolution.__dict__[name].__set__ for name in ("customer_id", "merges", "rejections", "created")
)


def _resolution(
    customer_id: str | None,
    merges: tuple[Merge, ...],
    rejections: tuple[Rejection, ...],
    created: bool,
) -> Resolution:
    """``Resolution(customer_id, merges, rejections, created)``, faster."""
    resolution = object.__new__(Resolution)
    set_customer, set_merges, set_rejections, set_created = _SET_RESOLUTION
    set_customer(resolution, customer_id)
    set_merges(resolution, merges)
    set_rejections(resolution, rejections)
    set_created(resolution, created)
    return resolution


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed in a graph since the previous ``take_changes``."""

    identifiers: tuple[str, ...]
    """Identifier keys (sorted) that are new or now belong to another customer."""
    merged_away: tuple[str, ...]
    """Customer ids merged into another, in merge order."""
    merges: tuple[Merge, ...]
    rejections: tuple[Rejection, ...]
    rows: tuple[Row, ...]
    """Rows to upsert (key: ``identifier``, or ``customer_id`` when that is
    empty) so that a stored snapshot equals ``to_rows()`` again."""


def _add(keys: list[str], kind: str, value: object) -> None:
    if value is not None:
        normal = normalise(kind, value)
        if normal is not None:
            k = f"{kind}:{normal}"  # schemas.identifiers.key, inlined: hot path
            if k not in keys:
                keys.append(k)


def identifiers_of(event: AnyEvent, known: Callable[[str], bool] | None = None) -> tuple[str, ...]:
    """The usable identifier keys ``event`` carries, deduplicated, in priority order.

    Priority: user_id, email, phone, line, x, instagram, anonymous_id. Sources
    are ``userId``/``anonymousId``, identify traits and ``context.traits``
    (email, phone, ``line_user_id``/``x_user_id``/``instagram_user_id``), the
    channel user of Message Received/Sent, and email/phone fields of Form
    Submitted. An alias's ``previousId`` is a user id when ``known`` says the
    graph knows ``user_id:<previousId>``, else an anonymous id (Segment's usual
    case). Junk values are dropped. Group traits describe the group, not the
    person, and are ignored.
    """
    user, anonymous = event.user_id, event.anonymous_id
    # Most events (track, page, screen, ...) carry only the envelope's ids: a
    # short path for them keeps apply() cheap. Exact types: no subclasses exist.
    if event.context.traits is None and type(event) not in _LINKING:
        user = None if user is None else normalise("user_id", user)
        anonymous = None if anonymous is None else normalise("anonymous_id", anonymous)
        if user is None:
            return _NONE if anonymous is None else (_ANON + anonymous,)
        return (_USER + user,) if anonymous is None else (_USER + user, _ANON + anonymous)
    return _linking_identifiers(event, known)


def _linking_identifiers(event: AnyEvent, known: Callable[[str], bool] | None) -> tuple[str, ...]:
    keys: list[str] = []
    _add(keys, "user_id", event.user_id)
    previous: str | None = None
    if isinstance(event, Alias):
        previous = normalise("user_id", event.previous_id)
        if previous is not None and keys and keys[0] == _USER + previous:
            previous = None  # an alias of itself links nothing
        elif previous is not None and known is not None and known(_USER + previous):
            _add(keys, "user_id", previous)
            previous = None
    traits: tuple[Traits, ...] = ()
    if isinstance(event, Identify):
        traits = (event.traits,)
    context_traits = event.context.traits
    if context_traits is not None:
        traits = (*traits, context_traits)
    form = event.properties.fields if isinstance(event, FormSubmitted) else None
    for t in traits:
        _add(keys, "email", t.email)
    if form:
        _add(keys, "email", form.get("email"))
    for t in traits:
        _add(keys, "phone", t.phone)
    if form:
        _add(keys, "phone", form.get("phone"))
    channel = event.properties if isinstance(event, MessageReceived | MessageSent) else None
    extras = [t.model_extra for t in traits if t.model_extra]
    if extras:
        for kind, trait in _CHANNEL_TRAITS:
            if channel is not None and channel.channel == kind:
                _add(keys, kind, channel.channel_user_id)
            for extra in extras:
                _add(keys, kind, extra.get(trait))
    elif channel is not None:
        _add(keys, channel.channel, channel.channel_user_id)
    if previous is not None:
        _add(keys, "anonymous_id", previous)
    _add(keys, "anonymous_id", event.anonymous_id)
    return tuple(keys)


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

    def __init__(self, rules: Rules = Rules()) -> None:
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
    def from_rows(cls, rows: Iterable[Row], rules: Rules = Rules()) -> IdentityGraph:
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
            if identifier.startswith(_ANON):
                graph._anon[customer] += 1
            elif identifier.startswith(_USER):
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

    def _apply(self, keys: tuple[str, ...], event: AnyEvent, offset: int) -> Resolution:
        owner, users = self._owner, self._user
        first = keys[0]
        event_user = first if first.startswith(_USER) else None
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
                rejection = Rejection(
                    primary, k, refusal, event.message_id, offset, event.timestamp
                )
                self._rejections.append(rejection)
                if rejections is None:
                    rejections = []
                rejections.append(rejection)
            elif c is not None:
                merge = self._merge(primary, c, k, event, offset)
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
        self._anon[customer] = 1 if first.startswith(_ANON) else 0
        if first.startswith(_USER):
            self._user[customer] = first
        self._owner[first] = customer
        self._changed.add(first)
        return customer

    def _attach(self, customer: str, identifier: str) -> str | None:
        """Attach an unknown identifier, or say why not."""
        if identifier.startswith(_ANON):
            if self._anon[customer] >= self.rules.max_anonymous_ids:
                return f"anonymous id cap ({self.rules.max_anonymous_ids}) reached"
            self._anon[customer] += 1
        elif identifier.startswith(_USER):
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

    def _merge(self, primary: str, other: str, via: str, event: AnyEvent, offset: int) -> Merge:
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
        reason = f"alias of {via}" if isinstance(event, Alias) else f"shared identifier {via}"
        return Merge(loser, survivor, reason, via, event.message_id, offset, event.timestamp)


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
    return graph._apply(keys, event, offset)
