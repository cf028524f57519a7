"""One tracker event to one Segment-spec event (the table in the package docstring).

``segment_event`` maps one item's parameters: identity, timestamps, page, campaign,
screen and library context, then the type-specific body (page, ping,
structured, self-describing, transaction, transaction item); every parameter
it does not consume stays under ``context.snowplow.params``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from connectors.sources.snowplow.params import ParamReader, self_describing
from connectors.sources.snowplow.protocol import (
    CONTEXTS,
    EVENT_TYPES,
    UNSTRUCT_EVENT,
    PayloadRejected,
)

PAGE_PINGED: Final = "Page Pinged"
ORDER_COMPLETED: Final = "Order Completed"
ORDER_ITEM: Final = "Order Item Purchased"
_SCREEN_VIEW_VENDORS: Final = ("com.snowplowanalytics.mobile", "com.snowplowanalytics.snowplow")
_ID_PARAMS: Final = ("uid", "duid", "tnuid", "nuid")
_UTM: Final = {
    "utm_campaign": "name",
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_term": "term",
    "utm_content": "content",
}

# Parameters that become envelope or context fields; the rest go to
# context.snowplow under their own names.
_CONSUMED: Final = frozenset(
    {
        "e", "eid", "aid", "uid", "duid", "nuid", "tnuid", "dtm", "stm", "ttm", "tv", "tna",
        "p", "sid", "vid", "ip", "ua", "lang", "tz", "res", "url", "page", "refr",
        "co", "cx", "ue_pr", "ue_px",
        "se_ca", "se_ac", "se_la", "se_pr", "se_va",
        "tr_id", "tr_tt", "tr_tx", "tr_sh", "tr_af", "tr_ci", "tr_st", "tr_co", "tr_cu",
        "ti_id", "ti_sk", "ti_nm", "ti_ca", "ti_pr", "ti_qu", "ti_cu",
        "pp_mix", "pp_max", "pp_miy", "pp_may",
    }
)  # fmt: skip


def _contexts(reader: ParamReader) -> list[dict[str, Any]]:
    data = reader.json("co", "cx", CONTEXTS)
    if data is None:
        return []
    name = "co" if "co" in reader.values else "cx"
    if not isinstance(data, list):
        reader.problem(f"{name}.data", "must be a list of self-describing JSONs")
        return []
    entities: list[dict[str, Any]] = []
    for index, entity in enumerate(data):
        parsed = self_describing(reader, entity, f"{name}.data[{index}]")
        if parsed is not None:
            entities.append({"schema": parsed[2], "data": parsed[3]})
    return entities


def _page(reader: ParamReader) -> dict[str, Any]:
    url, title, referrer = reader.text("url"), reader.text("page"), reader.text("refr")
    page: dict[str, Any] = {}
    if url is not None:
        page["url"] = url
        parts = urlsplit(url)
        if parts.path:
            page["path"] = parts.path
        if parts.query:
            page["search"] = "?" + parts.query
    if title is not None:
        page["title"] = title
    if referrer is not None:
        page["referrer"] = referrer
    return page


def _campaign(url: str | None) -> dict[str, str]:
    """UTM parameters of the page URL, as analytics.js reads them into ``context.campaign``."""
    if not url:
        return {}
    query = urlsplit(url).query
    return {_UTM[k]: v for k, v in parse_qsl(query) if k in _UTM and v}


def _screen(resolution: str | None) -> dict[str, int] | None:
    width, sep, height = (resolution or "").partition("x")
    if sep and width.isdigit() and height.isdigit() and len(width) < 7 and len(height) < 7:
        return {"width": int(width), "height": int(height)}
    return None


def segment_event(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The Segment event of one tracker item; ``where`` prefixes the fields problems name.

    ``PayloadRejected`` names every bad field of the item.
    """
    reader = ParamReader(item, where)
    reader.text("aid", required=True)  # the source; routes refuse unknown ones first
    kind = reader.text("e", required=True)
    if kind is not None and kind not in EVENT_TYPES:
        reader.problem("e", f"must be one of {', '.join(EVENT_TYPES)}, not {kind!r}")
        kind = None
    user_id = reader.ident("uid")
    domain_user_id = reader.ident("duid")
    network_user_id = reader.ident("tnuid") or reader.ident("nuid")
    anonymous_id = domain_user_id or (network_user_id if user_id is None else None)
    if user_id is None and anonymous_id is None and not any(item.get(k) for k in _ID_PARAMS):
        reader.problem("uid", "an event needs uid, duid or a network user id (tnuid/nuid)")
    message_id = reader.ident("eid")
    timestamps = {
        "timestamp": reader.millis("ttm"),
        "originalTimestamp": reader.millis("dtm"),
        "sentAt": reader.millis("stm"),
    }
    page = _page(reader)
    snowplow: dict[str, Any] = {
        key: value
        for key, value in (
            ("appId", reader.text("aid")),
            ("platform", reader.text("p")),
            ("namespace", reader.text("tna")),
            ("networkUserId", network_user_id),
            ("domainUserId", domain_user_id),
            ("sessionId", reader.text("sid")),
            ("sessionIndex", reader.count("vid")),
        )
        if value is not None
    }
    contexts = _contexts(reader)
    if contexts:
        snowplow["contexts"] = contexts
    extra = {k: v for k, v in reader.values.items() if k not in _CONSUMED}
    if extra:
        snowplow["params"] = extra

    event: dict[str, Any] = {} if message_id is None else {"messageId": message_id}
    if user_id is not None:
        event["userId"] = user_id
    if anonymous_id is not None:
        event["anonymousId"] = anonymous_id
    event.update((k, v) for k, v in timestamps.items() if v is not None)
    if kind is not None:
        event.update(_body(kind, reader, page, snowplow))
    if reader.problems:
        raise PayloadRejected(reader.problems)
    event["context"] = _context(reader, page, snowplow)
    return event


def _context(reader: ParamReader, page: dict[str, Any], snowplow: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {"snowplow": snowplow}
    version = reader.text("tv")
    context["library"] = {"name": "snowplow", **({"version": version} if version else {})}
    _texts(
        reader, context, (("ip", "ip"), ("ua", "userAgent"), ("lang", "locale"), ("tz", "timezone"))
    )
    if page:
        context["page"] = page
    campaign = _campaign(page.get("url"))
    if campaign:
        context["campaign"] = campaign
    screen = _screen(reader.text("res"))
    if screen is not None:
        context["screen"] = screen
    return context


def _body(
    kind: str, reader: ParamReader, page: dict[str, Any], snowplow: dict[str, Any]
) -> dict[str, Any]:
    """The type-specific part of the Segment event (type, event/name, properties)."""
    if kind == "pv":
        return {"type": "page", "properties": dict(page)}
    if kind == "pp":
        offsets = {
            key: reader.count(name, minimum=-(10**9))
            for name, key in (
                ("pp_mix", "min_x_offset"),
                ("pp_max", "max_x_offset"),
                ("pp_miy", "min_y_offset"),
                ("pp_may", "max_y_offset"),
            )
        }
        properties = {**page, **{k: v for k, v in offsets.items() if v is not None}}
        return {"type": "track", "event": PAGE_PINGED, "properties": properties}
    if kind == "se":
        return _structured(reader)
    if kind == "ue":
        return _self_describing_event(reader, snowplow)
    if kind == "tr":
        return _transaction(reader)
    return _transaction_item(reader)


def _structured(reader: ParamReader) -> dict[str, Any]:
    category = reader.text("se_ca", required=True)
    action = reader.text("se_ac", required=True)
    if action is not None and len(action) > 200:
        reader.problem("se_ac", "must be at most 200 characters (it is the event name)")
    properties: dict[str, Any] = {"category": category}
    _texts(reader, properties, (("se_la", "label"), ("se_pr", "property")))
    _optional(properties, "value", reader.number("se_va"))
    return {"type": "track", "event": action, "properties": properties}


def _self_describing_event(reader: ParamReader, snowplow: dict[str, Any]) -> dict[str, Any]:
    if "ue_pr" not in reader.values and "ue_px" not in reader.values:
        reader.problem("ue_pr", "a self-describing event needs ue_pr (JSON) or ue_px (base64url)")
        return {}
    envelope = reader.json("ue_pr", "ue_px", UNSTRUCT_EVENT)
    if envelope is None:
        return {}
    name = "ue_pr" if "ue_pr" in reader.values else "ue_px"
    parsed = self_describing(reader, envelope, f"{name}.data")
    if parsed is None:
        return {}
    vendor, event_name, uri, data = parsed
    snowplow["eventSchema"] = uri
    if event_name == "screen_view" and vendor in _SCREEN_VIEW_VENDORS:
        screen_name = data.get("name")
        return {
            "type": "screen",
            "name": screen_name if isinstance(screen_name, str) else None,
            "properties": data,
        }
    return {"type": "track", "event": event_name, "properties": data}


def _transaction(reader: ParamReader) -> dict[str, Any]:
    order_id = reader.ident("tr_id") if reader.text("tr_id", required=True) else None
    properties: dict[str, Any] = {
        "order_id": order_id,
        "revenue": reader.money("tr_tt", required=True),
    }
    for name, key in (("tr_tx", "tax"), ("tr_sh", "shipping")):
        _optional(properties, key, reader.money(name))
    _optional(properties, "currency", reader.currency("tr_cu"))
    _texts(
        reader,
        properties,
        (("tr_af", "affiliation"), ("tr_ci", "city"), ("tr_st", "state"), ("tr_co", "country")),
    )
    return {"type": "track", "event": ORDER_COMPLETED, "properties": properties}


def _transaction_item(reader: ParamReader) -> dict[str, Any]:
    order_id = reader.ident("ti_id") if reader.text("ti_id", required=True) else None
    sku = reader.ident("ti_sk") if reader.text("ti_sk", required=True) else None
    properties: dict[str, Any] = {
        "order_id": order_id,
        "product_id": sku,
        "sku": sku,
        "price": reader.money("ti_pr", required=True),
        "quantity": reader.count("ti_qu", minimum=1) if reader.text("ti_qu", True) else None,
    }
    _texts(reader, properties, (("ti_nm", "name"), ("ti_ca", "category")))
    _optional(properties, "currency", reader.currency("ti_cu"))
    return {"type": "track", "event": ORDER_ITEM, "properties": properties}


def _texts(reader: ParamReader, target: dict[str, Any], keys: tuple[tuple[str, str], ...]) -> None:
    """Copy each present text parameter ``name`` to ``target[key]``, for ``(name, key)``."""
    for name, key in keys:
        _optional(target, key, reader.text(name))


def _optional(target: dict[str, Any], key: str, value: Any) -> None:
    """Set ``target[key]`` only when there is a value (absent fields stay out of the event)."""
    if value is not None:
        target[key] = value
