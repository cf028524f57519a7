"""Reading a lead-score state: the decayed score, the stages, the reasons.

All of it is computed on demand from a ``State`` and the ``Rules`` it is
read with (see ``projections.lead_score``, "Time", for how points decay).
``assess`` gives everything the profiles table shows of one customer at once;
the DuckDB adapter turns it into columns (``cdp.runtime.columns``).
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any, Final, NamedTuple

from projections.lead_score.parts import EPOCH_ORDINAL, HALF_DAY_US, US_PER_DAY, epoch_us
from projections.lead_score.rules import DEFAULT_RULES, Rules
from projections.lead_score.state import (
    CONSIDERATION_PAGE,
    EMAIL_CLICKED,
    EMAIL_OPENED,
    FORM_SUBMITTED,
    PRODUCT_ADDED,
    PRODUCT_VIEWED,
    SNS_MESSAGE,
    Bucket,
    State,
)

_INTEREST: Final = frozenset({PRODUCT_VIEWED, SNS_MESSAGE, EMAIL_OPENED, EMAIL_CLICKED})
_CONSIDERATION: Final = frozenset({PRODUCT_ADDED, FORM_SUBMITTED, CONSIDERATION_PAGE})
REASONS: Final = 3
"""How many rules ``assess`` names as the reasons for a score."""


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


def won_deals(state: State) -> int:
    """Deals whose latest deal event is Deal Won."""
    return sum(1 for deal in state.deals if deal[3])


def purchases(state: State) -> int:
    """Orders not fully refunded plus won deals: a won deal counts like an order."""
    return order_count(state) + won_deals(state)


def lifecycle_stage(state: State, rules: Rules = DEFAULT_RULES, at: datetime | None = None) -> str:
    """``unknown`` | ``lead`` | ``hot_lead`` | ``customer`` | ``repeater``.

    Purchases decide first (``purchases``: orders, and deals won through the
    SFA; scores do not matter once someone buys); a lead is
    hot when its score as of ``at`` (default: last activity) reaches
    ``hot_threshold``. An anonymous visitor stays ``unknown`` however high its
    score: sales cannot contact them.
    """
    at_us = _as_of(state, at)
    score = 0.0 if at_us is None else _score(_weighted(state, rules, at_us))
    return _lifecycle(state, score, rules)


def _lifecycle(state: State, score: float, rules: Rules) -> str:
    orders = purchases(state)
    if orders >= 2:
        return "repeater"
    if orders == 1:
        return "customer"
    if not state.known:
        return "unknown"
    return "hot_lead" if score >= rules.hot_threshold else "lead"


def funnel_stage(state: State, rules: Rules = DEFAULT_RULES) -> str:
    """``awareness`` | ``interest`` | ``consideration`` | ``purchase`` | ``retention``.

    The highest stage reached: retention with two purchases (live orders and
    won deals), purchase with one, consideration after a cart add, a form or a cart/checkout/pricing
    page, interest after ``interest_views`` views, a product view, an SNS
    message or an email open/click; awareness otherwise (the customer exists,
    so they have been seen).
    """
    orders = purchases(state)
    if orders >= 2:
        return "retention"
    if orders == 1:
        return "purchase"
    if state.signals & _CONSIDERATION:
        return "consideration"
    if state.signals & _INTEREST or state.views >= rules.interest_views:
        return "interest"
    return "awareness"


class Assessment(NamedTuple):
    """What the lead score says of one customer as of their last activity."""

    score: float
    """The decayed lead score."""
    lifecycle_stage: str
    """``lifecycle_stage`` at the last activity."""
    funnel_stage: str
    """``funnel_stage``."""
    hot: bool
    """The score alone reaches ``hot_threshold`` (an anonymous hot visitor is
    still worth retargeting, so ``known`` plays no part)."""
    reasons: list[tuple[str, float]]
    """The ``REASONS`` rules that weigh most, with their decayed points,
    heaviest first (ties by rule name)."""


def assess(state: State, rules: Rules = DEFAULT_RULES) -> Assessment:
    """Score, stages and reasons of one customer as of their last activity, in one pass."""
    at_us = _as_of(state, None)
    weighted = [] if at_us is None else _weighted(state, rules, at_us)
    lead_score = _score(weighted)
    by_rule: dict[str, list[float]] = {}
    for bucket, _, decayed in weighted:
        by_rule.setdefault(bucket.rule, []).append(decayed)
    totals = sorted(((math.fsum(v), k) for k, v in by_rule.items()), key=lambda t: (-t[0], t[1]))
    return Assessment(
        lead_score,
        _lifecycle(state, lead_score, rules),
        funnel_stage(state, rules),
        lead_score >= rules.hot_threshold,
        [(name, total) for total, name in totals[:REASONS]],
    )
