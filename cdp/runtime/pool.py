"""``WorkerPool``: CPU-bound work on every core, in worker processes, answers in order.

Used where one process would otherwise leave the other core idle: the door's
validation of a large import (``cdp.services.validation_pool``) and the
per-customer folds of a large catch-up (``cdp.runtime.grouped``). Work goes
out in chunks to a module-level function and comes back in the order the
chunks went in, at most ``2 × workers`` in flight, so memory stays bounded
and the caller's output is that of the serial path. Workers are started with
``spawn``: forking a process that holds a DuckDB connection or threads is not
safe. Chunks and answers are pickled: send bytes and plain values, never
models (unpickling one costs as much as validating it).
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Self, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    """Worker processes for this machine: one per core the process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


class WorkerPool:
    """Spawned worker processes; use as a context manager (or call ``close``)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self._executor = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn")
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (waiting for the tasks already given to them)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def map(
        self, fn: Callable[..., R], chunks: Iterable[tuple[T, Any]], *args: Any
    ) -> Iterator[tuple[T, R]]:
        """``(tag, chunk)`` pairs → ``(tag, fn(chunk, *args))``, in the order the chunks
        came; ``tag`` stays in this process. A chunk is read from ``chunks`` only
        when there is room, so a huge input streams through."""
        in_flight: deque[tuple[T, Future[R]]] = deque()
        limit = 2 * self.workers
        for tag, chunk in chunks:
            in_flight.append((tag, self._executor.submit(fn, chunk, *args)))
            if len(in_flight) >= limit:
                done, future = in_flight.popleft()
                yield done, future.result()
        while in_flight:
            done, future = in_flight.popleft()
            yield done, future.result()
