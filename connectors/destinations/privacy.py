"""Privacy on the way out: suppressed people never leave, every provision is recorded.

- ``without_suppressed``: an audience minus the customers any of whose
  identifiers is on the suppression list
  (``cdp.services.privacy.suppressions``). Both the file export and the push
  sync take their audience through it, so a suppressed person is left out of
  every new file and removed from every pushed audience by the next sync
  (``connectors.destinations.push.withdraw`` removes them at once). They are
  counted under the reason ``suppressed``, so summaries still add up.
- ``record_plan`` / ``record_export``: the APPI provision record
  (``cdp.services.privacy.provisions``) of a completed push plan or a
  written file.
- ``items_of``: the data items in platform rows, in the platform's words.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import duckdb

from cdp.services.privacy import provisions
from cdp.services.privacy.suppressions import SuppressionList
from cdp.services.query import Audience

SUPPRESSED: Final = "suppressed"
"""Reason key of members left out because they are on the suppression list."""

#: Audience columns that are identifiers, with their identifier kind
#: (``schemas.identifiers``): checked as well as the identity graph.
_KEY_COLUMNS: Final = {"email": "email", "phone": "phone", "line_user_id": "line", "x_user_id": "x"}


def suppressed_customers(
    con: duckdb.DuckDBPyConnection,
    data_dir: Path,
    rows: Mapping[str, Iterable[str]],
) -> set[str]:
    """Customers (of ``rows``: customer id → identifier keys already known) who are
    suppressed, by those keys or any identifier the identity graph gives them."""
    suppressions = SuppressionList.load(data_dir)
    if not len(suppressions) or not rows:  # the usual case: no query, no HMAC
        return set()
    keys: dict[str, set[str]] = defaultdict(set)
    for customer_id, known in rows.items():
        keys[customer_id].update(known)
    found = con.execute(
        "SELECT customer_id, identifier FROM identities WHERE customer_id IN (SELECT unnest(?))",
        [list(rows)],
    ).fetchall()
    for customer_id, identifier in found:
        keys[str(customer_id)].add(str(identifier))
    return {c for c, known in keys.items() if suppressions.suppressed(known)}


def without_suppressed(
    con: duckdb.DuckDBPyConnection, data_dir: Path, found: Audience
) -> tuple[Audience, int]:
    """``found`` without its suppressed members, and how many were left out."""
    index = {name: i for i, name in enumerate(found.columns)}
    known = {
        str(row[index["customer_id"]]): [
            f"{kind}:{row[index[column]]}"
            for column, kind in _KEY_COLUMNS.items()
            if column in index and row[index[column]]
        ]
        for row in found.rows
    }
    gone = suppressed_customers(con, data_dir, known)
    if not gone:
        return found, 0
    rows = [row for row in found.rows if str(row[index["customer_id"]]) not in gone]
    return replace(found, rows=rows), len(found.rows) - len(rows)


def items_of(rows: Iterable[Any]) -> list[str]:
    """The data items present in JSON rows: keys with a value, nested keys dotted
    (``addressInfo.hashedFirstName``); a list row contributes its elements' keys."""
    items: set[str] = set()

    def walk(value: Any, prefix: str) -> None:
        if isinstance(value, Mapping):
            for key, inner in value.items():
                walk(inner, f"{prefix}{key}.")
        elif isinstance(value, list):
            for inner in value:
                walk(inner, prefix)
        elif value is not None and value != "" and prefix:
            items.add(prefix[:-1])

    for row in rows:
        walk(row, "")
    return sorted(items)


def record_plan(
    data_dir: Path,
    *,
    kind: str,
    platform: str,
    destination: str,
    account: str,
    consent: str,
    segment: str,
    chunks: Iterable[tuple[str, list[str]]],
    items: Iterable[str],
    reference: str,
) -> provisions.Provision:
    """Record a completed push plan: whose rows went out in add chunks (provided), and
    whose in remove chunks (their match keys were sent to take them out)."""
    added: dict[str, None] = {}
    removed: dict[str, None] = {}
    for action, keys in chunks:
        (added if action == "add" else removed).update(dict.fromkeys(keys))
    return provisions.record(
        data_dir,
        kind=kind,
        platform=platform,
        recipient=destination,
        account=account,
        segment=segment,
        items=items,
        consent=consent,
        customer_ids=added,
        removed_ids=removed,
        reference=reference,
    )


def record_export(
    data_dir: Path,
    *,
    destination: str,
    recipient: str | None,
    path: Path,
    found: Audience,
    people: Iterable[str],
    items: Iterable[str],
) -> provisions.Provision:
    """Record a written export file: the format, who receives it, the file, who is in it."""
    return provisions.record(
        data_dir,
        kind="export",
        platform=destination,
        recipient=recipient or destination,
        account=str(path),
        segment=found.segment,
        items=items,
        consent=found.consent,
        customer_ids=people,
    )
