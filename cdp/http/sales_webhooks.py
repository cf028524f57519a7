"""HTTP routes of the SFA sources: ``/v1/webhooks/{hubspot,salesforce,kintone/<token>}``.

Deal and activity changes from the shop's SFA (docs/sales.md). The checks and
mappings are ``connectors.sources.webhooks.{hubspot,salesforce,kintone}``
(pure); a route reads the body, authenticates it (refused ``401``, never
stored, when it fails), maps it, stores the events and dead-letters what
could not be mapped, with the reason. Verified input is always acknowledged
(``200``; Salesforce's SOAP ``Ack``), since a refusal only makes the SFA
resend it. Each platform is served only when its section is in
``<data dir>/webhooks.toml``.

Every event carries the SFA's own id as ``messageId``, so a redelivered
notification is stored once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from cdp.config import Settings
from cdp.errors import AuthError, CdpError
from cdp.http.errors import error_response
from cdp.http.intake import Intake, read_body
from cdp.ports.log import Record
from cdp.runtime.writer import Backpressure
from cdp.services import collector, webhook_settings
from connectors.sources.webhooks import Mapped, hubspot, kintone, salesforce
from connectors.sources.webhooks.deals import Stages

MAX_BODY_BYTES: Final = 1024 * 1024
log = logging.getLogger("cdp.api")


def hubspot_mapping(conf: webhook_settings.HubSpot) -> hubspot.HubSpotMapping:
    """The HubSpot mapping a ``[hubspot]`` section configures."""
    return hubspot.HubSpotMapping(
        stages=Stages.of(conf.won_stages, conf.lost_stages),
        email_keys=conf.email_keys,
        phone_keys=conf.phone_keys,
        user_id_keys=conf.user_id_keys,
    )


def salesforce_mapping(conf: webhook_settings.Salesforce) -> salesforce.SalesforceMapping:
    """The Outbound Message mapping a ``[salesforce]`` section configures."""
    return salesforce.SalesforceMapping(
        organization_id=conf.organization_id,
        user_id_field=conf.person.user_id,
        email_field=conf.person.email,
        phone_field=conf.person.phone,
        lost_reason_field=conf.lost_reason_field,
        activity_types=dict(conf.activity_types),
    )


def kintone_apps(conf: webhook_settings.Kintone) -> dict[str, kintone.KintoneApp]:
    """The kintone apps a ``[kintone.apps.<id>]`` section each configures."""
    return {
        app_id: kintone.KintoneApp(
            kind=app.kind,
            fields=dict(app.fields),
            stages=Stages.of(app.won_stages, app.lost_stages),
            activity_types=dict(app.activity_types),
        )
        for app_id, app in conf.apps.items()
    }


def router(settings: Settings, intake: Intake) -> APIRouter:
    """The SFA webhook routes configured in ``settings``' data directory (read once, here)."""
    routes = APIRouter(tags=["webhooks"])
    hooks = webhook_settings.load(settings.data_dir)

    async def store(
        platform: str, source: str, body: bytes, received_at: datetime, mapper: Callable[[], Mapped]
    ) -> tuple[int, int] | Response:
        """Map, append and dead-letter; ``(events, dead letters)`` or a 503 to retry."""
        endpoint = f"webhook:{platform}"
        letters: list[tuple[str, bytes]] = []
        records: list[Record] = []
        try:
            events, skipped = mapper()
            letters.extend((str(s), orjson.dumps(s.item)) for s in skipped)
            records = collector.to_records(events, received_at, source)
        except (orjson.JSONDecodeError, CdpError) as error:
            records, letters = [], [(f"{type(error).__name__}: {error}", body)]
        if records:
            try:
                await intake.submit(records)
            except Backpressure as error:  # the SFA retries; nothing was stored
                return error_response(
                    503, str(error), headers={"Retry-After": str(error.retry_after)}
                )
        for reason, data in letters:
            await intake.dead_letter(source, endpoint, reason, data, received_at)
        return len(records), len(letters)

    def disabled(platform: str) -> Response:
        log.warning(
            "a request came for the %s webhook, which is not configured: add [%s] to %s",
            platform,
            platform,
            settings.data_dir / webhook_settings.FILE_NAME,
        )
        return error_response(404, f"the {platform} webhook is not configured")

    def answered(outcome: tuple[int, int] | Response) -> Response:
        if isinstance(outcome, Response):
            return outcome
        events, letters = outcome
        return JSONResponse({"success": True, "events": events, "dead_lettered": letters})

    @routes.post("/v1/webhooks/hubspot")
    async def hubspot_webhook(request: Request) -> Response:
        """HubSpot Webhooks API and workflow webhooks (X-HubSpot-Signature-v3, v2, v1)."""
        conf = hooks.hubspot
        if conf is None:
            return disabled("hubspot")
        received_at = datetime.now(UTC)
        try:
            body = await read_body(request, MAX_BODY_BYTES)
            uri = conf.public_url or str(request.url)
            hubspot.verify(request.method, uri, body, request.headers, conf.secret, received_at)
        except AuthError as error:
            return error_response(401, str(error))
        except collector.RequestRejected as error:
            return error_response(error.status, str(error))
        mapping = hubspot_mapping(conf)
        return answered(
            await store(
                "hubspot",
                conf.source or "hubspot",
                body,
                received_at,
                lambda: hubspot.to_events(orjson.loads(body), mapping),
            )
        )

    @routes.post("/v1/webhooks/salesforce")
    async def salesforce_webhook(request: Request) -> Response:
        """Salesforce Outbound Messages (SOAP); answered with the SOAP acknowledgement."""
        conf = hooks.salesforce
        if conf is None:
            return disabled("salesforce")
        received_at = datetime.now(UTC)
        try:
            body = await read_body(request, MAX_BODY_BYTES)
            # The organisation id is the only credential in the message: a body we
            # cannot read is as unauthenticated as one from another org.
            message = salesforce.read(body, conf.organization_id)
        except AuthError as error:
            return error_response(401, str(error))
        except collector.RequestRejected as error:
            return error_response(error.status, str(error))
        except CdpError as error:
            return error_response(400, str(error))
        mapping = salesforce_mapping(conf)
        outcome = await store(
            "salesforce",
            conf.source or "salesforce",
            body,
            received_at,
            lambda: salesforce.to_events(message, mapping),
        )
        if isinstance(outcome, Response):
            return outcome
        return Response(salesforce.acknowledgement(), media_type="text/xml; charset=utf-8")

    @routes.post("/v1/webhooks/kintone/{token}")
    async def kintone_webhook(token: str, request: Request) -> Response:
        """kintone webhooks, authenticated by the secret token in the URL."""
        conf = hooks.kintone
        if conf is None:
            return disabled("kintone")
        received_at = datetime.now(UTC)
        try:
            kintone.verify_token(token, conf.token)
            client = request.client.host if request.client is not None else None
            kintone.verify_source(client, conf.allowed_networks)
            body = await read_body(request, MAX_BODY_BYTES)
        except AuthError as error:
            return error_response(401, str(error))
        except collector.RequestRejected as error:
            return error_response(error.status, str(error))
        apps = kintone_apps(conf)
        return answered(
            await store(
                "kintone",
                conf.source or "kintone",
                body,
                received_at,
                lambda: kintone.to_events(orjson.loads(body), apps),
            )
        )

    return routes
