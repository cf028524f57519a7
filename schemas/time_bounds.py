"""How far into the future an event may be dated, and which events move the log clock.

Derived values ("days since last seen", lead-score decay, lapsed segments,
ages) are computed against the *log clock*, the latest event time, so one
event dated 2099 would move "now" for every customer. Two rules keep that
from happening:

- **At the door** (``check_event_times``): an event whose corrected
  ``timestamp`` is more than ``MAX_AHEAD`` (24 h) after its ``receivedAt``,
  or an import whose ``receivedAt`` is more than 24 h after the moment the
  platform actually received it, is refused with the field named (HTTP 400 and
  a dead letter; ``file:line`` for an import). 24 h covers every time zone
  error of a client that sends local time as UTC, plus a day of clock drift;
  a fast client clock is corrected by ``sentAt`` anyway
  (``schemas.stamp``). Events far in the *past* are accepted: history
  imports and replays are the point of an event log, and an old event cannot
  move the clock forward.
- **In the clock** (``moves_clock``; its SQL twin is ``cdp.runtime.clock``): only
  events dated at most 24 h after their own ``receivedAt`` count, so an
  event accepted before the door rule existed (a data directory holding a
  2099 event) cannot move "now" either.

Pure: the caller passes the receive time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from schemas.envelope import Envelope
from schemas.errors import EventValidationError, FieldProblem

MAX_AHEAD: Final = timedelta(hours=24)
"""The furthest an event time may lie after its receive time."""


def _gap(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours / 24:,.0f} days" if hours >= 48 else f"{hours:,.1f} h"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def moves_clock(timestamp: datetime, received_at: datetime) -> bool:
    """Whether an event at ``timestamp`` received at ``received_at`` counts for the log clock."""
    return timestamp - received_at <= MAX_AHEAD


def check_event_times(event: Envelope, received_at: datetime) -> None:
    """Refuse ``event`` if it is dated too far ahead; ``received_at`` is the
    moment the platform received it (the door's clock reading).

    Raises ``EventValidationError`` naming ``receivedAt`` (an import claims to
    have been received in the future) or ``timestamp`` (the event claims to
    have happened more than ``MAX_AHEAD`` after it was received).
    """
    if event.received_at - received_at > MAX_AHEAD:
        raise EventValidationError(
            [
                FieldProblem(
                    "receivedAt",
                    f"{_iso(event.received_at)} is {_gap(event.received_at - received_at)} "
                    f"after the platform received the event ({_iso(received_at)}); "
                    "at most 24 h ahead is accepted",
                )
            ],
            event.message_id,
        )
    if not moves_clock(event.timestamp, event.received_at):
        raise EventValidationError(
            [
                FieldProblem(
                    "timestamp",
                    f"{_iso(event.timestamp)} is {_gap(event.timestamp - event.received_at)} "
                    f"after receivedAt ({_iso(event.received_at)}); at most 24 h ahead is "
                    "accepted (a client whose clock runs fast should send sentAt with "
                    "originalTimestamp, so the platform corrects it)",
                )
            ],
            event.message_id,
        )
