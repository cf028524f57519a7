"""How the platform's processes use CPython's cyclic garbage collector.

Two situations, one function each:

- **Bulk work** (file ingest, replay, catch-up) keeps hundreds of thousands of
  live objects (decoded events, fold states). The cyclic GC walks all of them
  at every full collection, which cost about 30 % of ingest time here, and
  none of them form reference cycles (frozen models, tuples, dicts), so
  reference counting frees them anyway. ``paused_gc`` turns the collector off
  for the block and runs one collection at the end; nesting is safe.
- **Long-running servers** (``cdp serve``, embedded or Kafka) hold about
  150,000 objects made at start-up (modules, pydantic schemas, the app, key
  rings) that live until exit. With CPython's default thresholds the
  collector ran a young collection every 700 allocations and walked those
  start-up objects again at every full one: 4.3 s of 14 s of ``cdp serve
  --kafka``'s CPU over 100,000 events (``gc.callbacks``, docs/benchmarks.md).
  ``settle`` is called once start-up is complete: it collects, moves what
  survives to the permanent generation (``gc.freeze``, never walked again) and
  raises the young generation's threshold, so that a request's short-lived
  objects are mostly freed by reference counting before a collection looks at
  them. Reference cycles are still found, less often.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

SERVING_THRESHOLDS = (20_000, 20, 20)
"""Young-generation allocations before a collection, then how many young
collections before the middle one, and middle ones before a full one
(CPython's defaults: 700, 10, 10)."""


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic GC inside the block (restoring its previous state)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            gc.collect(0)


def settle() -> None:
    """Once a long-running process has started: collect, freeze what survives
    (start-up objects are never walked again) and set ``SERVING_THRESHOLDS``.

    Again after a pause (``cdp.http.switch``: a fresh app replaced the old
    one): what was frozen is thawed first, so the old app's objects, cycles
    included, are collected rather than kept frozen for good."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_THRESHOLDS)
