"""One customer's fold states, and the two things both runtimes do with them.

A customer's state is its profile (``projections.profile``) and its lead score
(``projections.lead_score``). Both runtimes (the embedded one in
``cdp.runtime.embedded`` and the faust agents in ``streams/``) do exactly two things to
it: fold a batch of the customer's events in, and absorb the state of a
customer merged into it. Keeping those here, once, is what makes the two
runtimes give the same answers. ``customer_row`` is the flat snapshot of one
customer both publish: a row of the DuckDB ``customers`` table
(``cdp.adapters.duckdb.store``) and the value of the ``cdp.profiles`` topic.
Pure: no I/O, no clock. The summary columns come from
``cdp.runtime.columns``, plain Python without a database client, so
the faust worker imports this without DuckDB or pyarrow (checked by
tests/unit/test_layering.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from cdp.runtime.columns import lead_score_summary, profile_summary
from projections import lead_score, profile
from schemas import AnyEvent


@dataclass(frozen=True, slots=True)
class CustomerState:
    """The profile and lead-score states of one customer."""

    profile: profile.State
    lead: lead_score.State


def fold(
    state: CustomerState | None, events: Iterable[AnyEvent], rules: lead_score.Rules
) -> CustomerState:
    """``state`` (``None``: a customer with no events yet) with ``events`` folded in."""
    batch = events if isinstance(events, list | tuple) else list(events)
    if state is None:
        return CustomerState(
            profile.fold(profile.initial(), batch),
            lead_score.fold(lead_score.initial(), batch, rules),
        )
    return CustomerState(
        profile.fold(state.profile, batch), lead_score.fold(state.lead, batch, rules)
    )


def absorb(
    kept: CustomerState | None, lost: CustomerState | None, rules: lead_score.Rules
) -> CustomerState | None:
    """The survivor's state after a merge: ``kept`` combined with the loser's ``lost``.

    Either side may be ``None`` (a customer without folded events yet); the
    result is ``None`` only when both are.
    """
    if lost is None:
        return kept
    if kept is None:
        return lost
    return CustomerState(
        profile.combine(kept.profile, lost.profile),
        lead_score.combine(kept.lead, lost.lead, rules),
    )


def to_json(state: CustomerState) -> dict[str, Any]:
    """JSON-safe form (``from_json`` is its inverse)."""
    return {"profile": profile.to_json(state.profile), "lead": lead_score.to_json(state.lead)}


def from_json(data: Mapping[str, Any]) -> CustomerState:
    """The state ``to_json`` wrote; ``ValueError`` for another snapshot version."""
    return CustomerState(profile.from_json(data["profile"]), lead_score.from_json(data["lead"]))


def customer_row(
    customer_id: str, p: profile.State, lead: lead_score.State, rules: lead_score.Rules
) -> dict[str, Any]:
    """The snapshot row of one customer: ``customer_id``, the summary columns of both
    projections and their exact fold states as JSON text (the customers table's columns)."""
    return {
        "customer_id": customer_id,
        **profile_summary(p),
        **lead_score_summary(lead, rules),
        "profile_state": orjson.dumps(profile.to_json(p), option=orjson.OPT_SORT_KEYS).decode(),
        "lead_state": orjson.dumps(lead_score.to_json(lead), option=orjson.OPT_SORT_KEYS).decode(),
    }
