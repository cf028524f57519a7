"""The root of the platform's error hierarchy.

It lives in the innermost package so that every layer (schemas, projections,
cdp services, connectors, streams) can raise and catch the same family::

    CdpError
    ├── EventValidationError      (terminal)  an event breaks its contract
    │   └── EventTooLargeError    (terminal)  over the per-event size limit
    └── ... extended in cdp.errors (configuration, log, lookup, segments, ...)

Two mixins say what a caller should do with an error: ``TransientError``
(retry later; nothing was lost) and ``TerminalError`` (retrying cannot help:
report it, dead-letter the input).
"""

from __future__ import annotations

from dataclasses import dataclass


class CdpError(Exception):
    """Root of every error the platform raises on purpose."""


class TransientError:
    """Mixin: the operation may succeed if retried later."""

    transient = True


class TerminalError:
    """Mixin: retrying the same input cannot succeed."""

    transient = False


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with an event: where (a dotted path) and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path or '<event>'}: {self.reason}"


class EventValidationError(TerminalError, CdpError):
    """An event does not satisfy its contract.

    ``problems`` lists each offending field path with the reason; ``message_id``
    names the event when it had one.
    """

    def __init__(self, problems: list[FieldProblem], message_id: str | None = None) -> None:
        self.problems = problems
        self.message_id = message_id
        where = f"event {message_id!r}" if message_id else "event"
        detail = "; ".join(str(p) for p in problems)
        super().__init__(f"invalid {where}: {detail}")


class EventTooLargeError(EventValidationError):
    """An event is over the per-event size limit (32 KB, as Segment's)."""

    def __init__(self, size: int, limit: int, message_id: str | None = None) -> None:
        super().__init__(
            [FieldProblem("", f"event is {size} bytes, over the {limit}-byte limit")], message_id
        )
        self.size = size
        self.limit = limit
