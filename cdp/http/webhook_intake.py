"""The one way a webhook request is handled, for every ``/v1/webhooks/*`` route.

The routes (``cdp.http.webhooks``, ``cdp.http.sales_webhooks``) say how their
platform is verified, parsed and mapped; :meth:`WebhookIntake.receive` does
the rest the same way for all of them:

1. read the body (``413`` past :data:`MAX_WEBHOOK_BYTES`) and ``verify`` it:
   an unverifiable request is refused ``401`` and never stored;
2. ``parse`` the verified body: what cannot be read is kept whole as a dead
   letter, with the reason. Where the body is its own credential (Salesforce's
   organisation id) the route asks for ``refuse_unreadable``: a body that
   cannot be read is then refused ``400``, since it was never verified. An
   ``AuthError`` of ``parse`` is always ``401``;
3. ``mapper`` turns the payload into events; an item it skips is kept alone
   as a dead letter, with its reason;
4. append the events (a full writer answers ``503`` with ``Retry-After``:
   nothing was stored and the platform retries), then keep the dead letters
   (endpoint ``webhook:<platform>`` unless the route names another);
5. ``answer(events, dead letters)``: verified input is acknowledged ``200``
   even when none of it could be mapped, since it is safe in the dead-letter
   store and a ``4xx`` would only make the platform resend it forever.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import orjson
from fastapi import Request
from fastapi.responses import JSONResponse, Response

from cdp.config import Settings
from cdp.errors import AuthError, CdpError, UnmappableError
from cdp.http.errors import error_response
from cdp.http.intake import Intake, read_body
from cdp.ports.log import Record
from cdp.runtime.writer import Backpressure
from cdp.services import collector, webhook_settings
from connectors.sources.webhooks import Mapped

MAX_WEBHOOK_BYTES: Final = 1024 * 1024
# The operators' name for the server's log, the same for every route.
log = logging.getLogger("cdp.api")

Payload = TypeVar("Payload")
Verify = Callable[[bytes], None]
"""Checks the raw body's signature; ``AuthError`` when it does not hold."""
Mapper = Callable[[Payload], list[dict[str, Any]] | Mapped]
"""A parsed payload → its raw events, or ``Mapped`` (events and skipped items)."""
Answer = Callable[[int, int], Response]
"""``(events stored, dead letters kept)`` → the platform's acknowledgement."""


def no_signature(_body: bytes) -> None:
    """``verify`` of a route whose caller is authenticated otherwise: before the
    body is read (a write key, a token in the URL) or by ``parse`` with
    ``refuse_unreadable`` (Salesforce's organisation id in the message)."""


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object; ``UnmappableError`` for any other JSON value."""
    payload = orjson.loads(body)
    if not isinstance(payload, dict):
        raise UnmappableError("payload is not a JSON object")
    return payload


def acknowledged(events: int, dead_lettered: int) -> Response:
    """The JSON acknowledgement: ``{"success": true, "events", "dead_lettered"}``."""
    return JSONResponse({"success": True, "events": events, "dead_lettered": dead_lettered})


@dataclass
class WebhookIntake:
    """The webhook request path over one app's ``intake``; ``settings`` names the
    data directory whose ``webhooks.toml`` the operator is told to edit."""

    settings: Settings
    intake: Intake
    _told_unconfigured: set[str] = field(default_factory=set, init=False, repr=False)

    async def receive(
        self,
        request: Request,
        platform: str,
        source: str,
        *,
        verify: Verify,
        parse: Callable[[bytes], Payload],
        mapper: Mapper[Payload],
        refuse_unreadable: bool = False,
        endpoint: str | None = None,
        received_at: datetime | None = None,
        answer: Answer = acknowledged,
    ) -> Response:
        """Verify, parse, map, store and dead-letter one request (module docstring)."""
        received_at = received_at or datetime.now(UTC)
        endpoint = endpoint or f"webhook:{platform}"
        try:
            body = await read_body(request, MAX_WEBHOOK_BYTES)
            verify(body)  # unverifiable requests are refused and never stored
            if refuse_unreadable:  # the body is its own credential
                payload = parse(body)
        except AuthError as error:
            return error_response(401, str(error))
        except collector.RequestRejected as error:
            return error_response(error.status, str(error))
        except CdpError as error:  # a body that cannot be read was never verified
            return error_response(400, str(error))
        letters: list[tuple[str, bytes]] = []
        records: list[Record] = []
        try:
            if not refuse_unreadable:
                payload = parse(body)
            mapped = mapper(payload)
            events, skipped = mapped if isinstance(mapped, Mapped) else (mapped, [])
            letters.extend((str(s), orjson.dumps(s.item)) for s in skipped)
            records = collector.to_records(events, received_at, source)
        except (orjson.JSONDecodeError, CdpError) as error:
            records, letters = [], [(f"{type(error).__name__}: {error}", body)]
        if records:
            try:
                await self.intake.submit(records)
            except Backpressure as error:  # the platform retries; nothing was stored
                return error_response(
                    503, str(error), headers={"Retry-After": str(error.retry_after)}
                )
        for reason, data in letters:
            await self.intake.dead_letter(source, endpoint, reason, data, received_at)
        return answer(len(records), len(letters))

    def not_configured(self, platform: str) -> Response:
        """The ``404`` of a platform ``webhooks.toml`` does not configure."""
        # The caller is not authenticated: the answer names no file; the
        # operator learns where to configure it from the server log (once).
        if platform not in self._told_unconfigured:
            self._told_unconfigured.add(platform)
            log.warning(
                "a request came for the %s webhook, which is not configured: add [%s] to %s",
                platform,
                platform,
                self.settings.data_dir / webhook_settings.FILE_NAME,
            )
        return error_response(404, f"the {platform} webhook is not configured")
