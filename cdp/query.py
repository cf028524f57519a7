"""Read-only SQL for analysts, and the export of a segment's audience rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import duckdb

from cdp import segments
from cdp.errors import QueryError, SegmentError
from cdp.segment_lang import SegmentCatalog
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
    if consent is not None and consent not in CONSENT_COLUMNS:
        raise SegmentError(
            f"unknown consent purpose {consent!r}; use one of {', '.join(CONSENT_COLUMNS)} or none"
        )
    result = (
        catalog.run(con, segment_name, overrides)
        if catalog is not None
        else segments.run(con, segment_name, overrides)
    )
    condition = f"AND {CONSENT_COLUMNS[consent]} IS TRUE" if consent else ""
    columns = ", ".join(AUDIENCE_COLUMNS)
    rows = con.execute(
        f"SELECT {columns} FROM profiles WHERE customer_id IN (SELECT unnest(?)) {condition} "
        "ORDER BY customer_id",
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
        segment_name, consent, result.count, result.count - len(rows), AUDIENCE_COLUMNS, normalised
    )
