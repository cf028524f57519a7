"""Fold laws of the identity graph, checked against a naive oracle.

The oracle shares no code with ``projections.identity``: it reads identifiers
from the generated event descriptions through hand-written normalisation
tables, keeps customers as a list of plain sets (found by scanning), and
applies the merge rules as the design states them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.identity import IdentityGraph, Merge, Rejection, Resolution, Rules, apply
from schemas import AnyEvent, decode
from tests.factories import envelope, identify, message, page, track

# Raw values as producers send them -> normalised value (None: junk, never an identifier).
IDS = {
    "u1": "u1",
    " u1 ": "u1",
    "u2": "u2",
    "a1": "a1",
    "a2": "a2",
    "a3": "a3",
    " a3 ": "a3",
    "a4": "a4",
    "null": None,
    "undefined": None,
    "0": None,
}
EMAILS = {
    "hanako@example.jp": "hanako@example.jp",
    " Hanako@Example.JP ": "hanako@example.jp",
    "taro@example.jp": "taro@example.jp",
    "TARO@example.jp ": "taro@example.jp",
    "test@example.com": None,
    "noreply@shop.jp": None,
}
PHONES = {
    "090-1234-5678": "+819012345678",
    "+81 90 1234 5678": "+819012345678",
    "080-9999-0000": "+818099990000",
    "+81-80-9999-0000": "+818099990000",
}
CHANNEL_IDS = {"U1": "U1", " U1 ": "U1", "U2": "U2"}
# Pools the generator draws from; each user id is rarer than an anonymous id, as in real traffic.
USERS = [None, None, None, "u1", " u1 ", "u2", "null", "0"]
ANONS = [None, "a1", "a2", "a3", " a3 ", "a4", "undefined"]


def maybe(values: dict[str, Any]) -> st.SearchStrategy[str | None]:
    return st.sampled_from([None, *sorted(values)])  # one draw: generation dominates runtime


@dataclass(frozen=True)
class Spec:
    """A generated event, described plainly enough for the oracle to read."""

    kind: str  # page | identify | message | alias | form
    user: str | None
    anon: str | None
    email: str | None = None
    phone: str | None = None
    line_trait: str | None = None
    context_email: str | None = None
    channel: str = "line"
    channel_id: str | None = None
    previous: str | None = None


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    kind = draw(st.sampled_from(["page", "identify", "identify", "message", "alias", "form"]))
    user = draw(st.sampled_from(USERS))
    anon = draw(st.sampled_from(ANONS))
    if kind == "alias":
        user = user or "u2"
    elif user is None and anon is None:
        anon = "a1"
    with_traits = kind in ("identify", "form")
    return Spec(
        kind,
        user,
        anon,
        email=draw(maybe(EMAILS)) if with_traits else None,
        phone=draw(maybe(PHONES)) if with_traits else None,
        line_trait=draw(maybe(CHANNEL_IDS)) if kind == "identify" else None,
        context_email=draw(maybe(EMAILS)) if kind in ("page", "message") else None,
        channel=draw(st.sampled_from(["line", "x"])) if kind == "message" else "line",
        channel_id=draw(st.sampled_from(sorted(CHANNEL_IDS))) if kind == "message" else None,
        previous=draw(st.sampled_from(sorted(IDS))) if kind == "alias" else None,
    )


def build(spec: Spec) -> AnyEvent:
    ids: dict[str, Any] = {"user_id": spec.user, "anonymous_id": spec.anon}
    if spec.context_email is not None:
        ids["context"] = {"traits": {"email": spec.context_email}}
    if spec.kind == "page":
        return page(**ids)
    if spec.kind == "message":
        assert spec.channel_id is not None
        return message(spec.channel, spec.channel_id, **ids)
    if spec.kind == "alias":
        return decode(envelope("alias", previousId=spec.previous, **ids))
    if spec.kind == "form":
        fields = {"email": spec.email, "phone": spec.phone}
        fields = {name: value for name, value in fields.items() if value is not None}
        return track("Form Submitted", {"form_id": "f1", "fields": fields}, **ids)
    traits: dict[str, Any] = {"line_user_id": spec.line_trait} if spec.line_trait else {}
    return identify(email=spec.email, phone=spec.phone, traits=traits, **ids)


@dataclass
class Oracle:
    """Union-find the slow, obvious way: a list of sets in creation order."""

    cap: int
    sets: list[set[str]] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    merged_into: dict[int, int] = field(default_factory=dict)

    def owner(self, identifier: str) -> int | None:
        return next((n for n, members in enumerate(self.sets) if identifier in members), None)

    def user(self, n: int) -> str | None:
        return next((k for k in self.sets[n] if k.startswith("user_id:")), None)

    def anons(self, n: int) -> int:
        return sum(k.startswith("anonymous_id:") for k in self.sets[n])

    def final(self, n: int) -> int:
        while n in self.merged_into:
            n = self.merged_into[n]
        return n

    def keys(self, spec: Spec) -> list[str]:
        def norm(table: Mapping[str, str | None], raw: str | None) -> str | None:
            return None if raw is None else table[raw]

        user, anon = norm(IDS, spec.user), norm(IDS, spec.anon)
        found = [("user_id", user)]
        previous = norm(IDS, spec.previous)
        if (
            previous is not None
            and previous != user
            and self.owner(f"user_id:{previous}") is not None
        ):
            found.append(("user_id", previous))
            previous = None
        found += [("email", norm(EMAILS, spec.email)), ("email", norm(EMAILS, spec.context_email))]
        found.append(("phone", norm(PHONES, spec.phone)))
        channel_id = norm(CHANNEL_IDS, spec.channel_id)
        found += [(spec.channel, channel_id), ("line", norm(CHANNEL_IDS, spec.line_trait))]
        if previous != user:
            found.append(("anonymous_id", previous))
        found.append(("anonymous_id", anon))
        order = ["user_id", "email", "phone", "line", "x", "anonymous_id"]
        keys: list[str] = []
        for kind in order:  # a stable pass per kind keeps priority order
            for k, value in found:
                if k == kind and value is not None and f"{k}:{value}" not in keys:
                    keys.append(f"{k}:{value}")
        return keys

    def apply(self, spec: Spec) -> tuple[int | None, bool, list[tuple[str, str, str]], list[str]]:
        keys = self.keys(spec)
        if not keys:
            return None, False, [], []
        event_user = keys[0] if keys[0].startswith("user_id:") else None
        primary = None
        for k in keys:
            owner = self.owner(k)
            if owner is not None and (event_user is None or self.user(owner) in (None, event_user)):
                primary = owner
                break
        created = primary is None
        if primary is None:
            primary = len(self.sets)
            self.sets.append({keys[0]})
            name = "cus_" + hashlib.blake2b(keys[0].encode()).hexdigest()[:20]
            assert name not in self.names
            self.names.append(name)
        merges, rejected = [], []
        for k in keys:
            other = self.owner(k)
            if other == primary:
                continue
            if other is None:
                anon_full = k.startswith("anonymous_id:") and self.anons(primary) + 1 > self.cap
                second_user = k.startswith("user_id:") and self.user(primary) is not None
                if anon_full or second_user:
                    rejected.append(k)
                else:
                    self.sets[primary].add(k)
                continue
            two_users = self.user(primary) is not None and self.user(other) is not None
            if two_users or self.anons(primary) + self.anons(other) > self.cap:
                rejected.append(k)
            else:
                survivor, loser = min(primary, other), max(primary, other)
                self.sets[survivor] |= self.sets[loser]
                self.sets[loser] = set()
                self.merged_into[loser] = survivor
                merges.append((self.names[loser], self.names[survivor], k))
                primary = survivor
        return primary, created, merges, rejected

    def partition(self) -> dict[str, frozenset[str]]:
        return {self.names[n]: frozenset(s) for n, s in enumerate(self.sets) if s}


def partition(graph: IdentityGraph) -> dict[str, frozenset[str]]:
    return {c: frozenset(graph.identifiers_of_customer(c)) for c in graph.customers()}


streams = st.lists(specs(), min_size=8, max_size=30)
caps = st.sampled_from([1, 2, 50, 50])
SETTINGS = settings(max_examples=150, deadline=None)


@SETTINGS
@given(streams, caps)
def test_graph_agrees_with_the_naive_oracle(stream: list[Spec], cap: int) -> None:
    graph, oracle = IdentityGraph(Rules(max_anonymous_ids=cap)), Oracle(cap)
    resolutions: list[tuple[Resolution, int | None]] = []
    for offset, spec in enumerate(stream):
        got = apply(graph, build(spec), offset)
        customer, created, merges, rejected = oracle.apply(spec)
        expected = None if customer is None else oracle.names[customer]
        assert got.customer_id == expected
        assert got.created == created
        assert [(m.from_customer, m.into_customer, m.via) for m in got.merges] == merges
        assert [r.identifier for r in got.rejections] == rejected
        resolutions.append((got, customer))

    assert partition(graph) == oracle.partition()
    assert set(map(frozenset, partition(graph).values())) == {
        frozenset(s) for s in oracle.sets if s
    }
    for got, customer in resolutions:  # every event's customer lands in the right component
        if customer is not None:
            final = oracle.sets[oracle.final(customer)]
            assert graph.identifiers_of_customer(graph.redirect(got.customer_id or "")) == tuple(
                sorted(final)
            )
    for members in partition(graph).values():
        assert sum(k.startswith("user_id:") for k in members) <= 1
        assert sum(k.startswith("anonymous_id:") for k in members) <= cap


@SETTINGS
@given(streams, st.integers(min_value=0, max_value=30), caps)
def test_snapshot_and_restore_midway_equals_applying_at_once(
    stream: list[Spec], cut: int, cap: int
) -> None:
    rules = Rules(max_anonymous_ids=cap)
    events = [build(spec) for spec in stream]
    cut = min(cut, len(events))
    whole = IdentityGraph(rules)
    at_once = [apply(whole, event, offset) for offset, event in enumerate(events)]

    first = IdentityGraph(rules)
    for offset, event in enumerate(events[:cut]):
        apply(first, event, offset)
    stored = json.loads(json.dumps(first.to_rows()))
    rows = [(str(k), str(c), int(seq), str(into)) for k, c, seq, into in stored]
    second = IdentityGraph.from_rows(rows, rules)
    resumed = [apply(second, event, offset) for offset, event in enumerate(events[cut:], cut)]

    assert resumed == at_once[cut:]
    assert second.to_rows() == whole.to_rows()
    assert list(second.customers()) == list(whole.customers())


@SETTINGS
@given(streams, st.sets(st.integers(min_value=0, max_value=30)), caps)
def test_upserting_changes_rebuilds_the_snapshot(
    stream: list[Spec], takes: set[int], cap: int
) -> None:
    graph = IdentityGraph(Rules(max_anonymous_ids=cap))
    stored: dict[str, tuple[str, str, int, str]] = {}
    merges: list[Merge] = []
    rejections: list[Rejection] = []
    for offset, spec in enumerate(stream):
        resolution = apply(graph, build(spec), offset)
        merges += resolution.merges
        rejections += resolution.rejections
        if offset in takes or offset == len(stream) - 1:
            changes = graph.take_changes()
            stored.update((row[0] or row[1], row) for row in changes.rows)
            assert list(changes.merges) == merges
            assert list(changes.rejections) == rejections
            assert {m.from_customer for m in merges} == set(changes.merged_away)
            merges, rejections = [], []
    assert sorted(stored.values()) == graph.to_rows()
    live = set(graph.customers())
    assert {graph.redirect(row[1]) for row in graph.to_rows()} == live
