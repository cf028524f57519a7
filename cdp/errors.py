"""Errors of the platform core.

The root lives in ``schemas.errors`` (the innermost layer) and is re-exported
here. The whole hierarchy::

    CdpError
    ├── EventValidationError        terminal  an event breaks its contract (schemas)
    │   └── EventTooLargeError      terminal  over 32 KB (schemas)
    ├── ConfigError                 terminal  a configuration file or option is wrong
    ├── InputFileError              terminal  an input file cannot be read at all
    ├── LogError                              the event log failed
    │   ├── LogUnavailableError     transient the log cannot take writes now (busy, locked)
    │   └── LogCorruptError         terminal  stored data is unreadable
    ├── NotFoundError               terminal  no such customer / segment / identifier
    ├── SegmentError                terminal  a segment definition or query is wrong
    ├── QueryError                  terminal  read-only SQL failed or tried to write
    ├── AuthError                   terminal  a write key, token or signature is missing or wrong
    ├── UnmappableError             terminal  a verified webhook payload has no event mapping
    ├── ForbiddenError              terminal  a read token lacks the scope a request needs
    ├── AnalyticsError              terminal  an analytic's option or query is wrong
    ├── ArchiveError                terminal  the Parquet archive cannot be written or read
    ├── MessageError                terminal  a worker message is unreadable (also a ValueError)
    └── DestinationError                      pushing an audience to a destination failed
        ├── DestinationRejectedError  terminal  the platform refused a request (4xx)
        └── DestinationUnavailableError transient still failing after every retry

``TransientError`` means retry later, nothing was lost; ``TerminalError`` means
the same input will fail again. Messages name the offending id, file or line.
"""

from __future__ import annotations

from schemas.errors import (
    CdpError,
    EventTooLargeError,
    EventValidationError,
    FieldProblem,
    TerminalError,
    TransientError,
)

__all__ = [
    "AuthError",
    "CdpError",
    "ConfigError",
    "DestinationError",
    "DestinationRejectedError",
    "DestinationUnavailableError",
    "EventTooLargeError",
    "EventValidationError",
    "FieldProblem",
    "InputFileError",
    "LogCorruptError",
    "LogError",
    "LogUnavailableError",
    "MessageError",
    "NotFoundError",
    "QueryError",
    "SegmentError",
    "TerminalError",
    "TransientError",
    "UnmappableError",
]


class ConfigError(TerminalError, CdpError):
    """A configuration file or option is invalid; the message names the key."""


class InputFileError(TerminalError, CdpError):
    """An input file cannot be read at all (missing, unknown format, unreadable)."""


class LogError(CdpError):
    """The event log failed."""


class LogUnavailableError(TransientError, LogError):
    """The log cannot take writes right now (locked by another process, busy)."""


class LogCorruptError(TerminalError, LogError):
    """Stored data cannot be read back."""


class NotFoundError(TerminalError, CdpError):
    """No such customer, identifier or segment."""


class SegmentError(TerminalError, CdpError):
    """A segment definition or its query is wrong; the message names the segment."""


class QueryError(TerminalError, CdpError):
    """A read-only SQL query failed or tried to change data."""


class AuthError(TerminalError, CdpError):
    """A write key, read token or webhook signature is missing or wrong (HTTP 401)."""


class UnmappableError(TerminalError, CdpError):
    """A verified webhook payload cannot be turned into events; it is dead-lettered
    with this message as the reason."""


class MessageError(TerminalError, CdpError, ValueError):
    """A by-customer message of the faust worker (``streams.messages``) cannot be read;
    the record is dead-lettered with this message, which names the customer or the
    kind. Still a ``ValueError``: ``decode_message`` re-wraps every ``ValueError``
    raised while parsing, its own included, and the reasons stored must not change."""


class DestinationError(CdpError):
    """Pushing an audience to a destination (ad platform, webhook) failed; the message
    names the destination and carries the platform's own error message."""


class DestinationRejectedError(TerminalError, DestinationError):
    """The destination refused a request (HTTP 4xx other than 429): retrying the same
    request cannot help. Nothing of the failed chunk was marked synced."""


class DestinationUnavailableError(TransientError, DestinationError):
    """The destination kept failing (429, 5xx, connection errors) after every retry;
    the sync can be resumed later and loses nothing."""


class AnalyticsError(TerminalError, CdpError):
    """An analytic was given a bad option or its query failed; the message names it."""


class ArchiveError(TerminalError, CdpError):
    """The Parquet archive cannot be written or read as it stands (in use, a gap
    in the topic, a file named by the manifest missing); the message names the
    archive directory, topic, partition or file."""


class ForbiddenError(TerminalError, CdpError):
    """A valid read token lacks the scope a request needs (HTTP 403); the message names
    the token and the scope."""
