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

Chunks are submitted and read back in input order (``cdp.runtime.pool``),
so memory stays bounded and the appends (offsets, batches, errors) are those
of the serial path.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Final, TypeVar

from cdp.runtime.pool import WorkerPool, default_workers
from cdp.services.ingest import checked, parsed_form
from schemas import EventValidationError
from schemas.stamp import content_message_id, lacks_message_id

__all__ = ["CHUNK_ITEMS", "Outcome", "ValidationPool", "check_items", "default_workers"]

T = TypeVar("T")
Raw = bytes | str | dict[str, Any]
#: What a worker answers for one item (see the module docstring).
Outcome = bytes | str | tuple[str, bytes | str]

CHUNK_ITEMS: Final = 1_000
"""Items per task: large enough that a task's overhead is small, small enough
that the first answers come back soon."""


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


class ValidationPool(WorkerPool):
    """Worker processes validating chunks of items (see the module docstring)."""

    def check(
        self, chunks: Iterable[tuple[T, list[Raw]]], received_at: datetime
    ) -> Iterator[tuple[T, list[Outcome]]]:
        """``(tag, items)`` chunks → ``(tag, outcomes)``, in the order the chunks
        came; ``tag`` stays in this process (e.g. the items' locations)."""
        return self.map(check_items, chunks, received_at)
