"""The dead-letter port: where a request rejected after authentication is kept.

Nothing a producer sent after proving who it is gets lost: a request the
platform cannot take is kept with why (``cdp.services.deadletters`` reads
them back and retries). Where it is kept depends on the mode, so the
composition root (``cdp.bootstrap``) hands the HTTP routes a
``DeadLetterSink``: the embedded ``dead_letters`` table or the Kafka
dead-letter topic. It runs on the writer's thread, with the writer's appender
(the engine or the Kafka log), so a dead letter is as durable as an event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol


class DeadLetterSink(Protocol):
    """Keeps one rejected request; runs on the writer's thread with its appender."""

    def __call__(
        self,
        appender: Any,
        /,
        *,
        received_at: datetime,
        source: str | None,
        endpoint: str,
        reason: str,
        body: bytes,
    ) -> None: ...
