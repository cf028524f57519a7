"""``cdp.runtime.heap.settle``: what it freezes is never collected until the next
settle, which thaws it first (a server that swapped its app after a pause)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from cdp.runtime import heap


class Node:
    """An object in a reference cycle: only the cyclic collector frees it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def restored() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


@pytest.mark.usefixtures("restored")
def test_settling_again_collects_what_the_first_settle_froze() -> None:
    node = Node()
    alive = weakref.ref(node)
    heap.settle()
    assert gc.get_threshold() == heap.SERVING_THRESHOLDS
    del node
    gc.collect()
    assert alive() is not None  # frozen: the collector no longer walks it
    heap.settle()
    assert alive() is None
