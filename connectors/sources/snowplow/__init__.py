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

The package: ``protocol`` (schema URIs, endpoints, limits, ``PayloadRejected``),
``params`` (typed access to one event's string parameters), ``mapping`` (one
tracker event to one Segment event) and ``payload`` (request bodies to events).
The HTTP routes are ``cdp.http.snowplow``.
"""

from __future__ import annotations

from connectors.sources.snowplow.mapping import ORDER_COMPLETED, ORDER_ITEM, PAGE_PINGED
from connectors.sources.snowplow.payload import (
    app_ids,
    dead_letter_events,
    loose_app_ids,
    payload_items,
    query_event,
    to_events,
)
from connectors.sources.snowplow.protocol import (
    CONTEXTS,
    EVENT_TYPES,
    MAX_ID_LENGTH,
    MONEY_PLACES,
    MONEY_WHOLE_DIGITS,
    PAYLOAD_DATA,
    PIXEL_ENDPOINT,
    POST_ENDPOINT,
    UNSTRUCT_EVENT,
    PayloadRejected,
    Problem,
)

__all__ = [
    "CONTEXTS",
    "EVENT_TYPES",
    "MAX_ID_LENGTH",
    "MONEY_PLACES",
    "MONEY_WHOLE_DIGITS",
    "ORDER_COMPLETED",
    "ORDER_ITEM",
    "PAGE_PINGED",
    "PAYLOAD_DATA",
    "PIXEL_ENDPOINT",
    "POST_ENDPOINT",
    "UNSTRUCT_EVENT",
    "PayloadRejected",
    "Problem",
    "app_ids",
    "dead_letter_events",
    "loose_app_ids",
    "payload_items",
    "query_event",
    "to_events",
]
