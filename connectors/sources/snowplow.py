"""The Snowplow tracker protocol, mapped to Segment-spec events (pure: no HTTP).

Sites instrumented with Snowplow trackers send to ``POST
/com.snowplowanalytics.snowplow/tp2`` (a ``payload_data`` 1-0-x document whose
``data`` is a list of events, every value a string) or ``GET /i`` (one event
as querystring parameters). Each tracker event becomes exactly one Segment
event, so ``data[i]`` and the event at index ``i`` are the same thing:

=========  ===========================================================
``e``      Segment event
=========  ===========================================================
``pv``     ``page`` (url, title, referrer, path, search)
``pp``     ``track "Page Pinged"`` (the page, scroll offsets)
``se``     ``track`` named ``se_ac``; ``category`` = ``se_ca``, ``label``,
           ``property``, ``value`` (a number)
``ue``     ``track`` named after the self-describing schema (``link_click``
           for ``iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1``),
           the data as properties; a ``screen_view`` schema becomes ``screen``
``tr``     ``track "Order Completed"`` (order_id, revenue, tax, shipping,
           currency, affiliation, city/state/country), no products
``ti``     ``track "Order Item Purchased"`` (order_id, product_id = sku,
           name, category, price, quantity, currency)
=========  ===========================================================

Why items are their own events: a tracker sends a transaction (``tr``) and
each of its items (``ti``) as separate events, each with its own event id,
possibly in different requests (the GET pixel sends one per request). The
folds key orders by ``order_id`` and a later version of an order *replaces*
the earlier one, so assembling products into the order here would make the
stored order depend on how the tracker happened to batch. The order's revenue
is exact from ``tr`` alone; the lines stay queryable by ``order_id``.

Identity: ``uid`` → ``userId``; ``duid`` (the first-party cookie id) →
``anonymousId``; the network user id (``tnuid``, else ``nuid``) is kept in
``context.snowplow.networkUserId`` and is the ``anonymousId`` only for an
event that carries neither ``uid`` nor ``duid``.

Time, the Segment way: ``ttm`` (true timestamp) → ``timestamp`` (kept as
given), ``dtm`` (device created) → ``originalTimestamp``, ``stm`` (device
sent) → ``sentAt``, so the server corrects the device clock as
``receivedAt − (sentAt − originalTimestamp)``. ``eid`` is the ``messageId``,
so a tracker's retries are stored once; an event without one (a hand-written
pixel) is left without, and the door gives it its own id (``cdp.services.message_ids``).

Every parameter not consumed above is kept under ``context.snowplow`` with
its tracker name, so nothing the tracker sent is lost. Problems are reported
as ``data[i].FIELD: reason`` (``FIELD: reason`` for a GET).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import orjson

from cdp.errors import CdpError, TerminalError

PAYLOAD_DATA: Final = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-"
UNSTRUCT_EVENT: Final = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-"
CONTEXTS: Final = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-"
EVENT_TYPES: Final = ("pv", "pp", "se", "ue", "tr", "ti")
PAGE_PINGED: Final = "Page Pinged"
ORDER_COMPLETED: Final = "Order Completed"
ORDER_ITEM: Final = "Order Item Purchased"
MAX_ID_LENGTH: Final = 200
# The platform's Money type (schemas.crm): 18 digits, 4 of them after the point.
MONEY_PLACES: Final = 4
MONEY_WHOLE_DIGITS: Final = 14
# iglu:vendor/name/format/model-revision-addition
_IGLU: Final = re.compile(
    r"^iglu:([a-zA-Z0-9_.-]+)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/(\d+-\d+-\d+)$"
)
_SCREEN_VIEW_VENDORS: Final = ("com.snowplowanalytics.mobile", "com.snowplowanalytics.snowplow")
_ID_PARAMS: Final = ("uid", "duid", "tnuid", "nuid")
_MILLIS: Final = re.compile(r"^\d{1,15}$")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_CURRENCY: Final = re.compile(r"^[A-Za-z]{3}$")
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


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a tracker payload: where (``data[0].se_ac``) and why."""

    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class PayloadRejected(TerminalError, CdpError):
    """The tracker payload breaks the protocol; ``problems`` name each field."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))


# ----------------------------------------------------------------- the body
def payload_items(body: bytes) -> list[Any]:
    """The events of a ``tp2`` body (a payload_data 1-0-x document).

    ``PayloadRejected`` when the body is not that document; the items
    themselves are checked by ``to_events``.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise PayloadRejected([Problem("", f"body is not valid JSON ({error})")]) from None
    if not isinstance(document, dict):
        raise PayloadRejected([Problem("", "body must be a payload_data JSON object")])
    schema = document.get("schema")
    if not isinstance(schema, str) or not _is_version_of(schema, PAYLOAD_DATA):
        raise PayloadRejected(
            [Problem("schema", f"must be {PAYLOAD_DATA}N (payload_data 1-0-x), not {schema!r}")]
        )
    items = document.get("data")
    if not isinstance(items, list) or not items:
        raise PayloadRejected([Problem("data", "must be a non-empty list of events")])
    return items


def app_ids(items: list[Any]) -> list[str]:
    """The distinct app ids (``aid``) of the items, in order of first appearance.

    Used to authenticate a request before its items are validated; items that
    are not objects or whose ``aid`` is not a string contribute nothing.
    """
    seen: list[str] = []
    for item in items:
        if isinstance(item, dict):
            aid = item.get("aid")
            if isinstance(aid, str) and aid and aid not in seen:
                seen.append(aid)
    return seen


def loose_app_ids(body: bytes) -> list[str]:
    """The app ids of a body that ``payload_items`` refused, if any can be found.

    A known app id with a malformed payload is a producer's bug to keep as a
    dead letter; without one the request is anonymous and is not stored.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return []
    items = document.get("data") if isinstance(document, dict) else None
    return app_ids(items) if isinstance(items, list) else []


def to_events(items: list[Any]) -> list[dict[str, Any]]:
    """Map every item of a ``tp2`` body; all or nothing.

    ``PayloadRejected`` names every bad field of every item as ``data[i].FIELD``.
    """
    events: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        where = f"data[{index}]"
        if not isinstance(item, dict):
            problems.append(Problem(where, "an event must be a JSON object"))
            continue
        try:
            events.append(_event(item, f"{where}."))
        except PayloadRejected as error:
            problems.extend(error.problems)
    if problems:
        raise PayloadRejected(problems)
    return events


def query_event(params: list[tuple[str, str]]) -> dict[str, Any]:
    """Map the querystring of a ``GET /i`` pixel request (one event)."""
    counts = Counter(name for name, _ in params)
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        raise PayloadRejected([Problem(name, "is given more than once") for name in repeated])
    return _event(dict(params), "")


def dead_letter_events(endpoint: str, body: bytes) -> list[dict[str, Any]]:
    """Map a request the routes kept as a dead letter again (``cdp deadletter retry``).

    ``endpoint`` is the one the routes stored: ``snowplow:tp2`` keeps the body,
    ``snowplow:i`` the querystring.
    """
    if endpoint == "snowplow:tp2":
        return to_events(payload_items(body))
    if endpoint == "snowplow:i":
        text = body.decode("utf-8", errors="replace")
        return [query_event(parse_qsl(text, keep_blank_values=True))]
    raise PayloadRejected([Problem("", f"{endpoint!r} is not a Snowplow endpoint")])


# --------------------------------------------------------------- one event
class _Reader:
    """Typed access to one item's parameters, collecting problems by field."""

    def __init__(self, item: Mapping[str, Any], where: str) -> None:
        self.where = where
        self.problems: list[Problem] = []
        self.values: dict[str, str] = {}
        for name, value in item.items():
            if isinstance(value, str):
                self.values[name] = value
            else:
                kind = "null" if value is None else type(value).__name__
                self.problem(name, f"must be a string (every tracker value is one), not {kind}")

    def problem(self, name: str, reason: str) -> None:
        self.problems.append(Problem(f"{self.where}{name}", reason))

    def text(self, name: str, required: bool = False) -> str | None:
        """A parameter's value; ``None`` when absent or empty (trackers omit empties)."""
        value = self.values.get(name)
        if value:
            return value
        if required:
            self.problem(name, "is required")
        return None

    def ident(self, name: str) -> str | None:
        value = self.text(name)
        if value is not None and len(value) > MAX_ID_LENGTH:
            self.problem(name, f"must be at most {MAX_ID_LENGTH} characters")
            return None
        return value

    def millis(self, name: str) -> str | None:
        """An epoch-milliseconds parameter as ISO-8601 UTC."""
        value = self.text(name)
        if value is None:
            return None
        if not _MILLIS.match(value):
            self.problem(name, f"must be epoch milliseconds (digits), not {value!r}")
            return None
        try:
            moment = _EPOCH + timedelta(milliseconds=int(value))
        except OverflowError:
            self.problem(name, f"{value} ms is after the year 9999")
            return None
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def money(self, name: str, required: bool = False) -> str | None:
        """A non-negative decimal amount, kept as text (exact, like Decimal)."""
        value = self.text(name, required)
        if value is None:
            return None
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite() or amount < 0:
            self.problem(name, f"must be a non-negative decimal number, not {value!r}")
            return None
        exponent = amount.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        if places > MONEY_PLACES or len(amount.as_tuple().digits) - places > MONEY_WHOLE_DIGITS:
            self.problem(
                name,
                f"must have at most {MONEY_WHOLE_DIGITS} digits before the point and "
                f"{MONEY_PLACES} after it, not {value!r}",
            )
            return None
        return str(amount)

    def number(self, name: str) -> int | float | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            self.problem(name, f"must be a finite number, not {value!r}")
            return None
        return int(number) if number.is_integer() and abs(number) < 2**53 else number

    def count(self, name: str, minimum: int = 0) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not value.lstrip("-").isdigit() or len(value) > 12 or int(value) < minimum:
            self.problem(name, f"must be an integer of at least {minimum}, not {value!r}")
            return None
        return int(value)

    def currency(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        if not _CURRENCY.match(value):
            self.problem(name, f"must be a 3-letter ISO 4217 code, not {value!r}")
            return None
        return value.upper()

    def json(self, plain: str, encoded: str, schema: str) -> Any:
        """The self-describing JSON in ``plain`` (JSON) or ``encoded`` (base64url).

        Returns its ``data`` after checking its ``schema`` is a 1-0-x version
        of ``schema``; ``None`` when absent or wrong (a problem is recorded).
        """
        name = plain if plain in self.values else encoded
        text = self.values.get(name)
        if not text:
            return None
        if name == encoded:
            decoded = _base64url(text)
            if decoded is None:
                self.problem(name, "is not base64url (RFC 4648 §5) encoded UTF-8 JSON")
                return None
            text = decoded
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            self.problem(name, f"is not valid JSON ({error})")
            return None
        if not isinstance(document, dict) or "data" not in document:
            self.problem(name, 'must be a self-describing JSON {"schema": ..., "data": ...}')
            return None
        given = document.get("schema")
        if not isinstance(given, str) or not _is_version_of(given, schema):
            self.problem(f"{name}.schema", f"must be {schema}N, not {given!r}")
            return None
        return document["data"]


def _base64url(text: str) -> str | None:
    """Decode base64url with or without padding (trackers strip it); ``None`` if not."""
    compact = text.strip()
    # Standard-alphabet text is tolerated: some older trackers sent it.
    compact = compact.replace("+", "-").replace("/", "_").rstrip("=")
    if len(compact) % 4 == 1 or not re.fullmatch(r"[A-Za-z0-9_-]*", compact):
        return None
    try:
        raw = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def _is_version_of(schema: str, prefix: str) -> bool:
    rest = schema.removeprefix(prefix)
    return rest != schema and rest.isdigit()


def _self_describing(
    reader: _Reader, value: Any, field: str
) -> tuple[str, str, str, dict[str, Any]] | None:
    """(vendor, name, uri, data) of an ``{"schema": "iglu:...", "data": {...}}``."""
    if not isinstance(value, dict):
        reader.problem(field, 'must be a self-describing JSON {"schema": ..., "data": ...}')
        return None
    schema, data = value.get("schema"), value.get("data")
    match = _IGLU.match(schema) if isinstance(schema, str) else None
    if match is None or not isinstance(schema, str):
        reader.problem(f"{field}.schema", f"must be an iglu: schema URI, not {schema!r}")
        return None
    if not isinstance(data, dict):
        reader.problem(f"{field}.data", "must be a JSON object")
        return None
    return match.group(1), match.group(2), schema, data


def _contexts(reader: _Reader) -> list[dict[str, Any]]:
    data = reader.json("co", "cx", CONTEXTS)
    if data is None:
        return []
    name = "co" if "co" in reader.values else "cx"
    if not isinstance(data, list):
        reader.problem(f"{name}.data", "must be a list of self-describing JSONs")
        return []
    entities: list[dict[str, Any]] = []
    for index, entity in enumerate(data):
        parsed = _self_describing(reader, entity, f"{name}.data[{index}]")
        if parsed is not None:
            entities.append({"schema": parsed[2], "data": parsed[3]})
    return entities


def _page(reader: _Reader) -> dict[str, Any]:
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


def _event(item: Mapping[str, Any], where: str) -> dict[str, Any]:
    reader = _Reader(item, where)
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


def _context(reader: _Reader, page: dict[str, Any], snowplow: dict[str, Any]) -> dict[str, Any]:
    context: dict[str, Any] = {"snowplow": snowplow}
    version = reader.text("tv")
    context["library"] = {"name": "snowplow", **({"version": version} if version else {})}
    for name, key in (("ip", "ip"), ("ua", "userAgent"), ("lang", "locale"), ("tz", "timezone")):
        value = reader.text(name)
        if value is not None:
            context[key] = value
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
    kind: str, reader: _Reader, page: dict[str, Any], snowplow: dict[str, Any]
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


def _structured(reader: _Reader) -> dict[str, Any]:
    category = reader.text("se_ca", required=True)
    action = reader.text("se_ac", required=True)
    if action is not None and len(action) > 200:
        reader.problem("se_ac", "must be at most 200 characters (it is the event name)")
    properties: dict[str, Any] = {"category": category}
    for name, key in (("se_la", "label"), ("se_pr", "property")):
        value = reader.text(name)
        if value is not None:
            properties[key] = value
    number = reader.number("se_va")
    if number is not None:
        properties["value"] = number
    return {"type": "track", "event": action, "properties": properties}


def _self_describing_event(reader: _Reader, snowplow: dict[str, Any]) -> dict[str, Any]:
    if "ue_pr" not in reader.values and "ue_px" not in reader.values:
        reader.problem("ue_pr", "a self-describing event needs ue_pr (JSON) or ue_px (base64url)")
        return {}
    envelope = reader.json("ue_pr", "ue_px", UNSTRUCT_EVENT)
    if envelope is None:
        return {}
    name = "ue_pr" if "ue_pr" in reader.values else "ue_px"
    parsed = _self_describing(reader, envelope, f"{name}.data")
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


def _transaction(reader: _Reader) -> dict[str, Any]:
    order_id = reader.ident("tr_id") if reader.text("tr_id", required=True) else None
    properties: dict[str, Any] = {
        "order_id": order_id,
        "revenue": reader.money("tr_tt", required=True),
    }
    for name, key in (("tr_tx", "tax"), ("tr_sh", "shipping")):
        amount = reader.money(name)
        if amount is not None:
            properties[key] = amount
    currency = reader.currency("tr_cu")
    if currency is not None:
        properties["currency"] = currency
    for name, key in (
        ("tr_af", "affiliation"),
        ("tr_ci", "city"),
        ("tr_st", "state"),
        ("tr_co", "country"),
    ):
        value = reader.text(name)
        if value is not None:
            properties[key] = value
    return {"type": "track", "event": ORDER_COMPLETED, "properties": properties}


def _transaction_item(reader: _Reader) -> dict[str, Any]:
    order_id = reader.ident("ti_id") if reader.text("ti_id", required=True) else None
    sku = reader.ident("ti_sk") if reader.text("ti_sk", required=True) else None
    properties: dict[str, Any] = {
        "order_id": order_id,
        "product_id": sku,
        "sku": sku,
        "price": reader.money("ti_pr", required=True),
        "quantity": reader.count("ti_qu", minimum=1) if reader.text("ti_qu", True) else None,
    }
    for name, key in (("ti_nm", "name"), ("ti_ca", "category")):
        value = reader.text(name)
        if value is not None:
            properties[key] = value
    currency = reader.currency("ti_cu")
    if currency is not None:
        properties["currency"] = currency
    return {"type": "track", "event": ORDER_ITEM, "properties": properties}
