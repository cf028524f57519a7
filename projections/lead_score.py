"""Lead score, lifecycle stage and funnel stage of one customer: a pure fold.

The identity projection decides which events belong to a customer; this fold
turns that customer's events into:

- a **lead score**: every event scores under each rule it matches (rules are
  additive), and points decay by *event time* with a half-life, so the score is
  "how warm is this person as of their last activity" (MISSION item 5);
- a **lifecycle stage** on the ladder unknown → lead → hot_lead → customer →
  repeater (リード → ホットリード → 顧客 → リピーター, MISSION item 4);
- a **funnel stage** awareness → interest → consideration → purchase →
  retention (認知・興味・検討・購入・継続).

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

Counts, not points, are stored
    A bucket's points are ``events × rule.points`` under the ``Rules`` it is
    read with, capped by the rule's ``daily_cap``. Changing a rule's points
    therefore rescores every state without a replay; changing what a rule
    *matches* needs a replay, like any projection change. Buckets of rules that
    no longer exist are kept but score nothing.

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
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from operator import itemgetter
from typing import Any, Final, NamedTuple

from pydantic import BaseModel
from pydantic_core import TzInfo

from schemas.crm import OrderCompleted, OrderRefunded
from schemas.events import MESSAGE_TYPES, AnyEvent

JSON_VERSION: Final = 1
EXAMPLES_PER_BUCKET: Final = 3
LIFECYCLE_STAGES: Final = ("unknown", "lead", "hot_lead", "customer", "repeater")
FUNNEL_STAGES: Final = ("awareness", "interest", "consideration", "purchase", "retention")

_US_PER_DAY: Final = 86_400_000_000
_HALF_DAY_US: Final = _US_PER_DAY // 2
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_ONE_US: Final = timedelta(microseconds=1)
# Offsets of these tzinfo types do not depend on the date, so they can be cached.
_FIXED_OFFSET_TYPES: Final = (timezone, TzInfo)

Equals = str | int | float | bool
_RULE_KEYS: Final = frozenset(
    {"name", "points", "type", "event", "path_prefix", "prop", "equals", "daily_cap"}
)
_TOP_KEYS: Final = frozenset({"half_life_days", "hot_threshold", "horizon_half_lives", "rule"})
_FUNNEL_KEYS: Final = frozenset({"interest_views", "consideration_paths"})


# ── rules ───────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class Rule:
    """Which events earn points, and how many.

    An event matches when every given condition holds: its message ``type``
    (``page``, ``screen``, ``track``, ...), its track ``event`` name (implies
    ``type = "track"``), its page path under ``path_prefix`` (whole path
    segments: ``/cart`` matches ``/cart`` and ``/cart/items``, not
    ``/cartoon``; the path is ``properties.path``, else ``context.page.path``)
    and the property at dotted path ``prop`` equal to ``equals`` (``*`` stands
    for any key or list item, e.g. ``consents.*``). ``daily_cap`` bounds the
    points one rule can give per UTC day, so a crawler or a refresh loop cannot
    make anyone hot.
    """

    name: str
    points: float
    type: str | None = None
    event: str | None = None
    path_prefix: str | None = None
    prop: str | None = None
    equals: Equals | None = None
    daily_cap: float | None = None

    def __post_init__(self) -> None:
        # Messages name the TOML key so that from_mapping can prefix the rule's path.
        if not self.name:
            raise ValueError("name: must not be empty")
        if not _is_number(self.points) or not math.isfinite(self.points):
            raise ValueError("points: must be a finite number")
        # Floats throughout, so that Rule("x", 1) == Rule("x", 1.0) reads the same too.
        object.__setattr__(self, "points", float(self.points))
        if self.daily_cap is not None:
            if not _is_number(self.daily_cap):
                raise ValueError("daily_cap: must be a positive number")
            object.__setattr__(self, "daily_cap", float(self.daily_cap))
        if self.type is None and self.event is None:
            raise ValueError("type: give a message type, an event name or both")
        if self.type is not None and self.type not in MESSAGE_TYPES:
            raise ValueError(f"type: must be one of {', '.join(MESSAGE_TYPES)}")
        if self.event is not None and self.type not in (None, "track"):
            raise ValueError('event: only track messages have an event name (type = "track")')
        if self.path_prefix is not None and not self.path_prefix.startswith("/"):
            raise ValueError('path_prefix: must start with "/"')
        if (self.prop is None) != (self.equals is None):
            raise ValueError("equals: prop and equals go together")
        if self.daily_cap is not None and not (
            self.daily_cap > 0 and math.isfinite(self.daily_cap)
        ):
            raise ValueError("daily_cap: must be a positive number")

    def day_points(self, events: int) -> float:
        """Points ``events`` matches on one day are worth, after the daily cap."""
        total = events * self.points
        if self.daily_cap is None:
            return total
        return max(min(total, self.daily_cap), -self.daily_cap)


class _Matcher(NamedTuple):
    name: str
    prefix: str | None  # without a trailing "/" ("" for the root)
    parts: tuple[str, ...] | None
    equals: Equals | None


@dataclass(frozen=True, slots=True)
class Rules:
    """The scoring rules and the thresholds of the stages (``scoring.toml``)."""

    rules: tuple[Rule, ...]
    half_life_days: float = 30.0
    hot_threshold: float = 25.0
    #: Buckets this many half-lives older than the last activity are dropped
    #: (10 half-lives: a bucket is worth < 0.1 % of its points by then).
    horizon_half_lives: float = 10.0
    #: Page/screen views that count as interest on their own.
    interest_views: int = 3
    #: Pages whose view means the customer is considering a purchase.
    consideration_paths: tuple[str, ...] = ("/cart", "/checkout", "/pricing")
    # Derived in __post_init__: (type, event) → matchers, so matching is a dict lookup.
    _index: dict[tuple[str, str | None], tuple[_Matcher, ...]] = field(
        init=False, repr=False, compare=False
    )
    _by_name: dict[str, Rule] = field(init=False, repr=False, compare=False)
    _horizon_days: int = field(init=False, repr=False, compare=False)
    _paths: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Tuples even when given lists, so that Rules stay hashable and immutable.
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "consideration_paths", tuple(self.consideration_paths))
        if not (self.half_life_days > 0 and math.isfinite(self.half_life_days)):
            raise ValueError("half_life_days: must be a positive number")
        if not math.isfinite(self.hot_threshold):
            raise ValueError("hot_threshold: must be a finite number")
        if not (self.horizon_half_lives >= 1 and math.isfinite(self.horizon_half_lives)):
            raise ValueError("horizon_half_lives: must be a number >= 1")
        if not isinstance(self.interest_views, int) or self.interest_views < 1:
            raise ValueError("funnel.interest_views: must be a positive integer")
        by_name: dict[str, Rule] = {}
        for position, rule in enumerate(self.rules):
            if rule.name in by_name:
                raise ValueError(f"rule[{position}].name: {rule.name!r} is used twice")
            by_name[rule.name] = rule
        index: dict[tuple[str, str | None], list[_Matcher]] = {}
        for rule in self.rules:
            kind = rule.type or "track"
            index.setdefault((kind, rule.event), []).append(_matcher(rule))
        # An exact (type, event) entry also carries the type's catch-all rules, so
        # one lookup (plus a fallback to the catch-all) finds every candidate.
        for (kind, event), matchers in index.items():
            if event is not None:
                matchers.extend(index.get((kind, None), ()))
        object.__setattr__(self, "_index", {k: tuple(v) for k, v in index.items()})
        object.__setattr__(self, "_by_name", by_name)
        horizon = math.ceil(self.half_life_days * self.horizon_half_lives)
        object.__setattr__(self, "_horizon_days", horizon)
        object.__setattr__(self, "_paths", tuple(p.rstrip("/") for p in self.consideration_paths))

    def rule(self, name: str) -> Rule | None:
        """The rule called ``name``, if there is one."""
        return self._by_name.get(name)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "<rules>") -> Rules:
        """Rules from parsed TOML; ``ValueError`` names the file and key path.

        Example message: ``scoring.toml: rule[3].points: must be a number``
        (rules are numbered from 0, in file order).
        """
        return _parse(data, source)


def _matcher(rule: Rule) -> _Matcher:
    prefix = None if rule.path_prefix is None else rule.path_prefix.rstrip("/")
    parts = None if rule.prop is None else tuple(rule.prop.split("."))
    return _Matcher(rule.name, prefix, parts, rule.equals)


def _under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it, on whole segments."""
    return path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse(data: Mapping[str, Any], source: str) -> Rules:
    def fail(path: str, problem: str) -> ValueError:
        return ValueError(f"{source}: {path}: {problem}")

    if not isinstance(data, Mapping):
        raise fail("<top>", "must be a table")
    for key in data:
        if key not in _TOP_KEYS and key != "funnel":
            raise fail(key, "unknown key")
    settings: dict[str, Any] = {}
    for key in ("half_life_days", "hot_threshold", "horizon_half_lives"):
        if key in data:
            if not _is_number(data[key]):
                raise fail(key, "must be a number")
            settings[key] = float(data[key])
    funnel = data.get("funnel", {})
    if not isinstance(funnel, Mapping):
        raise fail("funnel", "must be a table")
    for key in funnel:
        if key not in _FUNNEL_KEYS:
            raise fail(f"funnel.{key}", "unknown key")
    if "interest_views" in funnel:
        views = funnel["interest_views"]
        if not isinstance(views, int) or isinstance(views, bool):
            raise fail("funnel.interest_views", "must be an integer")
        settings["interest_views"] = views
    if "consideration_paths" in funnel:
        paths = funnel["consideration_paths"]
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise fail("funnel.consideration_paths", "must be a list of strings")
        for position, path in enumerate(paths):
            if not path.startswith("/"):
                raise fail(f"funnel.consideration_paths[{position}]", 'must start with "/"')
        settings["consideration_paths"] = tuple(paths)
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise fail("rule", "must be an array of tables ([[rule]])")
    rules = tuple(_parse_rule(raw, f"rule[{i}]", fail) for i, raw in enumerate(raw_rules))
    try:
        return Rules(rules=rules, **settings)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def _parse_rule(raw: object, path: str, fail: Any) -> Rule:
    if not isinstance(raw, Mapping):
        raise fail(path, "must be a table")
    for key in raw:
        if key not in _RULE_KEYS:
            raise fail(f"{path}.{key}", "unknown key")
    for key in ("name", "points"):
        if key not in raw:
            raise fail(f"{path}.{key}", "is required")
    for key in ("name", "type", "event", "path_prefix", "prop"):
        if key in raw and not isinstance(raw[key], str):
            raise fail(f"{path}.{key}", "must be a string")
    for key in ("points", "daily_cap"):
        if key in raw and not _is_number(raw[key]):
            raise fail(f"{path}.{key}", "must be a number")
    if "equals" in raw and not isinstance(raw["equals"], str | int | float | bool):
        raise fail(f"{path}.equals", "must be a string, number or boolean")
    cap = raw.get("daily_cap")
    try:
        return Rule(
            name=raw["name"],
            points=float(raw["points"]),
            type=raw.get("type"),
            event=raw.get("event"),
            path_prefix=raw.get("path_prefix"),
            prop=raw.get("prop"),
            equals=raw.get("equals"),
            daily_cap=None if cap is None else float(cap),
        )
    except ValueError as error:
        key, _, problem = str(error).partition(": ")  # Rule names the key first
        raise fail(f"{path}.{key}", problem) from None


# The shop's defaults; cdp/defaults/scoring.toml says the same (a test checks it).
DEFAULT_RULES: Final = Rules(
    rules=(
        Rule("page_view", 1, type="page", daily_cap=10),
        Rule("screen_view", 1, type="screen", daily_cap=10),
        Rule("product_viewed", 2, event="Product Viewed", daily_cap=10),
        Rule("product_added", 5, event="Product Added", daily_cap=15),
        Rule("cart_page", 5, type="page", path_prefix="/cart", daily_cap=10),
        Rule("checkout_page", 5, type="page", path_prefix="/checkout", daily_cap=10),
        Rule("form_submitted", 10, event="Form Submitted", daily_cap=20),
        Rule("email_opened", 2, event="Email Opened", daily_cap=4),
        Rule("email_link_clicked", 5, event="Email Link Clicked", daily_cap=10),
        Rule("sns_message_received", 8, event="Message Received", daily_cap=16),
        Rule("survey_answered", 5, event="Survey Answered", daily_cap=5),
        Rule(
            "consent_granted",
            3,
            event="Consent Updated",
            prop="consents.*",
            equals=True,
            daily_cap=3,
        ),
    ),
    half_life_days=30.0,
    hot_threshold=25.0,
)


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

    #: Latest event time seen (UTC); ``None`` before any event.
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
_MISSING: Final = object()


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
        self.last_us = _NEVER if last is None else _epoch_us(last, self.offsets)
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
            us = _epoch_us(event.timestamp, offsets)
            if us > last_us:  # noqa: PLR1730  # max() is a call, this loop is hot
                last_us = us
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
                        _add_order(self.orders, event.properties.order_id, event.properties.revenue)
                elif isinstance(event, OrderRefunded):
                    _add_refund(self.refunds, event.properties.order_id, event.properties.total)
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

            matchers = index_get((kind, name))
            if matchers is None:
                matchers = index_get((kind, None))
                if matchers is None:
                    continue
            day = us // _US_PER_DAY
            if day < last_us // _US_PER_DAY - horizon:
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
            self.last_us = max(self.last_us, _epoch_us(other.last_activity, self.offsets))
        self.known = self.known or other.known
        self.views += other.views
        self.signals |= other.signals
        for order_id, revenue in other.orders:
            _add_order(self.orders, order_id, revenue)
        for order_id, total in other.refunds:
            _add_refund(self.refunds, order_id, total)
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
        if self.last_us == _NEVER:
            return initial()
        cutoff = self.last_us // _US_PER_DAY - self.horizon
        return State(
            last_activity=_from_us(self.last_us),
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


def _add_order(orders: dict[str, Decimal], order_id: str, revenue: Decimal) -> None:
    seen = orders.get(order_id)
    orders[order_id] = revenue if seen is None else _canonical_max(seen, revenue)


def _add_refund(refunds: dict[str, Decimal | None], order_id: str, total: Decimal | None) -> None:
    if order_id not in refunds:
        refunds[order_id] = total
        return
    seen = refunds[order_id]
    # A whole-order refund (None) absorbs partial ones; partial amounts add up.
    refunds[order_id] = None if seen is None or total is None else seen + total


def _apply_one(base: State, one: _Builder, rules: Rules) -> State:
    """``base`` plus a builder that folded one event (``apply``'s path).

    Bisects the event's few buckets into the sorted tuple instead of thawing
    and freezing the whole state; equal to ``fold`` (property-tested).
    """
    if base.last_activity is None:
        return one.freeze()
    base_us = _epoch_us(base.last_activity, one.offsets)
    last_us = max(base_us, one.last_us)
    cutoff = last_us // _US_PER_DAY - rules._horizon_days
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
            _add_order(order_map, order_id, revenue)
        orders = tuple(sorted(order_map.items()))
    if one.refunds:
        refund_map = dict(refunds)
        for order_id, total in one.refunds.items():
            _add_refund(refund_map, order_id, total)
        refunds = tuple(sorted(refund_map.items()))
    signals = base.signals if one.signals <= base.signals else base.signals | one.signals
    return State(
        last_activity=base.last_activity if last_us == base_us else _from_us(last_us),
        known=base.known or one.known,
        views=base.views + one.views,
        signals=signals,
        orders=orders,
        refunds=refunds,
        buckets=buckets,
    )


def _from_us(epoch_us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=epoch_us)


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


def _epoch_us(moment: datetime, offsets: dict[tzinfo | None, int]) -> int:
    """Exact µs since the epoch, UTC (``datetime.timestamp`` is a float)."""
    tz = moment.tzinfo
    offset = offsets.get(tz)
    if offset is None:
        delta = moment.utcoffset()
        if delta is None:
            raise ValueError(f"event time {moment.isoformat()} has no time zone")
        offset = delta // _ONE_US
        if isinstance(tz, _FIXED_OFFSET_TYPES):
            offsets[tz] = offset
    seconds = (
        (moment.toordinal() - _EPOCH_ORDINAL) * 86_400
        + moment.hour * 3_600
        + moment.minute * 60
        + moment.second
    )
    return seconds * 1_000_000 + moment.microsecond - offset


def _canonical_max(a: Decimal, b: Decimal) -> Decimal:
    # Equal amounts can differ in exponent (1200 vs 1200.0); pick one by text so
    # the stored value does not depend on which event came first.
    if a != b:
        return max(a, b)
    return max(a, b, key=str)


def _field(event: AnyEvent, name: str) -> Any:
    """A field some message types lack, or ``None``.

    Not ``getattr(event, name, None)``: for a missing name pydantic's
    ``__getattr__`` raises and that costs ~8 µs; field values live in ``__dict__``.
    """
    return event.__dict__.get(name)


def _has_contact(traits: Any) -> bool:
    return traits is not None and (traits.email is not None or traits.phone is not None)


def _path_of(event: AnyEvent) -> str | None:
    props = _field(event, "properties")
    if isinstance(props, dict):
        path = props.get("path")
        if isinstance(path, str):
            return path
    page = event.context.page
    return page.path if page is not None else None


def _payload(event: AnyEvent) -> Any:
    """What ``Rule.prop`` looks into: ``properties``, else ``traits``."""
    props = _field(event, "properties")
    return props if props is not None else _field(event, "traits")


def _found(value: Any, parts: tuple[str, ...], equals: Any) -> bool:
    """Some value at dotted path ``parts`` (``*`` = any child) equals ``equals``."""
    for position, part in enumerate(parts):
        if part == "*":
            rest = parts[position + 1 :]
            return any(_found(child, rest, equals) for child in _children(value))
        value = _child(value, part)
        if value is _MISSING:
            return False
    # True == 1 in Python; a rule asking for true must not match the number 1.
    if isinstance(value, bool) or isinstance(equals, bool):
        return type(value) is type(equals) and value == equals
    return bool(value == equals)


def _child(value: Any, key: str) -> Any:
    if isinstance(value, Mapping):
        return value.get(key, _MISSING)
    if isinstance(value, BaseModel):
        return getattr(value, key, _MISSING) if key in _model_keys(value) else _MISSING
    if isinstance(value, list | tuple) and key.isdigit() and int(key) < len(value):
        return value[int(key)]
    return _MISSING


def _children(value: Any) -> Iterable[Any]:
    if isinstance(value, Mapping):
        return value.values()
    if isinstance(value, BaseModel):
        return [getattr(value, key) for key in _model_keys(value)]
    if isinstance(value, list | tuple):
        return value
    return ()


def _model_keys(model: BaseModel) -> set[str]:
    # Declared fields plus the extras producers sent; never methods or private state.
    return set(type(model).model_fields) | set(model.model_extra or ())


def fold(state: State, events: Iterable[AnyEvent], rules: Rules = DEFAULT_RULES) -> State:
    """Fold many events at once: thaw once, mutate, freeze once (``== reduce(apply)``)."""
    builder = _Builder(state, rules)
    builder.add_all(events)
    return builder.freeze()


def apply(state: State, event: AnyEvent, rules: Rules = DEFAULT_RULES) -> State:
    """Fold one event in: bisect into the state's buckets, no thaw and freeze of it all."""
    one = _Builder(_EMPTY, rules)
    one.add_all((event,))
    return _apply_one(state, one, rules)


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
    last = _epoch_us(state.last_activity, {})
    return last if at is None else max(last, _epoch_us(at, {}))


def _weighted(state: State, rules: Rules, at_us: int) -> list[tuple[Bucket, float, float]]:
    """``(bucket, points, decayed points)`` of the buckets whose rule still exists."""
    half_life_us = rules.half_life_days * _US_PER_DAY
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
        age = at_us - (bucket.day * _US_PER_DAY + _HALF_DAY_US)
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
            "day": date.fromordinal(_EPOCH_ORDINAL + bucket.day).isoformat(),
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
