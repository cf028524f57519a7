"""Lead-score rules: which events earn points, and the thresholds of the stages.

``Rules`` is what ``scoring.toml`` parses into (``Rules.from_mapping``, whose
``ValueError`` names the file and key path); ``DEFAULT_RULES`` are the shop's
defaults. The fold in ``projections.lead_score``, which re-exports ``Rule``,
``Rules`` and ``DEFAULT_RULES``, scores every event under each rule it matches:
rules are additive.

Counts, not points, are stored
    A bucket's points are ``events × rule.points`` under the ``Rules`` it is
    read with, capped by the rule's ``daily_cap``. Changing a rule's points
    therefore rescores every state without a replay; changing what a rule
    *matches* needs a replay, like any projection change. Buckets of rules that
    no longer exist are kept but score nothing.

Matching
    ``Rules`` indexes its rules by ``(type, event)``, so the fold finds an
    event's candidate rules with one dict lookup. The private helpers at the
    end of this module (``_path_of``, ``_payload``, ``_found``, ``_under``) say
    what a rule's conditions look at; the fold's hot loop calls them directly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from pydantic import BaseModel

from projections.outbound import SHOP_EVENTS
from schemas.events import MESSAGE_TYPES, AnyEvent

__all__ = ["DEFAULT_RULES", "Equals", "Rule", "Rules"]

Equals = str | int | float | bool
_RULE_KEYS: Final = frozenset(
    {"name", "points", "type", "event", "path_prefix", "prop", "equals", "daily_cap"}
)
_TOP_KEYS: Final = frozenset({"half_life_days", "hot_threshold", "horizon_half_lives", "rule"})
_FUNNEL_KEYS: Final = frozenset({"interest_views", "consideration_paths"})
_MISSING: Final = object()  # no such key (``None`` is a value)


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
    make anyone hot. The shop's own events (``projections.outbound.SHOP_EVENTS``)
    match no rule: a rule naming one is refused.
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
        if self.event in SHOP_EVENTS:
            # The fold skips them before matching: such a rule could never score.
            raise ValueError(
                f"event: {self.event!r} is recorded by the shop, not done by the customer "
                "(docs/segments.md, 'Activity and contacts'); it cannot earn points"
            )
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


# ── matching ────────────────────────────────────────────────────────────────


def _field(event: AnyEvent, name: str) -> Any:
    """A field some message types lack, or ``None``.

    Not ``getattr(event, name, None)``: for a missing name pydantic's
    ``__getattr__`` raises and that costs ~8 µs; field values live in ``__dict__``.
    """
    return event.__dict__.get(name)


def _under(path: str, prefix: str) -> bool:
    """``path`` is ``prefix`` or below it, on whole segments."""
    return path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/")


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
