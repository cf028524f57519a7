"""Request bodies of the collector endpoints, to Segment events (all or nothing).

A ``tp2`` POST carries a payload_data 1-0-x document whose ``data`` lists the
events; a ``GET /i`` pixel carries one event as its querystring. The app ids
can be read before the items are checked, so the routes authenticate first.
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

import orjson

from connectors.sources.snowplow.mapping import segment_event
from connectors.sources.snowplow.protocol import (
    PAYLOAD_DATA,
    PIXEL_ENDPOINT,
    POST_ENDPOINT,
    PayloadRejected,
    Problem,
    is_version_of,
)


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
    if not isinstance(schema, str) or not is_version_of(schema, PAYLOAD_DATA):
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
            events.append(segment_event(item, f"{where}."))
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
    return segment_event(dict(params), "")


def dead_letter_events(endpoint: str, body: bytes) -> list[dict[str, Any]]:
    """Map a request the routes kept as a dead letter again (``cdp deadletter retry``).

    ``endpoint`` is the one the routes stored: ``snowplow:tp2`` keeps the body,
    ``snowplow:i`` the querystring.
    """
    if endpoint == POST_ENDPOINT:
        return to_events(payload_items(body))
    if endpoint == PIXEL_ENDPOINT:
        text = body.decode("utf-8", errors="replace")
        return [query_event(parse_qsl(text, keep_blank_values=True))]
    raise PayloadRejected([Problem("", f"{endpoint!r} is not a Snowplow endpoint")])
