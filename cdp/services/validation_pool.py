"""The door's validation on every core: worker processes that hand back stored bytes.

An import of a large file spends a fifth to a half of its time parsing,
stamping and validating (pydantic) each line, on one core, while the other
core waits. A ``ValidationPool`` runs exactly that work
(``cdp.services.ingest.checked``) in worker processes, on chunks of items, and
hands back per item only what the appending process needs, never a pickled
model (unpickling one costs as much as validating it):

- ``bytes``: valid; the exact bytes to store (the producer's, or the stamped
  form);
- ``str``: rejected; the error message, word for word what the serial path
  says;
- ``(first_id, bytes | str)``: as above, for an item that arrived without a
  ``messageId``: ``first_id`` is the content id of its first occurrence. Only
  the appending process knows how many identical items came before it in the
  input (``ContentIds``), so it takes the answer for a first occurrence and
  checks a repeat itself.

The appending process turns the stored bytes back into the event with
``schemas.decode_stored`` (the stored-form decoder replay uses: the same
object validation gives, without running pydantic again where the form is
canonical), so what is folded now is what a replay folds later.

Chunks are submitted in input order and read back in input order, at most
``2 × workers`` in flight, so memory stays bounded and the appends (offsets,
batches, errors) are those of the serial path. Workers are started with
``spawn``: forking a process that holds a DuckDB connection or threads is not
safe.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from typing import Any, Final, TypeVar

from cdp.services.ingest import checked, parsed_form
from schemas import EventValidationError
from schemas.stamp import content_message_id, lacks_message_id

T = TypeVar("T")
Raw = bytes | str | dict[str, Any]
#: What a worker answers for one item (see the module docstring).
Outcome = bytes | str | tuple[str, bytes | str]

CHUNK_ITEMS: Final = 1_000
"""Items per task: large enough that a task's overhead is small, small enough
that the first answers come back soon."""


def default_workers() -> int:
    """Worker processes for this machine: one per core the process may use, at most 4."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 4))


def check_items(items: list[Raw], received_at: datetime) -> list[Outcome]:
    """Validate one chunk (runs in a worker): an ``Outcome`` per item, in order."""
    out: list[Outcome] = []
    for raw in items:
        try:
            parsed, data_in = parsed_form(raw)
            first = content_message_id(parsed) if lacks_message_id(parsed) else None
        except EventValidationError as error:
            out.append(str(error))
            continue
        try:
            answer: bytes | str = checked(parsed, data_in, received_at, first)[1]
        except EventValidationError as error:
            answer = str(error)
        out.append(answer if first is None else (first, answer))
    return out


class ValidationPool:
    """Worker processes validating chunks of items (see the module docstring).

    Use it as a context manager (or call ``close``): the workers stop then.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self._executor = ProcessPoolExecutor(
            self.workers, mp_context=multiprocessing.get_context("spawn")
        )

    def __enter__(self) -> ValidationPool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the workers (waiting for the tasks already given to them)."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    def check(
        self, chunks: Iterable[tuple[T, list[Raw]]], received_at: datetime
    ) -> Iterator[tuple[T, list[Outcome]]]:
        """``(tag, items)`` chunks → ``(tag, outcomes)``, in the order the chunks
        came; ``tag`` stays in this process (e.g. the items' locations).

        At most ``2 × workers`` chunks are in flight; a chunk is read from
        ``chunks`` only when there is room, so a huge input streams through.
        """
        in_flight: deque[tuple[T, Future[list[Outcome]]]] = deque()
        limit = 2 * self.workers
        for tag, items in chunks:
            in_flight.append((tag, self._executor.submit(check_items, items, received_at)))
            if len(in_flight) >= limit:
                done, future = in_flight.popleft()
                yield done, future.result()
        while in_flight:
            done, future = in_flight.popleft()
            yield done, future.result()
