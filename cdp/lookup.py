"""Profile lookup: "who is this?" by any identifier → the unified profile.

Reads the checkpointed projections in DuckDB, so it works on a read-only
connection. The answer carries the profile summary, the lead score (at last
activity and decayed to the log clock) with the contributions that explain
it, every identifier of the customer, the merges that formed them and the most
recent events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import duckdb
import orjson

from cdp.errors import NotFoundError
from projections import lead_score
from schemas.identifiers import key, parse_key

CUSTOMER_PREFIX = "cus_"


@dataclass(frozen=True, slots=True)
class ProfileView:
    """The unified answer for one customer."""

    customer_id: str
    matched: str
    identifiers: list[str]
    profile: dict[str, Any]
    lead: dict[str, Any]
    merges: list[dict[str, Any]]
    recent_events: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "customer_id": self.customer_id,
            "matched": self.matched,
            "identifiers": self.identifiers,
            "profile": self.profile,
            "lead": self.lead,
            "merges": self.merges,
            "recent_events": self.recent_events,
        }


def resolve(con: duckdb.DuckDBPyConnection, text: str) -> tuple[str, str]:
    """``(customer_id, matched identifier key)`` for ``kind:value`` or a ``cus_`` id."""
    if text.startswith(CUSTOMER_PREFIX):
        row = con.execute(
            "SELECT customer_id FROM customers WHERE customer_id = ?", [text]
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no customer {text!r}")
        return str(row[0]), text
    try:
        kind, value = parse_key(text)
    except ValueError as error:
        raise NotFoundError(str(error)) from None
    identifier = key(kind, value)
    row = con.execute(
        "SELECT customer_id FROM identity_graph WHERE identifier = ?", [identifier]
    ).fetchone()
    if row is None:
        raise NotFoundError(f"no customer has identifier {identifier!r}")
    return str(row[0]), identifier


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def lookup(
    con: duckdb.DuckDBPyConnection,
    text: str,
    rules: lead_score.Rules = lead_score.DEFAULT_RULES,
    recent: int = 10,
) -> ProfileView:
    """The unified profile of whoever ``text`` identifies; ``NotFoundError`` if nobody."""
    customer_id, matched = resolve(con, text)
    profile_rows = _rows(con.execute("SELECT * FROM profiles WHERE customer_id = ?", [customer_id]))
    if not profile_rows:
        raise NotFoundError(f"customer {customer_id!r} has no profile yet")
    summary = profile_rows[0]
    state_row = con.execute(
        "SELECT lead_state FROM customers WHERE customer_id = ?", [customer_id]
    ).fetchone()
    as_of_row = con.execute("SELECT as_of FROM log_clock").fetchone()
    as_of: datetime | None = as_of_row[0] if as_of_row else None
    lead_state = lead_score.from_json(orjson.loads(state_row[0])) if state_row else None
    lead = {
        "score_at_last_activity": summary.get("lead_score"),
        "score_now": summary.get("lead_score_now"),
        "as_of": as_of,
        "lifecycle_stage": summary.get("lifecycle_stage"),
        "funnel_stage": summary.get("funnel_stage"),
        "hot_now": summary.get("hot_now"),
        "explanation": lead_score.explain(lead_state, rules, at=as_of) if lead_state else [],
    }
    identifiers = [
        str(r[0])
        for r in con.execute(
            "SELECT identifier FROM identities WHERE customer_id = ? ORDER BY identifier",
            [customer_id],
        ).fetchall()
    ]
    merges = _rows(
        con.execute(
            """WITH RECURSIVE chain(customer_id) AS (
                   SELECT ?::VARCHAR
                   UNION SELECT m.from_customer FROM merges m
                   JOIN chain c ON m.into_customer = c.customer_id)
               SELECT m.from_customer, m.into_customer, m.via, m.reason, m.message_id,
                      m."offset", m."at"
               FROM merges m WHERE m.into_customer IN (SELECT customer_id FROM chain)
               ORDER BY m."offset\"""",
            [customer_id],
        )
    )
    events = _rows(
        con.execute(
            """SELECT "offset", timestamp, type, event, message_id, source FROM events
               WHERE customer_id = ? ORDER BY timestamp DESC, "offset" DESC LIMIT ?""",
            [customer_id, recent],
        )
    )
    summary.pop("customer_id", None)
    return ProfileView(customer_id, matched, identifiers, summary, lead, merges, events)
