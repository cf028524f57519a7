"""The lead-score state as JSON values (a snapshot), and back: ``to_json``, ``from_json``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from projections.lead_score.state import State, new_bucket

JSON_VERSION: Final = 2
"""Version of the ``to_json`` layout; ``from_json`` refuses others (2 added ``deals``)."""


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
        "deals": [list(deal) for deal in state.deals],
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
            new_bucket((rule, day, n, tuple(map(tuple, examples))))
            for rule, day, n, examples in data["buckets"]
        ),
        deals=tuple((str(d), int(us), str(m), bool(w)) for d, us, m, w in data["deals"]),
    )
