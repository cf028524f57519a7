"""The lead-score fold: ``fold``, ``apply``, ``project`` and ``combine``.

Speed
    ``fold`` thaws a state into dicts once, folds a batch with a flat loop
    (rule candidates are one dict lookup by ``(type, event)``), and freezes
    once; ``apply`` folds one event by bisecting into the sorted buckets
    (``_apply_one``), and ``combine`` merges two thawed states. Three paths,
    one set of rules: the property tests in
    tests/unit/test_lead_score_properties.py bind them,
    ``test_fold_equals_reduce_apply`` (``fold`` == ``reduce(apply)``) and
    ``test_combine_equals_folding_the_union_and_commutes`` (``combine`` ==
    the fold of the union), with ``test_two_halves_equal_all_at_once`` and the
    permutation tests beside them.

Pruning
    Buckets older than the horizon (``horizon_half_lives`` half-lives before
    the last activity) are dropped whenever a state is frozen; since the last
    activity only grows, pruning never depends on the order of events.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime, tzinfo
from operator import itemgetter
from typing import Any, Final

from projections.lead_score.parts import (
    US_PER_DAY,
    DealCell,
    add_deal,
    add_order,
    add_refund,
    epoch_us,
    from_us,
)

# Rule matching is private to the rules module but runs in the fold's hot loop.
from projections.lead_score.rules import (
    DEFAULT_RULES,
    Rules,
    _field,
    _found,
    _path_of,
    _payload,
    _under,
)
from projections.lead_score.state import (
    CONSIDERATION_PAGE,
    EMAIL_CLICKED,
    EMAIL_OPENED,
    EMPTY,
    EXAMPLES_PER_BUCKET,
    FORM_SUBMITTED,
    PRODUCT_ADDED,
    PRODUCT_VIEWED,
    SNS_MESSAGE,
    State,
    initial,
    new_bucket,
)
from projections.outbound import SHOP_EVENTS
from schemas.crm import OrderCompleted, OrderRefunded
from schemas.events import AnyEvent
from schemas.sales import DealCreated, DealLost, DealStageChanged, DealWon

# Track event → (makes the customer a known contact, funnel signal). Emailing or
# messaging someone means we hold their address, so those make a lead too.
_TRACK_FACTS: Final[dict[str, tuple[bool, str | None]]] = {
    "Product Viewed": (False, PRODUCT_VIEWED),
    "Product Added": (False, PRODUCT_ADDED),
    "Form Submitted": (True, FORM_SUBMITTED),
    "Message Received": (True, SNS_MESSAGE),
    "Message Sent": (True, None),
    "Email Delivered": (True, None),
    "Email Opened": (True, EMAIL_OPENED),
    "Email Link Clicked": (True, EMAIL_CLICKED),
    "Order Completed": (True, None),
    # The SFA holds the person as a contact: a sales event makes a known lead.
    "Deal Created": (True, None),
    "Deal Stage Changed": (True, None),
    "Deal Won": (True, None),
    "Deal Lost": (True, None),
    "Deal Updated": (True, None),
    "Sales Activity Logged": (True, None),
}
# The deal events that imply a status; Deal Updated implies none, so it cannot
# make a deal won or stop it counting (schemas.sales.DEAL_STATUS).
_DEALS: Final = (DealCreated, DealStageChanged, DealWon, DealLost)
_NEVER: Final = -(1 << 62)  # "no activity yet" as µs, below any real time
_MISSING: Final = object()  # a page path not looked up yet


class _Builder:
    """A thawed ``State``: mutable dicts for a batch of events, frozen once."""

    __slots__ = (
        "buckets",
        "deals",
        "horizon",
        "index",
        "known",
        "last_us",
        "offsets",
        "orders",
        "paths",
        "refunds",
        "signals",
        "views",
    )

    def __init__(self, state: State, rules: Rules) -> None:
        self.index = rules._index
        self.horizon = rules._horizon_days
        self.paths = rules._paths
        # Per-fold cache of fixed UTC offsets in µs (datetime.utcoffset costs ~0.3 µs).
        self.offsets: dict[tzinfo | None, int] = {}
        last = state.last_activity
        self.last_us = _NEVER if last is None else epoch_us(last, self.offsets)
        self.known = state.known
        self.views = state.views
        self.signals = set(state.signals)
        self.orders = dict(state.orders)
        self.refunds = dict(state.refunds)
        self.deals: dict[str, DealCell] = {d[0]: d[1:] for d in state.deals}
        # (rule, day) → [events, examples newest first]: a list rather than an
        # object because one is created per new bucket in the hot loop.
        self.buckets: dict[tuple[str, int], list[Any]] = {
            (b.rule, b.day): [b.events, list(b.examples)] for b in state.buckets
        }

    def add_all(self, events: Iterable[AnyEvent]) -> None:
        """Fold events in. The replay hot loop: locals, no helper calls it can avoid."""
        index_get = self.index.get
        horizon = self.horizon
        paths = self.paths
        buckets = self.buckets
        signals = self.signals
        offsets = self.offsets
        last_us = self.last_us
        known = self.known
        views = self.views
        considered = CONSIDERATION_PAGE in signals
        for event in events:
            kind: str = event.type  # type: ignore[attr-defined]  # every union member has one
            name: str | None = None
            path: Any = _MISSING
            if not known and (event.user_id is not None or _has_contact(event.context.traits)):
                known = True
            if kind == "track":
                name = event.event  # type: ignore[attr-defined]  # every track has one
                facts = _TRACK_FACTS.get(name)
                if facts is not None:
                    known = known or facts[0]
                    if facts[1] is not None:
                        signals.add(facts[1])
                    if isinstance(event, OrderCompleted):
                        add_order(self.orders, event.properties.order_id, event.properties.revenue)
                    elif isinstance(event, _DEALS):
                        us = epoch_us(event.timestamp, offsets)
                        cell = (us, event.message_id, isinstance(event, DealWon))
                        add_deal(self.deals, event.properties.deal_id, cell)
                elif isinstance(event, OrderRefunded):
                    add_refund(self.refunds, event.properties.order_id, event.properties.total)
                if name in SHOP_EVENTS:
                    continue  # the shop acted, not the customer: no activity, no points
            elif kind == "page":
                views += 1
                if not considered:
                    path = _path_of(event)
                    if path is not None and any(_under(path, p) for p in paths):
                        signals.add(CONSIDERATION_PAGE)
                        considered = True
            elif kind == "screen":
                views += 1
            elif kind == "identify" and not known:
                known = _has_contact(_field(event, "traits"))
            us = epoch_us(event.timestamp, offsets)
            if us > last_us:  # noqa: PLR1730  # max() is a call, this loop is hot
                last_us = us

            matchers = index_get((kind, name))
            if matchers is None:
                matchers = index_get((kind, None))
                if matchers is None:
                    continue
            day = us // US_PER_DAY
            if day < last_us // US_PER_DAY - horizon:
                continue  # beyond the horizon already: freeze would drop the bucket
            example = (us, event.message_id)
            for rule, prefix, parts, equals in matchers:
                if prefix is not None:
                    if path is _MISSING:
                        path = _path_of(event)
                    if path is None or not (
                        path.startswith(prefix)
                        and (len(path) == len(prefix) or path[len(prefix)] == "/")
                    ):
                        continue
                if parts is not None and not _found(_payload(event), parts, equals):
                    continue
                key = (rule, day)
                slot = buckets.get(key)
                if slot is None:
                    buckets[key] = [1, [example]]
                else:
                    slot[0] += 1
                    _keep(slot[1], example)
        self.last_us = last_us
        self.known = known
        self.views = views

    def merge(self, other: State) -> None:
        """Fold in another customer's state (``combine``)."""
        if other.last_activity is not None:
            self.last_us = max(self.last_us, epoch_us(other.last_activity, self.offsets))
        self.known = self.known or other.known
        self.views += other.views
        self.signals |= other.signals
        for order_id, revenue in other.orders:
            add_order(self.orders, order_id, revenue)
        for order_id, total in other.refunds:
            add_refund(self.refunds, order_id, total)
        for deal_id, *cell in other.deals:
            add_deal(self.deals, deal_id, tuple(cell))  # type: ignore[arg-type]  # (us, mid, won)
        for bucket in other.buckets:
            slot = self.buckets.get((bucket.rule, bucket.day))
            if slot is None:
                self.buckets[(bucket.rule, bucket.day)] = [bucket.events, list(bucket.examples)]
            else:
                slot[0] += bucket.events
                for example in bucket.examples:
                    _keep(slot[1], example)

    def freeze(self) -> State:
        """The canonical ``State``: sorted tuples, buckets beyond the horizon dropped."""
        # No activity yet (only the shop's events) leaves no buckets to drop.
        active = self.last_us != _NEVER
        cutoff = self.last_us // US_PER_DAY - self.horizon if active else _NEVER
        return State(
            last_activity=from_us(self.last_us) if active else None,
            known=self.known,
            views=self.views,
            signals=frozenset(self.signals),
            orders=tuple(sorted(self.orders.items())),
            refunds=tuple(sorted(self.refunds.items())),
            buckets=tuple(
                new_bucket((rule, day, slot[0], tuple(slot[1])))
                for (rule, day), slot in sorted(self.buckets.items())
                if day >= cutoff
            ),
            deals=tuple(sorted((k, *v) for k, v in self.deals.items())),
        )


def _apply_one(base: State, base_last: datetime, one: _Builder, rules: Rules) -> State:
    """``base`` plus a builder that folded one event (``apply``'s path); ``base``
    has had activity, the latest at ``base_last`` (else ``fold`` is as cheap).

    Bisects the event's few buckets into the sorted tuple instead of thawing
    and freezing the whole state; equal to ``fold`` (property-tested).
    """
    base_us = epoch_us(base_last, one.offsets)
    last_us = max(base_us, one.last_us)
    cutoff = last_us // US_PER_DAY - rules._horizon_days
    buckets = base.buckets
    # Usually nothing is old enough (the cutoff moves only with the last active
    # day); checking anyway keeps a state folded under other rules canonical.
    if buckets and min(map(_bucket_day, buckets)) < cutoff:
        buckets = tuple(b for b in buckets if b.day >= cutoff)
    for key, (events, examples) in sorted(one.buckets.items()):
        if key[1] < cutoff:
            continue
        i = bisect_left(buckets, key, key=_bucket_key)
        if i < len(buckets) and _bucket_key(buckets[i]) == key:
            old = buckets[i]
            merged = sorted({*old.examples, *examples}, reverse=True)[:EXAMPLES_PER_BUCKET]
            new = new_bucket((*key, old.events + events, tuple(merged)))
            buckets = (*buckets[:i], new, *buckets[i + 1 :])
        else:
            buckets = (*buckets[:i], new_bucket((*key, events, tuple(examples))), *buckets[i:])
    orders, refunds = base.orders, base.refunds
    if one.orders:
        order_map = dict(orders)
        for order_id, revenue in one.orders.items():
            add_order(order_map, order_id, revenue)
        orders = tuple(sorted(order_map.items()))
    if one.refunds:
        refund_map = dict(refunds)
        for order_id, total in one.refunds.items():
            add_refund(refund_map, order_id, total)
        refunds = tuple(sorted(refund_map.items()))
    deals = base.deals
    if one.deals:
        deal_map: dict[str, DealCell] = {d[0]: d[1:] for d in deals}
        for deal_id, cell in one.deals.items():
            add_deal(deal_map, deal_id, cell)
        deals = tuple(sorted((k, *v) for k, v in deal_map.items()))
    signals = base.signals if one.signals <= base.signals else base.signals | one.signals
    return State(
        last_activity=base_last if last_us == base_us else from_us(last_us),
        known=base.known or one.known,
        views=base.views + one.views,
        signals=signals,
        orders=orders,
        refunds=refunds,
        buckets=buckets,
        deals=deals,
    )


_bucket_key: Final = itemgetter(0, 1)  # (rule, day): the sort key of State.buckets
_bucket_day: Final = itemgetter(1)


def _keep(examples: list[tuple[int, str]], example: tuple[int, str]) -> None:
    """Keep the ``EXAMPLES_PER_BUCKET`` largest distinct examples, newest first."""
    if example > examples[0]:
        examples.insert(0, example)  # the usual case in a replay in log order
    elif example in examples or (len(examples) >= EXAMPLES_PER_BUCKET and example < examples[-1]):
        return
    else:
        examples.append(example)
        examples.sort(reverse=True)
    del examples[EXAMPLES_PER_BUCKET:]


def _has_contact(traits: Any) -> bool:
    return traits is not None and (traits.email is not None or traits.phone is not None)


def fold(state: State, events: Iterable[AnyEvent], rules: Rules = DEFAULT_RULES) -> State:
    """Fold many events at once: thaw once, mutate, freeze once (``== reduce(apply)``)."""
    builder = _Builder(state, rules)
    builder.add_all(events)
    return builder.freeze()


def apply(state: State, event: AnyEvent, rules: Rules = DEFAULT_RULES) -> State:
    """Fold one event in: bisect into the state's buckets, no thaw and freeze of it all."""
    last = state.last_activity
    if last is None:
        return fold(state, (event,), rules)
    one = _Builder(EMPTY, rules)
    one.add_all((event,))
    return _apply_one(state, last, one, rules)


def project(events: Iterable[AnyEvent], rules: Rules = DEFAULT_RULES) -> State:
    """The state of a customer with exactly these events."""
    return fold(initial(), events, rules)


def combine(a: State, b: State, rules: Rules = DEFAULT_RULES) -> State:
    """Two customers merged: equal to folding the union of their events."""
    builder = _Builder(a, rules)
    builder.merge(b)
    return builder.freeze()
