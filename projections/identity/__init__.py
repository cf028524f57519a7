"""The identity graph: which customer each identifier belongs to.

A union-find over identifier keys (``kind:value``, see ``schemas.identifiers``)
folded over the log in order. Each event's identifiers are linked into one
customer unless a merge rule refuses the link:

- junk values (``"null"``, ``"0"``, test addresses, ...) never become
  identifiers, so they never link anything;
- two different user ids are never merged automatically (not even by an
  ``alias`` between two known user ids);
- a customer holds at most ``Rules.max_anonymous_ids`` anonymous ids.

Every merge and every refusal names the event that caused it (``Merge``,
``Rejection``), so any customer can be explained from the log. Customer ids
are derived from the first identifier they were created from, and the survivor
of a merge is the customer created earlier, so replaying the log gives the same
ids, merges and rejections.

Deviation from the house style (frozen ``State`` + ``apply -> State``): the
graph is global, millions of identifiers, and copying it per event is out of
the question. ``IdentityGraph`` therefore owns mutable dicts, and ``apply`` is
the only thing that mutates them; it returns a ``Resolution`` describing what it
did. ``take_changes`` hands the runtime what changed since the last call for
incremental persistence; ``to_rows``/``from_rows`` snapshot and restore.
Still pure: no I/O, no clock, no globals.

The package: ``rules`` (``Rules``, the merge rules), ``extract``
(``identifiers_of``), ``records`` (``Merge``, ``Rejection``, ``Resolution``,
``Changes``, ``Row``) and ``graph`` (``IdentityGraph``, ``apply``). Importers
use the names re-exported here.
"""

from projections.identity.extract import envelope_only, identifiers_of
from projections.identity.graph import IdentityGraph, apply, apply_envelope, customer_id_for
from projections.identity.records import (
    ROW_COLUMNS,
    Changes,
    Merge,
    Rejection,
    Resolution,
    Row,
)
from projections.identity.rules import Rules

__all__ = [
    "ROW_COLUMNS",
    "Changes",
    "IdentityGraph",
    "Merge",
    "Rejection",
    "Resolution",
    "Row",
    "Rules",
    "apply",
    "apply_envelope",
    "customer_id_for",
    "envelope_only",
    "identifiers_of",
]
