"""The profile answer: the one place its fields are decided.

Every ``ProfileLookups`` implementation (``cdp.ports.lookups``) builds the
answer of ``GET /v1/profiles/...`` here, from what it holds of one customer:
the stored profile columns, the facts the "now" columns are computed from
(``cdp.read.now``), the lead-score state, the log clock, the identifiers,
merges, recent events, segments and freshness. Adding a field to the profile
answer touches this module only.

Parts an implementation holds pre-serialised (the read model keeps each
customer's stored columns and merges as JSON, for speed) are passed as
``bytes`` and embedded as they are (``orjson.Fragment``); ``encode`` writes the
whole answer.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any, TypedDict

import orjson

from cdp.jsonable import json_default
from cdp.read.now import NOW_COLUMNS, NOW_INPUTS, now_columns
from projections import lead_score

DEFAULT_REASONS = 5
"""Lead-score contributions an answer explains by default (the heaviest)."""
LEAD_COLUMNS = ("lead_score", "lifecycle_stage", "funnel_stage")
"""The stored columns the ``lead`` block repeats."""
FACTS = NOW_INPUTS + tuple(c for c in LEAD_COLUMNS if c not in NOW_INPUTS)
"""Every stored column the builder reads by name (beside the stored object)."""


class Freshness(TypedDict):
    """How fresh an answer is (docs/api.md, "Freshness")."""

    #: The log offset the profile is folded up to; None when not known.
    checkpoint_offset: int | None
    #: The last event in the log the answer saw (-1: none).
    log_offset: int


def dumps(value: Any) -> bytes:
    """JSON as the API writes it (decimals as strings, times ISO 8601)."""
    return orjson.dumps(value, default=json_default)


def lead_block(
    facts: Mapping[str, Any],
    now: Mapping[str, Any],
    state: lead_score.State | None,
    rules: lead_score.Rules,
    as_of: datetime | None,
    reasons: int | None = DEFAULT_REASONS,
) -> dict[str, Any]:
    """The ``lead`` object: stored score and stages, the score decayed to ``as_of``
    and the ``reasons`` heaviest contributions (None: all)."""
    top = sys.maxsize if reasons is None else reasons
    return {
        "score_at_last_activity": facts.get("lead_score"),
        "score_now": now.get("lead_score_now"),
        "as_of": as_of,
        "lifecycle_stage": facts.get("lifecycle_stage"),
        "funnel_stage": facts.get("funnel_stage"),
        "hot_now": now.get("hot_now"),
        "explanation": lead_score.explain(state, rules, at=as_of, top=top) if state else [],
    }


def _profile(stored: Mapping[str, Any] | bytes, now: Mapping[str, Any]) -> Any:
    """The stored columns followed by the "now" columns."""
    if not isinstance(stored, bytes):
        return {**stored, **now}
    if stored == b"{}":
        return orjson.Fragment(dumps(now))
    if not now:
        return orjson.Fragment(stored)
    # Two JSON objects joined into one: the stored one's members, then the now ones.
    return orjson.Fragment(stored[:-1] + b"," + dumps(now)[1:])


def profile_answer(
    *,
    matched: str,
    customer_id: str,
    identifiers: Sequence[str],
    stored: Mapping[str, Any] | bytes,
    facts: Mapping[str, Any],
    lead_state: lead_score.State | None,
    rules: lead_score.Rules,
    as_of: datetime | None,
    zone: tzinfo | None,
    merges: Sequence[Mapping[str, Any]] | bytes,
    recent_events: Sequence[Mapping[str, Any]],
    segments: Sequence[str],
    freshness: Freshness | None,
    now: Mapping[str, Any] | None = None,
    reasons: int | None = DEFAULT_REASONS,
) -> dict[str, Any]:
    """The answer for one customer (``bytes`` parts are pre-serialised JSON).

    ``stored``: the profile's stored columns (without ``customer_id`` and the
    fold states); ``facts``: at least the ``FACTS`` columns, typed (dates and
    aware datetimes). The "now" columns are computed from ``facts``, ``as_of``
    (the log clock) and ``zone`` (the calendar's time zone) unless ``now``
    gives them (a caller that had SQL compute them); with no clock they are
    null. ``freshness`` None leaves the key out (``cdp profile``).
    """
    if now is None:
        now = (
            now_columns(facts, as_of, rules, zone)
            if as_of is not None and zone is not None
            else dict.fromkeys(NOW_COLUMNS)
        )
    answer = {
        "matched": matched,
        "customer_id": customer_id,
        "identifiers": identifiers,
        "profile": _profile(stored, now),
        "lead": lead_block(facts, now, lead_state, rules, as_of, reasons),
        "segments": segments,
        "merges": orjson.Fragment(merges) if isinstance(merges, bytes) else merges,
        "recent_events": recent_events,
        "freshness": freshness,
    }
    if freshness is None:
        del answer["freshness"]
    return answer


def encode(answer: Mapping[str, Any]) -> bytes:
    """The answer as the API sends it."""
    return dumps(answer)
