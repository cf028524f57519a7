"""``DuckDBStateStore``: the ``StateStore`` port (``cdp.ports.states``) over the
``customers`` table of one projection set (``prefix``: live, ``rebuild_``, ``asof_``).

``load`` reads the exact fold states (the ``profile_state`` / ``lead_state``
JSON columns) of the customers asked for in one statement; ``save`` is
``cdp.adapters.duckdb.store.save`` (one transaction per checkpoint).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

import duckdb
import orjson

from cdp.adapters.duckdb import store
from cdp.ports.states import StatePair
from projections import identity, lead_score, profile


def decode_states(profile_json: str | bytes, lead_json: str | bytes) -> StatePair:
    """The fold states saved in one ``customers`` row."""
    return (
        profile.from_json(orjson.loads(profile_json)),
        lead_score.from_json(orjson.loads(lead_json)),
    )


class DuckDBStateStore:
    """Customer states in ``{prefix}customers`` of a DuckDB connection owned by the caller."""

    def __init__(self, con: duckdb.DuckDBPyConnection, prefix: str = "") -> None:
        self.con = con
        self.prefix = prefix

    def load(self, customers: Collection[str], /) -> dict[str, StatePair]:
        if not customers:
            return {}
        rows = self.con.execute(
            f"SELECT customer_id, profile_state, lead_state FROM {self.prefix}customers "
            "WHERE customer_id IN (SELECT unnest(?))",
            [list(customers)],
        ).fetchall()
        return {str(c): decode_states(p, lead) for c, p, lead in rows}

    def save(
        self,
        *,
        customer_rows: Iterable[dict[str, Any]],
        removed_customers: Iterable[str],
        changes: identity.Changes,
        next_offset: int,
        config_hash: str,
        staged: bool = False,
    ) -> int:
        return store.save(
            self.con,
            customer_rows=customer_rows,
            removed_customers=removed_customers,
            changes=changes,
            next_offset=next_offset,
            config_hash=config_hash,
            prefix=self.prefix,
            staged=staged,
        )

    def stage(self, customer_rows: Iterable[dict[str, Any]], /) -> int:
        return store.stage(self.con, customer_rows)
