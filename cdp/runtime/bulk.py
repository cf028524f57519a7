"""Bulk work (file ingest, replay, catch-up) without the cyclic garbage collector.

A bulk fold keeps hundreds of thousands of live objects (decoded events,
fold states). CPython's cyclic GC walks all of them at every full
collection, which cost about 30% of ingest time here, and none of them form
reference cycles (frozen models, tuples, dicts), so reference counting frees
them anyway. ``paused_gc`` turns the collector off for the block and runs
one collection at the end; nesting is safe.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


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
