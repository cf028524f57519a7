"""Message ids the platform assigns to events that arrive without one.

``messageId`` is the dedup key of the log: two events with one id are one
event. Which id an event without one gets therefore decides whether
identical events collapse, so each door chooses deliberately:

- **HTTP doors** (collector routes, ``/v1/batch`` items, webhooks whose
  platform gives no stable id, form posts): every message gets its own id,
  ``srv-`` + a random UUID, assigned at the edge before stamping, as
  Segment does. The same body sent three times is three events; a client
  that retries must send its own ``messageId`` (the official SDKs do).
- **Files** (``cdp ingest``, ``/v1/bulk``): a hash of the content and its
  occurrence number in the file (``cdp.services.ingest.ContentIds``), so re-importing
  a file adds nothing (in any order, under any name) and two identical lines
  are two events. A first occurrence keeps the plain content hash that
  imports always gave, so files imported by earlier versions do not come
  back twice.
- **Dead-letter retries** (``cdp.services.deadletters.retry_message_ids``): derived
  from the dead letter and the item's index, so retrying twice stores once.

A ``MessageIds`` function maps an item's index in its request to the id it
gets if it has none.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Final

SERVER_PREFIX: Final = "srv-"
"""Prefix of ids the server assigned (so they are told apart from producers' ids)."""

MessageIds = Callable[[int], str]
"""Item index in its request → the ``messageId`` for an item that has none."""


def server_message_id(_index: int = 0) -> str:
    """A fresh, unique id for one message that arrived without one (a ``MessageIds``)."""
    return SERVER_PREFIX + str(uuid.uuid4())


def form_seed() -> str:
    """A fresh seed for the ids of the events one form post becomes."""
    return uuid.uuid4().hex
