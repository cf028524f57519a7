"""Lead score, lifecycle stage and funnel stage of one customer: a pure fold.

The identity projection decides which events belong to a customer; this fold
turns that customer's events into:

- a **lead score**: every event scores under each rule it matches (rules are
  additive), and points decay by *event time* with a half-life, so the score is
  "how warm is this person as of their last activity" (MISSION item 5);
  activity is what the customer did: the shop's own events
  (``projections.outbound.SHOP_EVENTS``: an email delivered, a message sent,
  a refund booked) never move it and never earn points;
- a **lifecycle stage** on the ladder unknown → lead → hot_lead → customer →
  repeater (リード → ホットリード → 顧客 → リピーター, MISSION item 4);
- a **funnel stage** awareness → interest → consideration → purchase →
  retention (認知・興味・検討・購入・継続).

What earns points is set by ``Rules`` (``projections.scoring_rules``, whose
``Rule``, ``Rules`` and ``DEFAULT_RULES`` are re-exported here). Buckets store
counts, not points, so changing a rule's points rescores every state without
a replay (see that module).

Order independence, bit for bit
    Any permutation of the same events gives an *equal* ``State``. Floats are
    never accumulated: a ``Bucket`` counts the events one rule matched on one
    UTC day (an ``int``), and the decayed score is computed on demand from the
    buckets with ``math.fsum``. Each bucket keeps the three largest
    ``(event time, messageId)`` pairs as examples, a set that does not depend
    on arrival order either. Buckets older than the horizon
    (``horizon_half_lives`` half-lives before the last activity) are dropped
    whenever a state is frozen; since the last activity only grows, a bucket
    dropped early would also be dropped at the end, and a late event for an
    already-dropped day is dropped again, so pruning never depends on order
    (``combine`` and ``apply`` follow the same rule).

Speed
    ``fold`` thaws a state into dicts once, folds a batch with a flat loop
    (rule candidates are one dict lookup by ``(type, event)``), and freezes
    once; ``apply`` folds one event by bisecting into the sorted buckets.
    ``fold`` must equal ``reduce(apply)`` (property-tested).

Not idempotent
    Duplicate deliveries count twice, like every fold here: the log
    deduplicates by ``messageId`` before folding.

Time
    Decay uses event time only; nothing reads a clock. A bucket is aged from
    its UTC midday, so an event is worth its points at noon of its day (with
    a 30-day half-life, at most 1.2 % more or less earlier or later that day).
    The score is one exponential in time: ``score_at(T + d) ==
    score_at(T) * 0.5 ** (d / half_life_days)``, so a stored score and its
    ``score_time`` give the score at any later time without the state.
    ``score_at`` for a time earlier than the last activity returns the score
    at the last activity (a fold cannot un-see events; replay up to that time
    for a true as-of).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from operator import itemgetter
from typing import Any, Final, NamedTuple

from projections._lead_parts import (
    EPOCH_ORDINAL,
    HALF_DAY_US,
    US_PER_DAY,
    add_order,
    add_refund,
    epoch_us,
    from_us,
)
from projections.outbound import SHOP_EVENTS

# Rule matching is private to scoring_rules but runs in the fold's hot loop.
from projections.scoring_rules import (
    DEFAULT_RULES,
    Equals,
    Rule,
    Rules,
    _field,
    _found,
    _path_of,
    _payload,
    _under,
)
from schemas.crm import OrderCompleted, OrderRefunded
from schemas.events import AnyEvent

__all__ = [
    "CONSIDERATION_PAGE",
    "DEFAULT_RULES",
    "EMAIL_CLICKED",
    "EMAIL_OPENED",
    "EXAMPLES_PER_BUCKET",
    "FORM_SUBMITTED",
    "FUNNEL_STAGES",
    "JSON_VERSION",
    "LIFECYCLE_STAGES",
    "PRODUCT_ADDED",
    "PRODUCT_VIEWED",
    "SIGNALS",
    "SNS_MESSAGE",
    "SUMMARY_COLUMNS",
    "Bucket",
    "Equals",
    "Rule",
    "Rules",
    "State",
    "apply",
    "combine",
    "explain",
    "fold",
    "from_json",
    "funnel_stage",
    "initial",
    "lifecycle_stage",
    "order_count",
    "project",
    "score_at",
    "summary",
    "to_json",
]

JSON_VERSION: Final = 1
EXAMPLES_PER_BUCKET: Final = 3
LIFECYCLE_STAGES: Final = ("unknown", "lead", "hot_lead", "customer", "repeater")
FUNNEL_STAGES: Final = ("awareness", "interest", "consideration", "purchase", "retention")


# ── state ───────────────────────────────────────────────────────────────────


class Bucket(NamedTuple):
    """The events one rule matched on one UTC day."""

    rule: str
    #: Days since 1970-01-01, UTC.
    day: int
    #: How many events matched (points are ``Rule.day_points(events)``).
    events: int
    #: Up to three ``(event time in µs since the epoch, messageId)``, newest first.
    examples: tuple[tuple[int, str], ...]


@dataclass(frozen=True, slots=True)
class State:
    """What the lead score and the stages are computed from (one customer).

    Every field is a value that any order of the same events reproduces
    exactly: maxima, counts, sets and sorted tuples.
    """

    #: Latest time of the customer's own events (UTC; not ``SHOP_EVENTS``);
    #: ``None`` before any. The score decays from here.
    last_activity: datetime | None = None
    #: The customer can be contacted: a userId, an email/phone trait, a form,
    #: an SNS message or an email event was seen.
    known: bool = False
    #: Page and screen views, all time.
    views: int = 0
    #: Funnel signals seen (``SIGNALS``).
    signals: frozenset[str] = frozenset()
    #: ``(order_id, revenue)``, sorted by id; a repeated order id counts once.
    orders: tuple[tuple[str, Decimal], ...] = ()
    #: ``(order_id, refunded amount)``, sorted; ``None`` = the whole order.
    refunds: tuple[tuple[str, Decimal | None], ...] = ()
    #: Score buckets within the horizon, sorted by (rule, day).
    buckets: tuple[Bucket, ...] = ()


PRODUCT_VIEWED: Final = "product_viewed"
PRODUCT_ADDED: Final = "product_added"
FORM_SUBMITTED: Final = "form_submitted"
SNS_MESSAGE: Final = "sns_message"
EMAIL_OPENED: Final = "email_opened"
EMAIL_CLICKED: Final = "email_clicked"
CONSIDERATION_PAGE: Final = "consideration_page"
SIGNALS: Final = frozenset(
    {
        PRODUCT_VIEWED,
        PRODUCT_ADDED,
        FORM_SUBMITTED,
        SNS_MESSAGE,
        EMAIL_OPENED,
        EMAIL_CLICKED,
        CONSIDERATION_PAGE,
    }
)
_INTEREST: Final = frozenset({PRODUCT_VIEWED, SNS_MESSAGE, EMAIL_OPENED, EMAIL_CLICKED})
_CONSIDERATION: Final = frozenset({PRODUCT_ADDED, FORM_SUBMITTED, CONSIDERATION_PAGE})

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
}
_NEVER: Final = -(1 << 62)  # "no activity yet" as µs, below any real time
_MISSING: Final = object()  # a page path not looked up yet


_EMPTY: Final = State()


def initial() -> State:
    """The state of a customer with no events."""
    return _EMPTY


# ── the fold ────────────────────────────────────────────────────────────────


class _Builder:
    """A thawed ``State``: mutable dicts for a batch of events, frozen once."""

    __slots__ = (
        "buckets",
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
                _bucket((rule, day, slot[0], tuple(slot[1])))
                for (rule, day), slot in sorted(self.buckets.items())
                if day >= cutoff
            ),
        )


def _bucket(fields: tuple[str, int, int, tuple[tuple[int, str], ...]]) -> Bucket:
    # NamedTuple's generated __new__ is a Python frame; a freeze makes one per bucket.
    return tuple.__new__(Bucket, fields)


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
            new = _bucket((*key, old.events + events, tuple(merged)))
            buckets = (*buckets[:i], new, *buckets[i + 1 :])
        else:
            buckets = (*buckets[:i], _bucket((*key, events, tuple(examples))), *buckets[i:])
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
    signals = base.signals if one.signals <= base.signals else base.signals | one.signals
    return State(
        last_activity=base_last if last_us == base_us else from_us(last_us),
        known=base.known or one.known,
        views=base.views + one.views,
        signals=signals,
        orders=orders,
        refunds=refunds,
        buckets=buckets,
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
    one = _Builder(_EMPTY, rules)
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


# ── reading the state ───────────────────────────────────────────────────────


def _as_of(state: State, at: datetime | None) -> int | None:
    """``at`` (default: the last activity) in µs, never before the last activity."""
    if state.last_activity is None:
        return None
    last = epoch_us(state.last_activity, {})
    return last if at is None else max(last, epoch_us(at, {}))


def _weighted(state: State, rules: Rules, at_us: int) -> list[tuple[Bucket, float, float]]:
    """``(bucket, points, decayed points)`` of the buckets whose rule still exists."""
    half_life_us = rules.half_life_days * US_PER_DAY
    by_name = rules._by_name
    out = []
    for bucket in state.buckets:
        rule = by_name.get(bucket.rule)
        if rule is None:
            continue
        points = rule.day_points(bucket.events)
        # Age from the bucket's midday, negative for a bucket of today before
        # noon, and not clamped: that keeps score_at(T + d) == score_at(T) *
        # 0.5 ** (d / half-life) exactly, which SQL views of "the score now" use.
        age = at_us - (bucket.day * US_PER_DAY + HALF_DAY_US)
        out.append((bucket, points, points * 0.5 ** (age / half_life_us)))
    return out


def _score(weighted: list[tuple[Bucket, float, float]]) -> float:
    # fsum: exactly rounded, so the result does not depend on summation order.
    return math.fsum(decayed for _, _, decayed in weighted)


def score_at(state: State, at: datetime, rules: Rules = DEFAULT_RULES) -> float:
    """The decayed score as of ``at`` (clamped to the last activity, see module doc)."""
    at_us = _as_of(state, at)
    return 0.0 if at_us is None else _score(_weighted(state, rules, at_us))


def explain(
    state: State, rules: Rules = DEFAULT_RULES, at: datetime | None = None, top: int = 5
) -> list[dict[str, Any]]:
    """The ``top`` contributions that weigh most as of ``at`` (default: last activity).

    One item per (rule, UTC day): ``rule``, ``day`` (ISO date), ``events``,
    ``points`` (after the daily cap), ``decayed_points`` and ``message_ids``
    (up to three examples, newest first). Heaviest first; ties by rule and day.
    """
    at_us = _as_of(state, at)
    if at_us is None:
        return []
    weighted = sorted(
        _weighted(state, rules, at_us), key=lambda w: (-abs(w[2]), w[0].rule, w[0].day)
    )
    return [
        {
            "rule": bucket.rule,
            "day": date.fromordinal(EPOCH_ORDINAL + bucket.day).isoformat(),
            "events": bucket.events,
            "points": points,
            "decayed_points": decayed,
            "message_ids": [message_id for _, message_id in bucket.examples],
        }
        for bucket, points, decayed in weighted[:top]
    ]


def order_count(state: State) -> int:
    """Orders that were not fully refunded."""
    refunds = dict(state.refunds)
    count = 0
    for order_id, revenue in state.orders:
        if order_id not in refunds:
            count += 1
            continue
        refunded = refunds[order_id]
        count += refunded is not None and refunded < revenue  # a partial refund keeps it
    return count


def lifecycle_stage(state: State, rules: Rules = DEFAULT_RULES, at: datetime | None = None) -> str:
    """``unknown`` | ``lead`` | ``hot_lead`` | ``customer`` | ``repeater``.

    Orders decide first (scores do not matter once someone buys); a lead is
    hot when its score as of ``at`` (default: last activity) reaches
    ``hot_threshold``. An anonymous visitor stays ``unknown`` however high its
    score: sales cannot contact them.
    """
    at_us = _as_of(state, at)
    score = 0.0 if at_us is None else _score(_weighted(state, rules, at_us))
    return _lifecycle(state, score, rules)


def _lifecycle(state: State, score: float, rules: Rules) -> str:
    orders = order_count(state)
    if orders >= 2:
        return "repeater"
    if orders == 1:
        return "customer"
    if not state.known:
        return "unknown"
    return "hot_lead" if score >= rules.hot_threshold else "lead"


def funnel_stage(state: State, rules: Rules = DEFAULT_RULES) -> str:
    """``awareness`` | ``interest`` | ``consideration`` | ``purchase`` | ``retention``.

    The highest stage reached: retention with two live orders, purchase with
    one, consideration after a cart add, a form or a cart/checkout/pricing
    page, interest after ``interest_views`` views, a product view, an SNS
    message or an email open/click; awareness otherwise (the customer exists,
    so they have been seen).
    """
    orders = order_count(state)
    if orders >= 2:
        return "retention"
    if orders == 1:
        return "purchase"
    if state.signals & _CONSIDERATION:
        return "consideration"
    if state.signals & _INTEREST or state.views >= rules.interest_views:
        return "interest"
    return "awareness"


SUMMARY_COLUMNS: Final[dict[str, str]] = {
    "lead_score": "DOUBLE",
    "score_time": "TIMESTAMPTZ",
    "lifecycle_stage": "VARCHAR",
    "funnel_stage": "VARCHAR",
    "hot": "BOOLEAN",
    "score_reasons": "VARCHAR",
}
"""Columns ``summary`` fills in the profiles table, with their DuckDB types."""


def summary(state: State, rules: Rules = DEFAULT_RULES) -> dict[str, Any]:
    """The ``SUMMARY_COLUMNS`` of one customer, as of their last activity.

    ``hot`` is the score alone (an anonymous hot visitor is still worth
    retargeting); ``score_reasons`` names the three rules that weigh most,
    e.g. ``"form_submitted +9.8, product_added +4.9"``.
    """
    at_us = _as_of(state, None)
    weighted = [] if at_us is None else _weighted(state, rules, at_us)
    lead_score = _score(weighted)
    by_rule: dict[str, list[float]] = {}
    for bucket, _, decayed in weighted:
        by_rule.setdefault(bucket.rule, []).append(decayed)
    totals = sorted(((math.fsum(v), k) for k, v in by_rule.items()), key=lambda t: (-t[0], t[1]))
    return {
        "lead_score": lead_score,
        "score_time": state.last_activity,
        "lifecycle_stage": _lifecycle(state, lead_score, rules),
        "funnel_stage": funnel_stage(state, rules),
        "hot": lead_score >= rules.hot_threshold,
        "score_reasons": ", ".join(f"{name} {total:+.1f}" for total, name in totals[:3]),
    }


# ── serialisation ───────────────────────────────────────────────────────────


def to_json(state: State) -> dict[str, Any]:
    """A JSON-safe dict (orjson can dump it); ``from_json`` is its exact inverse."""
    last = state.last_activity
    return {
        "version": JSON_VERSION,
        "last_activity": None if last is None else last.isoformat(),
        "known": state.known,
        "views": state.views,
        "signals": sorted(state.signals),
        "orders": [[order_id, str(revenue)] for order_id, revenue in state.orders],
        "refunds": [
            [order_id, None if total is None else str(total)] for order_id, total in state.refunds
        ],
        "buckets": [[b.rule, b.day, b.events, list(map(list, b.examples))] for b in state.buckets],
    }


def from_json(data: Mapping[str, Any]) -> State:
    """The ``State`` that ``to_json`` wrote; ``ValueError`` for another version."""
    if data.get("version") != JSON_VERSION:
        raise ValueError(f"lead score state version {data.get('version')!r} is not {JSON_VERSION}")
    last = data["last_activity"]
    return State(
        last_activity=None if last is None else datetime.fromisoformat(last),
        known=bool(data["known"]),
        views=int(data["views"]),
        signals=frozenset(data["signals"]),
        orders=tuple((str(o), Decimal(r)) for o, r in data["orders"]),
        refunds=tuple((str(o), None if t is None else Decimal(t)) for o, t in data["refunds"]),
        # JSON already holds the right scalar types; a hot path for lookups and
        # changelog tables, so no per-value conversion.
        buckets=tuple(
            _bucket((rule, day, n, tuple(map(tuple, examples))))
            for rule, day, n, examples in data["buckets"]
        ),
    )
