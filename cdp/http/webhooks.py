"""HTTP routes of the webhook sources: ``/v1/webhooks/{shopify,orders,line,meta,x}``.

The signature checks and mappings are ``connectors.sources.webhooks`` (pure);
a route here says how its platform is verified and mapped, and
``cdp.http.webhook_intake`` reads the body, verifies it (an unverifiable
request is refused ``401`` and never stored), maps it, and hands the events
to the writer, as for every webhook route. A
platform is served only when ``<data dir>/webhooks.toml`` configures it; the
generic order JSON authenticates with a source's write key instead. Meta's
subscription challenge and X's CRC check are the two ``GET`` routes.

Verified input is always acknowledged ``200``, also when it could not be
mapped: it is kept as a dead letter with the reason, and a ``4xx`` would only
make the platform resend it forever.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cdp.config import Settings
from cdp.errors import AuthError
from cdp.http.errors import error_response
from cdp.http.intake import Intake, basic_username
from cdp.http.webhook_intake import WebhookIntake, json_object, no_signature
from cdp.services import webhook_settings
from cdp.services.sources import SourceRegistry
from connectors.sources.webhooks import meta, orders, shopify, x
from connectors.sources.webhooks.registry import SIGNED, SignedWebhook


def router(settings: Settings, sources: SourceRegistry, intake: Intake) -> APIRouter:
    """The webhook routes configured in ``settings``' data directory (read once, here)."""
    routes = APIRouter(tags=["webhooks"])
    hooks = webhook_settings.load(settings.data_dir)

    inbound = WebhookIntake(settings, intake)

    @routes.post("/v1/webhooks/shopify")
    async def shopify_webhook(request: Request) -> Response:
        """Shopify orders/create, orders/paid, refunds/create (X-Shopify-Hmac-Sha256)."""
        if hooks.shopify is None:
            return inbound.not_configured("shopify")
        conf = hooks.shopify
        topic = request.headers.get("x-shopify-topic", "")
        return await inbound.receive(
            request,
            "shopify",
            conf.source or "shopify",
            verify=lambda body: shopify.verify(
                body, request.headers.get("x-shopify-hmac-sha256"), conf.secret
            ),
            parse=json_object,
            mapper=lambda payload: shopify.to_events(topic, payload),
            endpoint=f"webhook:shopify:{topic}",
        )

    @routes.post("/v1/webhooks/orders")
    async def orders_webhook(request: Request) -> Response:
        """The generic order JSON (connectors/sources/webhooks/orders.py); write key auth."""
        try:
            source = sources.authenticate(basic_username(request.headers.get("authorization")))
        except AuthError as error:
            return error_response(401, str(error))
        return await inbound.receive(
            request,
            "orders",
            source,
            verify=no_signature,  # the write key, above
            parse=json_object,
            mapper=orders.to_events,
        )

    @routes.get("/v1/webhooks/meta")
    async def meta_challenge(request: Request) -> Response:
        """Meta's subscription check: echo hub.challenge when hub.verify_token matches."""
        if hooks.meta is None:
            return inbound.not_configured("meta")
        try:
            challenge = meta.verify_challenge(request.query_params, hooks.meta.verify_token)
        except AuthError as error:
            return error_response(403, str(error))
        return Response(challenge, media_type="text/plain")

    @routes.get("/v1/webhooks/x")
    async def x_crc(crc_token: str = "") -> Response:
        """X Account Activity CRC check: the HMAC of crc_token as response_token."""
        if hooks.x is None:
            return inbound.not_configured("x")
        try:
            return JSONResponse(x.crc_response(crc_token, hooks.x.consumer_secret))
        except AuthError as error:
            return error_response(400, str(error))

    def signed_route(hook: SignedWebhook) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            conf = hooks.signed(hook.platform)
            if conf is None:
                return inbound.not_configured(hook.platform)
            header = request.headers.get(hook.signature_header)
            return await inbound.receive(
                request,
                hook.platform,
                conf.source or hook.default_source,
                verify=lambda body: hook.verify(body, header, conf.secret),
                parse=json_object,
                mapper=hook.to_events,
            )

        # Named for the platform: the OpenAPI operation ids.
        handler.__name__ = f"{hook.platform}_webhook"
        handler.__doc__ = f"{hook.platform} webhook events (signed in {hook.signature_header})."
        return handler

    for hook in SIGNED.values():
        routes.post(f"/v1/webhooks/{hook.platform}")(signed_route(hook))
    return routes
