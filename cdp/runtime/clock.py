"""The log clock: the one definition of "now" that derived values use.

Values that depend on "now" (ages, "days since", lead-score decay, lapsed and
recent segments, analytics) are computed against the latest event time in
the log rather than the wall clock, so the same log always gives the same
answers. The latest event time *that counts*: an event dated more than
``schemas.time_bounds.MAX_AHEAD`` (24 h) after its own ``receivedAt`` does
not move it. The door refuses such events now; the rule here keeps one
stored before that rule existed (a 2099 event in an older data directory)
from moving "now" for every customer.

Every reader of the clock uses the SQL below: the ``log_clock`` view
(``cdp.adapters.duckdb.views``, also over the Parquet archive of the Kafka runtime), the
lookup service's incremental clock (``cdp.read.lookup.LogClock``), the profile
reader's tail and the read model (``cdp.read.model``). ``moves_clock`` in
``schemas.time_bounds`` is the same rule in Python; a test binds the two.
"""

from __future__ import annotations

from typing import Final

from schemas.time_bounds import MAX_AHEAD

_MICROSECONDS: Final = int(MAX_AHEAD.total_seconds() * 1_000_000)

COUNTS_SQL: Final = f"(timestamp <= received_at + INTERVAL {_MICROSECONDS} MICROSECONDS)"
"""Whether an ``event_log`` row moves the clock (columns ``timestamp``, ``received_at``)."""

AS_OF_SQL: Final = f"max(timestamp) FILTER (WHERE {COUNTS_SQL})"
"""The aggregate giving the log clock over the ``event_log`` rows it runs on."""
