"""The SFA webhooks (HubSpot, Salesforce, kintone) by platform: mappings and re-parsing.

The HTTP routes (``cdp.http.sales_webhooks``) and ``cdp deadletter retry`` both
need each SFA's mapping as ``<data dir>/webhooks.toml`` configures it; this
module builds them (``hubspot_mapping``, ``salesforce_mapping``,
``kintone_apps``) and keeps ``SALES``, the registry the retry looks a dead
letter's platform up in (endpoint ``webhook:<platform>``).

A dead letter of these routes holds one of two bodies (the route stores them):

- the whole request, when its events failed validation: the JSON body
  (HubSpot, kintone) or the SOAP message (Salesforce, checked again against
  the configured organisation);
- one skipped item, when only that item could not be mapped: a HubSpot event
  object, a kintone notification, or a Salesforce notification in
  ``salesforce.skipped_item`` form.

``reparse`` maps either with the configuration as it is *now* (the cause fixed:
the person's email mapped, the app configured, the stage added), through the
same parsers the routes use. A platform whose section is gone cannot be
re-parsed: ``UnmappableError`` says so and the letter stays pending.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import orjson

from cdp.errors import UnmappableError
from cdp.services import webhook_settings
from cdp.services.webhook_settings import WebhookSettings
from connectors.sources.webhooks import Mapped, hubspot, kintone, salesforce
from connectors.sources.webhooks.deals import Stages


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


@dataclass(frozen=True, slots=True)
class SalesWebhook:
    """How one SFA's stored dead-letter bodies are mapped again."""

    platform: str
    reparse: Callable[[WebhookSettings, bytes], Mapped]
    """``(current webhook settings, stored body) → Mapped``; ``CdpError`` if it cannot."""


def _not_configured(platform: str) -> UnmappableError:
    return UnmappableError(
        f"the {platform} webhook is not configured ([{platform}] in "
        f"{webhook_settings.FILE_NAME}): its dead letters cannot be mapped"
    )


def _hubspot(hooks: WebhookSettings, body: bytes) -> Mapped:
    if hooks.hubspot is None:
        raise _not_configured("hubspot")
    return hubspot.to_events(_json(body, "hubspot"), hubspot_mapping(hooks.hubspot))


def _salesforce(hooks: WebhookSettings, body: bytes) -> Mapped:
    conf = hooks.salesforce
    if conf is None:
        raise _not_configured("salesforce")
    if body.lstrip().startswith(b"<"):  # the whole SOAP message
        message = salesforce.read(body, conf.organization_id)
    else:
        message = salesforce.from_skipped_item(_json(body, "salesforce"), conf.organization_id)
    return salesforce.to_events(message, salesforce_mapping(conf))


def _kintone(hooks: WebhookSettings, body: bytes) -> Mapped:
    if hooks.kintone is None:
        raise _not_configured("kintone")
    return kintone.to_events(_json(body, "kintone"), kintone_apps(hooks.kintone))


def _json(body: bytes, platform: str) -> object:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise UnmappableError(f"the stored {platform} body is not JSON: {error}") from None


SALES: Final[dict[str, SalesWebhook]] = {
    hook.platform: hook
    for hook in (
        SalesWebhook("hubspot", _hubspot),
        SalesWebhook("salesforce", _salesforce),
        SalesWebhook("kintone", _kintone),
    )
}
"""The SFA webhooks by platform (the dead letter's endpoint is ``webhook:<platform>``)."""
