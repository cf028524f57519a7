"""HTTP routes of the webhook sources: ``/v1/webhooks/{shopify,orders,line,meta,x}``.

The signature checks and mappings are ``connectors.sources.webhooks`` (pure);
a route here reads the body, verifies it (an unverifiable request is refused
``401`` and never stored), maps it, and hands the events to the writer. A
platform is served only when ``<data dir>/webhooks.toml`` configures it; the
generic order JSON authenticates with a source's write key instead. Meta's
subscription challenge and X's CRC check are the two ``GET`` routes.

Verified input is always acknowledged ``200``, also when it could not be
mapped: it is kept as a dead letter with the reason, and a ``4xx`` would only
make the platform resend it forever.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cdp.config import Settings
from cdp.errors import AuthError, CdpError, UnmappableError
from cdp.http.errors import error_response
from cdp.http.intake import Intake, basic_username, read_body
from cdp.ports.log import Record
from cdp.runtime.writer import Backpressure
from cdp.services import collector, webhook_settings
from cdp.services.sources import SourceRegistry
from connectors.sources.webhooks import Mapped, meta, orders, shopify, x
from connectors.sources.webhooks.registry import SIGNED, SignedWebhook

MAX_WEBHOOK_BYTES: Final = 1024 * 1024
# The operators' name for the server's log, the same for every route.
log = logging.getLogger("cdp.api")

Verify = Callable[[bytes], None]
Mapper = Callable[[Any], list[dict[str, Any]] | Mapped]


def router(settings: Settings, sources: SourceRegistry, intake: Intake) -> APIRouter:
    """The webhook routes configured in ``settings``' data directory (read once, here)."""
    routes = APIRouter(tags=["webhooks"])
    hooks = webhook_settings.load(settings.data_dir)

    async def webhook(
        platform: str,
        request: Request,
        verify: Verify,
        mapper: Mapper,
        source: str,
        endpoint: str | None = None,
    ) -> Response:
        received_at = datetime.now(UTC)
        endpoint = endpoint or f"webhook:{platform}"
        try:
            body = await read_body(request, MAX_WEBHOOK_BYTES)
            verify(body)  # unverifiable requests are refused and never stored
        except AuthError as error:
            return error_response(401, str(error))
        except collector.RequestRejected as error:
            return error_response(error.status, str(error))
        letters: list[tuple[str, bytes]] = []
        records: list[Record] = []
        try:
            payload = orjson.loads(body)
            if not isinstance(payload, dict):
                raise UnmappableError("payload is not a JSON object")
            mapped = mapper(payload)
            events, skipped = mapped if isinstance(mapped, Mapped) else (mapped, [])
            letters.extend((str(s), orjson.dumps(s.item)) for s in skipped)
            records = collector.to_records(events, received_at, source)
        except (orjson.JSONDecodeError, CdpError) as error:
            records, letters = [], [(f"{type(error).__name__}: {error}", body)]
        if records:
            try:
                await intake.submit(records)
            except Backpressure as error:  # the platform retries; nothing was stored
                return error_response(
                    503, str(error), headers={"Retry-After": str(error.retry_after)}
                )
        for reason, data in letters:
            await intake.dead_letter(source, endpoint, reason, data, received_at)
        # Verified input is acknowledged even when it could not be mapped: it is
        # safe in the dead-letter store, and a 4xx would only make the platform
        # resend it forever.
        return JSONResponse(
            {"success": True, "events": len(records), "dead_lettered": len(letters)}
        )

    told_unconfigured: set[str] = set()

    def disabled(platform: str) -> Response:
        # The caller is not authenticated: the answer names no file; the
        # operator learns where to configure it from the server log (once).
        if platform not in told_unconfigured:
            told_unconfigured.add(platform)
            log.warning(
                "a request came for the %s webhook, which is not configured: add [%s] to %s",
                platform,
                platform,
                settings.data_dir / webhook_settings.FILE_NAME,
            )
        return error_response(404, f"the {platform} webhook is not configured")

    @routes.post("/v1/webhooks/shopify")
    async def shopify_webhook(request: Request) -> Response:
        """Shopify orders/create, orders/paid, refunds/create (X-Shopify-Hmac-Sha256)."""
        if hooks.shopify is None:
            return disabled("shopify")
        conf = hooks.shopify
        topic = request.headers.get("x-shopify-topic", "")
        return await webhook(
            "shopify",
            request,
            lambda body: shopify.verify(
                body, request.headers.get("x-shopify-hmac-sha256"), conf.secret
            ),
            lambda payload: shopify.to_events(topic, payload),
            conf.source or "shopify",
            endpoint=f"webhook:shopify:{topic}",
        )

    @routes.post("/v1/webhooks/orders")
    async def orders_webhook(request: Request) -> Response:
        """The generic order JSON (connectors/sources/webhooks/orders.py); write key auth."""
        try:
            source = sources.authenticate(basic_username(request.headers.get("authorization")))
        except AuthError as error:
            return error_response(401, str(error))
        return await webhook("orders", request, lambda _body: None, orders.to_events, source)

    @routes.get("/v1/webhooks/meta")
    async def meta_challenge(request: Request) -> Response:
        """Meta's subscription check: echo hub.challenge when hub.verify_token matches."""
        if hooks.meta is None:
            return disabled("meta")
        try:
            challenge = meta.verify_challenge(request.query_params, hooks.meta.verify_token)
        except AuthError as error:
            return error_response(403, str(error))
        return Response(challenge, media_type="text/plain")

    @routes.get("/v1/webhooks/x")
    async def x_crc(crc_token: str = "") -> Response:
        """X Account Activity CRC check: the HMAC of crc_token as response_token."""
        if hooks.x is None:
            return disabled("x")
        try:
            return JSONResponse(x.crc_response(crc_token, hooks.x.consumer_secret))
        except AuthError as error:
            return error_response(400, str(error))

    def signed_route(hook: SignedWebhook) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            conf = hooks.signed(hook.platform)
            if conf is None:
                return disabled(hook.platform)
            header = request.headers.get(hook.signature_header)
            return await webhook(
                hook.platform,
                request,
                lambda body: hook.verify(body, header, conf.secret),
                hook.to_events,
                conf.source or hook.default_source,
            )

        # Named for the platform: the OpenAPI operation ids.
        handler.__name__ = f"{hook.platform}_webhook"
        handler.__doc__ = f"{hook.platform} webhook events (signed in {hook.signature_header})."
        return handler

    for hook in SIGNED.values():
        routes.post(f"/v1/webhooks/{hook.platform}")(signed_route(hook))
    return routes
