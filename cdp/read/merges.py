"""Merge chains, followed one way by every ``ProfileLookups`` implementation.

A customer merged into another keeps a ``merged_into`` link (the identity
graph's row with an empty identifier, the ``@customer`` assignment in Kafka
mode). ``survivor`` follows those links to the live customer, at most
``MAX_MERGE_CHAIN`` steps: identity never makes a longer chain, so a longer
(or cyclic) one is corrupt data, answered as "not found" rather than looping.
``merge_chain`` lists every merge that formed a customer, transitively, in
log order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

MAX_MERGE_CHAIN = 10_000
"""Most ``merged_into`` links followed from one customer id."""


def survivor(
    customer: str, is_live: Callable[[str], bool], merged_into: Callable[[str], str | None]
) -> str | None:
    """The live customer ``customer`` is now, or None (unknown, or a broken chain).

    ``is_live(c)``: c has a profile; ``merged_into(c)``: the customer c was
    merged into, if any.
    """
    current = customer
    for _ in range(MAX_MERGE_CHAIN):
        if is_live(current):
            return current
        following = merged_into(current)
        if not following or following == current:
            return None
        current = following
    return None


def merge_chain(
    customer: str, merges_into: Callable[[str], Iterable[Mapping[str, Any]]]
) -> list[Mapping[str, Any]]:
    """Every merge that formed ``customer``, transitively, in log order.

    ``merges_into(c)``: the merges whose ``into_customer`` is c. Sorted by
    ``(offset, from_customer, into_customer)``.
    """
    seen, frontier = {customer}, [customer]
    found: list[Mapping[str, Any]] = []
    while frontier:
        rows = list(merges_into(frontier.pop()))
        found.extend(rows)
        for row in rows:
            loser = row["from_customer"]
            if loser not in seen:
                seen.add(loser)
                frontier.append(loser)
    found.sort(key=lambda m: (m["offset"] or 0, m["from_customer"] or "", m["into_customer"] or ""))
    return found
