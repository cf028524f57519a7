"""HTTP routes of the SFA sources: ``/v1/webhooks/{hubspot,salesforce,kintone/<token>}``.

Deal and activity changes from the shop's SFA (docs/sales.md). The checks and
mappings are ``connectors.sources.webhooks.{hubspot,salesforce,kintone}``
(pure); a route says how its platform is authenticated, parsed and mapped,
and ``cdp.http.webhook_intake`` handles the request as for every webhook:
refused ``401``, never stored, when authentication fails; the events stored;
what could not be mapped dead-lettered, with the reason. Verified input is
always acknowledged (``200``; Salesforce's SOAP ``Ack``), since a refusal
only makes the SFA resend it. Each platform is served only when its section is in
``<data dir>/webhooks.toml``.

Every event carries the SFA's own id as ``messageId``, so a redelivered
notification is stored once.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from cdp.config import Settings
from cdp.errors import AuthError
from cdp.http.errors import error_response
from cdp.http.intake import Intake
from cdp.http.webhook_intake import WebhookIntake, no_signature
from cdp.services import webhook_settings
from connectors.sources.webhooks import hubspot, kintone, salesforce
from connectors.sources.webhooks.sfa import hubspot_mapping, kintone_apps, salesforce_mapping


def soap_acknowledgement(_events: int, _dead_lettered: int) -> Response:
    """Salesforce's SOAP ``Ack``, whatever was stored: anything else makes it resend."""
    return Response(salesforce.acknowledgement(), media_type="text/xml; charset=utf-8")


def router(settings: Settings, intake: Intake) -> APIRouter:
    """The SFA webhook routes configured in ``settings``' data directory (read once, here)."""
    routes = APIRouter(tags=["webhooks"])
    hooks = webhook_settings.load(settings.data_dir)
    inbound = WebhookIntake(settings, intake)

    @routes.post("/v1/webhooks/hubspot")
    async def hubspot_webhook(request: Request) -> Response:
        """HubSpot Webhooks API and workflow webhooks (X-HubSpot-Signature-v3, v2, v1)."""
        conf = hooks.hubspot
        if conf is None:
            return inbound.not_configured("hubspot")
        received_at = datetime.now(UTC)  # also the clock the signature's timestamp is held to
        uri = conf.public_url or str(request.url)
        mapping = hubspot_mapping(conf)
        return await inbound.receive(
            request,
            "hubspot",
            conf.source or "hubspot",
            verify=lambda body: hubspot.verify(
                request.method, uri, body, request.headers, conf.secret, received_at
            ),
            parse=orjson.loads,
            mapper=lambda payload: hubspot.to_events(payload, mapping),
            received_at=received_at,
        )

    @routes.post("/v1/webhooks/salesforce")
    async def salesforce_webhook(request: Request) -> Response:
        """Salesforce Outbound Messages (SOAP); answered with the SOAP acknowledgement."""
        conf = hooks.salesforce
        if conf is None:
            return inbound.not_configured("salesforce")
        mapping = salesforce_mapping(conf)
        return await inbound.receive(
            request,
            "salesforce",
            conf.source or "salesforce",
            verify=no_signature,
            # The organisation id is the only credential in the message: a body we
            # cannot read is as unauthenticated as one from another org.
            parse=lambda body: salesforce.read(body, conf.organization_id),
            refuse_unreadable=True,
            mapper=lambda message: salesforce.to_events(message, mapping),
            answer=soap_acknowledgement,
        )

    @routes.post("/v1/webhooks/kintone/{token}")
    async def kintone_webhook(token: str, request: Request) -> Response:
        """kintone webhooks, authenticated by the secret token in the URL."""
        conf = hooks.kintone
        if conf is None:
            return inbound.not_configured("kintone")
        try:
            kintone.verify_token(token, conf.token)
            client = request.client.host if request.client is not None else None
            kintone.verify_source(client, conf.allowed_networks)
        except AuthError as error:
            return error_response(401, str(error))
        apps = kintone_apps(conf)
        return await inbound.receive(
            request,
            "kintone",
            conf.source or "kintone",
            verify=no_signature,  # the token and the caller's network, above
            parse=orjson.loads,
            mapper=lambda payload: kintone.to_events(payload, apps),
        )

    return routes
