"""Removing one person from the data directory's DuckDB file, for real.

DuckDB keeps the bytes of deleted rows in freed pages of the file (a row
deleted and checkpointed is still there to a byte scan, VACUUM included), so
erasure is two steps:

1. ``remove(con, person)``: one transaction deletes every row that is the
   person's or names them: their events in the log and the facts derived
   from them, their customer rows (the survivor and every customer merged
   into it), identity graph rows, merges and refused links, segment
   membership, and dead letters whose body carries one of their identifiers;
2. ``rewrite(path)``: copies the whole database into a new file (DuckDB's
   ``COPY FROM DATABASE``), fsyncs it and renames it over the old one, so no
   freed page survives. The WAL is folded in first and is gone after.

Both are idempotent: re-running after a crash between them deletes nothing
more and rewrites the file (the request stays "running" until the rewrite is
done: ``cdp.services.privacy.erase``).
"""

from __future__ import annotations

import base64
import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from cdp.atomic import fsync_directory

USER_KEY = "user_id:"
ANON_KEY = "anonymous_id:"


@dataclass(frozen=True, slots=True)
class Person:
    """Everything that identifies one person in the projections."""

    customer_ids: frozenset[str]
    """The customer and every customer merged into it."""
    identifiers: frozenset[str]
    """Identifier keys (``email:a@b.jp``, ``user_id:u1``, ``anonymous_id:a1``...)."""

    @property
    def values(self) -> frozenset[str]:
        """The identifier values alone (what an event or a dead letter carries)."""
        return frozenset(k.partition(":")[2] for k in self.identifiers)


@dataclass(slots=True)
class Removed:
    """Rows removed per table."""

    rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def find(con: duckdb.DuckDBPyConnection, customer_id: str) -> Person:
    """The person whose surviving customer is ``customer_id`` (follow merges first)."""
    ids = {customer_id}
    frontier = {customer_id}
    while frontier:  # customers merged into one of ours, transitively
        rows = con.execute(
            "SELECT from_customer FROM merges WHERE into_customer IN (SELECT unnest(?))",
            [sorted(frontier)],
        ).fetchall()
        frontier = {r[0] for r in rows} - ids
        ids |= frontier
    rows = con.execute(
        # identifier '' marks a customer merged into another (merged_into): not an identifier
        "SELECT identifier FROM identity_graph "
        "WHERE customer_id IN (SELECT unnest(?)) AND identifier <> ''",
        [sorted(ids)],
    ).fetchall()
    return Person(frozenset(ids), frozenset(r[0] for r in rows))


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {
        r[0]
        for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()
    }


def _event_offsets(con: duckdb.DuckDBPyConnection, person: Person) -> list[int]:
    users = sorted(k[len(USER_KEY) :] for k in person.identifiers if k.startswith(USER_KEY))
    anons = sorted(k[len(ANON_KEY) :] for k in person.identifiers if k.startswith(ANON_KEY))
    others = sorted(
        k.partition(":")[2]
        for k in person.identifiers
        if not k.startswith((USER_KEY, ANON_KEY)) and len(k.partition(":")[2]) >= 4
    )
    # Events of the person by their envelope ids, and any other event that names one
    # of their identifiers in its payload (an identify of someone else carrying their
    # email, refused as a merge): it is erased with them (docs/privacy.md).
    contains = " OR ".join("contains(payload, ?)" for _ in others) or "false"
    rows = con.execute(
        'SELECT "offset" FROM event_log WHERE user_id IN (SELECT unnest(?)) '
        f"OR anonymous_id IN (SELECT unnest(?)) OR {contains}",
        [users, anons, *others],
    ).fetchall()
    return [r[0] for r in rows]


def _dead_letters(con: duckdb.DuckDBPyConnection, person: Person) -> list[object]:
    needles = [v.encode() for v in person.values if len(v) >= 4]
    hits = []
    for row_id, body in con.execute("SELECT id, body FROM dead_letters").fetchall():
        raw = body if isinstance(body, bytes) else str(body).encode()
        decoded = raw
        with contextlib.suppress(ValueError):
            decoded = base64.b64decode(raw, validate=True)
        if any(n in raw or n in decoded for n in needles):
            hits.append(row_id)
    return hits


def remove(con: duckdb.DuckDBPyConnection, person: Person) -> Removed:
    """Delete every row of ``person`` in one transaction (see the module docstring)."""
    tables = _tables(con)
    removed = Removed()
    ids = sorted(person.customer_ids)
    keys = sorted(person.identifiers)
    con.execute("BEGIN TRANSACTION")
    try:
        offsets = _event_offsets(con, person)

        def delete(table: str, where: str, params: list[object]) -> None:
            if table in tables:
                found = con.execute(f"DELETE FROM {table} WHERE {where}", params).fetchone()
                removed.rows[table] = int(found[0]) if found else 0

        in_offsets = '"offset" IN (SELECT unnest(?))'
        delete("event_log", in_offsets, [offsets])
        delete("event_facts", in_offsets, [offsets])
        delete("customers", "customer_id IN (SELECT unnest(?))", [ids])
        delete(
            "identity_graph",
            "customer_id IN (SELECT unnest(?)) OR identifier IN (SELECT unnest(?))",
            [ids, keys],
        )
        if "identity_graph" in tables:
            # Creation numbers stay 0..n-1 with the person's customers gone (the graph
            # restores only a dense numbering); their order, which decides merge
            # survivors, is kept.
            con.execute(
                "UPDATE identity_graph SET seq = r.n FROM (SELECT customer_id, "
                "dense_rank() OVER (ORDER BY seq) - 1 AS n FROM "
                "(SELECT DISTINCT customer_id, seq FROM identity_graph)) r "
                "WHERE identity_graph.customer_id = r.customer_id"
            )
        delete(
            "merges",
            "from_customer IN (SELECT unnest(?)) OR into_customer IN (SELECT unnest(?))",
            [ids, ids],
        )
        delete(
            "identity_rejections",
            "customer_id IN (SELECT unnest(?)) OR identifier IN (SELECT unnest(?))",
            [ids, keys],
        )
        delete("segment_membership", "customer_id IN (SELECT unnest(?))", [ids])
        if "dead_letters" in tables:
            delete("dead_letters", "id IN (SELECT unnest(?))", [_dead_letters(con, person)])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return removed


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def rewrite(path: Path) -> int:
    """Copy the database at ``path`` into a new file and put it in its place (no
    freed page of the old file survives); returns the new file's size in bytes.

    Nothing else may have the file open."""
    fresh = path.with_name(path.name + ".rewrite")
    fresh.unlink(missing_ok=True)
    fresh.with_name(fresh.name + ".wal").unlink(missing_ok=True)
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")  # fold the WAL into the file before copying it
        name = con.execute("SELECT current_database()").fetchone()
        source = _identifier(str(name[0])) if name else "main"
        con.execute(f"ATTACH {_literal(str(fresh))} AS fresh")
        con.execute(f"COPY FROM DATABASE {source} TO fresh")
        con.execute("DETACH fresh")
    finally:
        con.close()
    with fresh.open("rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(fresh, path)
    path.with_name(path.name + ".wal").unlink(missing_ok=True)
    fsync_directory(path.parent)
    return path.stat().st_size
