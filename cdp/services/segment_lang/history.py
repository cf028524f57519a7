"""Segment membership history: who entered and who left, at each recorded run.

Two tables in the data directory's DuckDB file (created on first record):

- ``segment_runs``: one row per recorded run: ``run_id``, ``segment``,
  ``run_at`` (wall-clock time of the run), ``log_as_of`` (the log clock:
  the latest event time the run saw), ``params`` (JSON), ``members``,
  ``entered_count``, ``left_count``;
- ``segment_membership``: one row per spell of a customer in a segment:
  ``entered_run``/``entered_at``/``entered_as_of`` and, once they left,
  ``left_run``/``left_at``/``left_as_of`` (NULL while still in).

Recording needs a writable connection (``Engine.open``): DuckDB allows one
writer per file, so it cannot run while ``cdp serve`` holds the data
directory. The diff and the inserts happen in one transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import orjson

from cdp.services.segments import SegmentResult

TABLES = (
    """CREATE TABLE IF NOT EXISTS segment_runs (
        run_id BIGINT PRIMARY KEY,
        segment VARCHAR NOT NULL,
        run_at TIMESTAMPTZ NOT NULL,
        log_as_of TIMESTAMPTZ,
        params VARCHAR NOT NULL,
        members BIGINT NOT NULL,
        entered_count BIGINT NOT NULL,
        left_count BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS segment_membership (
        segment VARCHAR NOT NULL,
        customer_id VARCHAR NOT NULL,
        entered_run BIGINT NOT NULL,
        entered_at TIMESTAMPTZ NOT NULL,
        entered_as_of TIMESTAMPTZ,
        left_run BIGINT,
        left_at TIMESTAMPTZ,
        left_as_of TIMESTAMPTZ)""",
)


@dataclass(frozen=True, slots=True)
class Run:
    """One recorded run of a segment."""

    run_id: int
    segment: str
    run_at: datetime
    log_as_of: datetime | None
    params: dict[str, object]
    members: int
    entered: int
    left: int


@dataclass(frozen=True, slots=True)
class Spell:
    """One continuous stay of a customer in a segment (``left_*`` None: still in)."""

    segment: str
    customer_id: str
    entered_run: int
    entered_at: datetime
    entered_as_of: datetime | None
    left_run: int | None
    left_at: datetime | None
    left_as_of: datetime | None


def create(con: duckdb.DuckDBPyConnection) -> None:
    """Create the history tables if missing (needs a writable connection)."""
    for statement in TABLES:
        con.execute(statement)


def _exists(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'segment_membership'"
    ).fetchone()
    return bool(row and row[0])


def record(
    con: duckdb.DuckDBPyConnection, result: SegmentResult, run_at: datetime | None = None
) -> Run:
    """Store a run of ``result``: close the spells of who left, open those who entered."""
    create(con)
    moment = run_at or datetime.now(UTC)  # the edge: a run happens at a wall-clock time
    clock = con.execute("SELECT as_of FROM log_clock").fetchone()
    as_of = clock[0] if clock else None
    members = set(result.members)
    con.execute("BEGIN TRANSACTION")
    try:
        row = con.execute("SELECT coalesce(max(run_id), 0) + 1 FROM segment_runs").fetchone()
        run_id = int(row[0]) if row else 1
        current = {
            r[0]
            for r in con.execute(
                "SELECT customer_id FROM segment_membership WHERE segment = ? AND left_run IS NULL",
                [result.name],
            ).fetchall()
        }
        entered = sorted(members - current)
        left = sorted(current - members)
        if entered:
            con.execute(
                "INSERT INTO segment_membership "
                "SELECT ?, unnest(?::VARCHAR[]), ?, ?, ?, NULL, NULL, NULL",
                [result.name, entered, run_id, moment, as_of],
            )
        if left:
            con.execute(
                "UPDATE segment_membership SET left_run = ?, left_at = ?, left_as_of = ? "
                "WHERE segment = ? AND left_run IS NULL "
                "AND customer_id IN (SELECT unnest(?::VARCHAR[]))",
                [run_id, moment, as_of, result.name, left],
            )
        con.execute(
            "INSERT INTO segment_runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run_id,
                result.name,
                moment,
                as_of,
                orjson.dumps(result.params, option=orjson.OPT_SORT_KEYS).decode(),
                len(members),
                len(entered),
                len(left),
            ],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return Run(
        run_id,
        result.name,
        moment,
        as_of,
        dict(result.params),
        len(members),
        len(entered),
        len(left),
    )


def runs(con: duckdb.DuckDBPyConnection, segment: str) -> list[Run]:
    """Recorded runs of a segment, oldest first (empty if never recorded)."""
    if not _exists(con):
        return []
    rows = con.execute(
        "SELECT run_id, segment, run_at, log_as_of, params, members, entered_count, left_count "
        "FROM segment_runs WHERE segment = ? ORDER BY run_id",
        [segment],
    ).fetchall()
    return [Run(r[0], r[1], r[2], r[3], orjson.loads(r[4]), r[5], r[6], r[7]) for r in rows]


def spells(
    con: duckdb.DuckDBPyConnection, segment: str | None = None, customer_id: str | None = None
) -> list[Spell]:
    """Spells filtered by segment and/or customer, by entry run then customer."""
    if not _exists(con):
        return []
    rows = con.execute(
        "SELECT segment, customer_id, entered_run, entered_at, entered_as_of, "
        "left_run, left_at, left_as_of FROM segment_membership "
        "WHERE ($segment IS NULL OR segment = $segment) "
        "AND ($customer IS NULL OR customer_id = $customer) "
        "ORDER BY segment, entered_run, customer_id",
        {"segment": segment, "customer": customer_id},
    ).fetchall()
    return [Spell(*r) for r in rows]


def current_segments(
    con: duckdb.DuckDBPyConnection, customer_id: str, known: Collection[str] | None = None
) -> list[str]:
    """Segments the customer was in at the last recorded run of each (sorted).

    ``known`` (e.g. ``SegmentCatalog.names()``) drops segments deleted since.
    """
    if not _exists(con):
        return []
    rows = con.execute(
        "SELECT DISTINCT segment FROM segment_membership "
        "WHERE customer_id = ? AND left_run IS NULL ORDER BY segment",
        [customer_id],
    ).fetchall()
    names = [str(r[0]) for r in rows]
    return [n for n in names if known is None or n in known]
