"""Merge rules of the identity graph: what may join two identifiers into one customer.

- junk values (``"null"``, ``"0"``, test addresses, ...) never become
  identifiers (``schemas.identifiers.normalise``, applied by
  ``projections.identity.extract``), so they never link anything;
- two different user ids are never merged automatically (not even by an
  ``alias`` between two known user ids);
- a customer holds at most ``Rules.max_anonymous_ids`` anonymous ids.

``IdentityGraph`` (``projections.identity.graph``) enforces them; ``Rules``
holds the one that can be tuned.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Rules:
    """Merge rules."""

    max_anonymous_ids: int = 50
    """Cap of anonymous ids per customer: a shared device or a bot must not
    swallow everyone who ever used it."""

    def __post_init__(self) -> None:
        if self.max_anonymous_ids < 1:
            raise ValueError(f"max_anonymous_ids must be at least 1, not {self.max_anonymous_ids}")


DEFAULT_RULES: Final = Rules()
"""The rules a graph uses unless given others."""
