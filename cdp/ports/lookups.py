"""The read port: ``ProfileLookups``, "who is this?" and the segments the read API serves.

Every implementation answers the same questions the same way; one contract
suite (``tests/integration/kafka/test_profile_lookups_contract.py``) runs against
each of them:

- ``cdp.read.sql.SqlLookups``: SQL over the checkpointed DuckDB tables;
- ``cdp.read.reader.ReadModelLookups``: the in-memory read model of
  ``cdp serve`` (falls back to SQL when it has no model);
- ``cdp.adapters.kafka.lookups.KafkaProfileLookups``: the compacted topics and
  the log topic of the distributed runtime.

The contract:

- ``profile(text, recent)`` takes ``kind:value`` (normalised as identity
  resolution does) or a ``cus_`` id and returns ``(answer, identifier key)``.
  The answer is the JSON of ``cdp.read.answer.profile_answer`` (the one place
  its fields are decided): ``matched``, ``customer_id``, ``identifiers``,
  ``profile`` (stored columns plus the "now" columns), ``lead``, ``segments``,
  ``merges``, ``recent_events`` (the ``recent`` newest, attributed as the
  ``events`` view does) and ``freshness`` (``checkpoint_offset``,
  ``log_offset``).
- Merge chains: a ``cus_`` id of a merged-away customer answers with the live
  survivor, following ``merged_into`` links at most
  ``cdp.read.merges.MAX_MERGE_CHAIN`` steps; a longer or cyclic chain is a
  customer not found. ``merges`` lists every merge that formed the survivor,
  transitively, in log order (``cdp.read.merges.merge_chain``).
- Errors: ``ValueError`` naming the problem for a malformed identifier (HTTP
  400); ``NotFoundError`` naming the identifier when nobody has it, or naming
  the customer when it has no profile yet (404); ``LogUnavailableError`` when
  the backing store cannot answer (503), e.g. segments in Kafka mode.
- ``in_memory(recent)``: True when ``profile`` with ``recent`` events needs no
  I/O right now, so the caller may answer on its event loop.
"""

from __future__ import annotations

from typing import Any, Protocol


class ProfileLookups(Protocol):
    """What the read API (``cdp.http.read``) asks; see the module docstring."""

    def warm(self) -> None:
        """Open connections / start following now rather than on the first request."""

    def close(self) -> None:
        """Release connections and background threads."""

    def profile(self, text: str, recent: int) -> tuple[bytes, str]:
        """``(the answer as JSON, the identifier key)`` for ``text``."""
        ...

    def in_memory(self, recent: int) -> bool:
        """True when ``profile(…, recent)`` would do no I/O right now."""
        ...

    def segment_list(self) -> list[dict[str, Any]]:
        """The segment catalog with each segment's last recorded run."""
        ...

    def segment_page(self, name: str, limit: int, after: str | None) -> dict[str, Any]:
        """Members of segment ``name`` now, in customer-id order, after ``after``."""
        ...
