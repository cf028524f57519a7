"""Read-only SQL for analysts, and the export of a segment's audience rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from cdp.errors import QueryError, SegmentError
from cdp.services import segments
from cdp.services.segment_lang import SegmentCatalog
from cdp.services.segments import SegmentResult
from schemas.identifiers import normalise_email, normalise_phone

#: What an audience file holds, in order (identifiers normalised for matching).
AUDIENCE_COLUMNS = (
    "customer_id",
    "email",
    "phone",
    "last_name",
    "first_name",
    "region",
    "country",
    "line_user_id",
    "lifecycle_stage",
    "lead_score_now",
    # Appended for the ad-platform formats (connectors/destinations/members.py).
    "gender",
    "birthday",
    "city",
    "postal_code",
    "first_name_kana",
    "last_name_kana",
    "x_user_id",
)
CONSENT_COLUMNS = {
    "ads": "consent_ads",
    "email": "consent_email",
    "line": "consent_line",
    "sms": "consent_sms",
}


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Columns and rows of a query."""

    columns: list[str]
    rows: list[tuple[Any, ...]]


def run_sql(con: duckdb.DuckDBPyConnection, sql: str, limit: int | None = None) -> QueryResult:
    """Run one statement on a read-only connection; ``QueryError`` on any failure."""
    try:
        cursor = con.execute(sql)
        rows = cursor.fetchmany(limit) if limit is not None else cursor.fetchall()
    except duckdb.Error as error:
        raise QueryError(str(error).strip()) from None
    columns = [d[0] for d in cursor.description or []]
    return QueryResult(columns, rows)


@dataclass(frozen=True, slots=True)
class Audience:
    """A segment's exportable members: consenting customers with their identifiers."""

    segment: str
    consent: str | None
    members: int
    excluded_without_consent: int
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


#: Audience columns that fall back to the identity graph (``identities`` view)
#: when the profile column is empty: a LINE or X user id given as an
#: ``identify`` trait, or in a form, joins the graph but is only copied to the
#: profile by a message on that channel. The profile's own value wins.
GRAPH_FALLBACK = {"line_user_id": "line", "x_user_id": "x"}


def audience(
    con: duckdb.DuckDBPyConnection,
    segment_name: str,
    overrides: Mapping[str, str] | None = None,
    consent: str | None = "ads",
    catalog: SegmentCatalog | None = None,
) -> Audience:
    """Members of a segment who consented to ``consent`` (None: everyone), sorted by id.

    With a ``catalog`` the segment may be a built-in or a saved one; without,
    only the built-ins are known.
    """
    _check_consent(consent)
    result = (
        catalog.run(con, segment_name, overrides)
        if catalog is not None
        else segments.run(con, segment_name, overrides)
    )
    return audience_of(con, result, consent)


def _check_consent(consent: str | None) -> None:
    if consent is not None and consent not in CONSENT_COLUMNS:
        raise SegmentError(
            f"unknown consent purpose {consent!r}; use one of {', '.join(CONSENT_COLUMNS)} or none"
        )


def audience_of(
    con: duckdb.DuckDBPyConnection, result: SegmentResult, consent: str | None = "ads"
) -> Audience:
    """The consenting members of an evaluated segment (a saved one or a definition file).

    ``line_user_id`` and ``x_user_id`` come from the profile, or else from the
    identity graph (``GRAPH_FALLBACK``; the smallest id when a customer has
    several, so that the choice is stable).
    """
    _check_consent(consent)
    condition = f"AND p.{CONSENT_COLUMNS[consent]} IS TRUE" if consent else ""
    columns = ", ".join(
        f"coalesce(nullif(trim(p.{c}), ''), g.{c}) AS {c}" if c in GRAPH_FALLBACK else f"p.{c}"
        for c in AUDIENCE_COLUMNS
    )
    graph = ", ".join(
        f"min(value) FILTER (WHERE kind = '{kind}') AS {column}"
        for column, kind in GRAPH_FALLBACK.items()
    )
    kinds = ", ".join(f"'{kind}'" for kind in GRAPH_FALLBACK.values())
    rows = con.execute(
        f"""WITH members AS (SELECT unnest(?) AS customer_id),
                graph AS (SELECT customer_id, {graph} FROM identities
                          WHERE kind IN ({kinds})
                            AND customer_id IN (SELECT customer_id FROM members)
                          GROUP BY customer_id)
            SELECT {columns} FROM profiles p LEFT JOIN graph g USING (customer_id)
            WHERE p.customer_id IN (SELECT customer_id FROM members) {condition}
            ORDER BY p.customer_id""",
        [result.members],
    ).fetchall()
    normalised = [
        (
            row[0],
            normalise_email(row[1]) if row[1] else None,
            normalise_phone(row[2]) if row[2] else None,
            *row[3:9],
            round(row[9], 2) if row[9] is not None else None,
            *row[10:],
        )
        for row in rows
    ]
    return Audience(
        result.name,
        consent,
        result.count,
        result.count - len(rows),
        AUDIENCE_COLUMNS,
        normalised,
    )
