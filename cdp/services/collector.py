"""Segment HTTP API semantics, independent of the web framework.

- ``/v1/track``, ``/identify``, ``/page``, ``/screen``, ``/group``, ``/alias``:
  one event; its ``type`` is the endpoint's (a different explicit ``type`` is
  an error). ``/v1/batch`` (alias ``/v1/import``): ``{"batch": [...]}`` whose
  batch-level ``context`` and ``integrations`` are merged into every item (the
  item's own keys win) and whose ``sentAt`` applies to items without one.
- The write key comes from HTTP Basic auth (username, empty password) or a
  ``writeKey`` field in the body.
- Limits: 32 KB per event, 500 KB per request (after gzip decompression).
- All or nothing: one bad item rejects the whole request, and the error names
  every bad item by index and field.
- ``receivedAt`` is the server's; ``timestamp`` is corrected as
  ``receivedAt − (sentAt − originalTimestamp)`` (``schemas.stamp``); an
  event dated more than 24 h after ``receivedAt`` is refused
  (``schemas.time_bounds``).
- A message without ``messageId`` gets its own id (``cdp.services.message_ids``), as
  Segment assigns one: identical events sent twice are two events.
- Ids, event names and page/screen names must be strings without NUL; a
  gzip body must be gzip to its last byte (no trailing junk).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from cdp.errors import CdpError, EventValidationError, TerminalError
from cdp.ports.log import Record
from cdp.services.ingest import to_record
from cdp.services.message_ids import MessageIds, server_message_id
from schemas import MAX_EVENT_BYTES
from schemas.stamp import lacks_message_id

MAX_REQUEST_BYTES = 500 * 1024
SINGLE_TYPES = ("track", "identify", "page", "screen", "group", "alias")
BATCH_ENDPOINTS = ("batch", "import")
#: analytics.js (Segment.io plugin) posts to ``{apiHost}/`` + the type's first
#: letter, and batches to ``/b``; served under /v1/ as aliases of the long paths.
SHORT_PATHS = {
    "t": "track",
    "i": "identify",
    "p": "page",
    "s": "screen",
    "g": "group",
    "a": "alias",
    "b": "batch",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a request: which item (None: the request), field, why."""

    index: int | None
    field: str
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}

    def __str__(self) -> str:
        where = f"batch[{self.index}]" if self.index is not None else "request"
        return f"{where}.{self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class RequestRejected(TerminalError, CdpError):
    """The request breaks the API contract; ``status`` is 400 or 413."""

    def __init__(self, problems: list[Problem], status: int = 400) -> None:
        self.problems = problems
        self.status = status
        super().__init__("; ".join(str(p) for p in problems))


GZIP_MAGIC = b"\x1f\x8b"


def _gunzip(body: bytes, limit: int) -> bytes:
    """Every gzip member of ``body`` inflated (at most ``limit`` + 1 bytes).

    RFC 1952 allows several members one after another (``gzip.decompress``
    reads them all); anything else after a member would be dropped silently,
    so it is refused, as is a body cut short.
    """
    parts: list[bytes] = []
    size = 0
    rest = body
    while True:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = inflater.decompress(rest, limit + 1 - size)
        except zlib.error as error:
            raise RequestRejected(
                [Problem(None, "", f"body is not valid gzip ({error})")]
            ) from None
        parts.append(part)
        size += len(part)
        if size > limit:
            break  # the caller answers 413
        if not inflater.eof:
            raise RequestRejected([Problem(None, "", "gzip body is truncated")])
        rest = inflater.unused_data
        if not rest:
            break
        if not rest.startswith(GZIP_MAGIC):
            raise RequestRejected(
                [
                    Problem(
                        None,
                        "",
                        f"gzip body has {len(rest)} bytes of trailing data that is not gzip "
                        "after the end of its gzip stream",
                    )
                ]
            )
    return b"".join(parts)


def decompress(body: bytes, encoding: str | None, limit: int = MAX_REQUEST_BYTES) -> bytes:
    """The request body, gunzipped if ``Content-Encoding: gzip``, at most ``limit`` bytes."""
    coding = (encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        data = body
    elif coding == "gzip":
        data = _gunzip(body, limit)
    else:
        raise RequestRejected(
            [Problem(None, "", f"Content-Encoding {encoding!r} is not supported; use gzip")], 415
        )
    if len(data) > limit:
        raise RequestRejected(
            [Problem(None, "", f"request is over the {limit // 1024} KB limit")], 413
        )
    return data


def parse(endpoint: str, body: bytes) -> tuple[list[dict[str, Any]], str | None]:
    """The request's events (batch context merged in) and any ``writeKey`` in it."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestRejected([Problem(None, "", f"body is not valid JSON ({error})")]) from None
    if not isinstance(document, dict):
        raise RequestRejected([Problem(None, "", "body must be a JSON object")])
    write_key = document.pop("writeKey", None)
    write_key = write_key if isinstance(write_key, str) else None
    if endpoint in SINGLE_TYPES:
        given = document.get("type")
        if given is not None and given != endpoint:
            raise RequestRejected(
                [Problem(None, "type", f"{given!r} does not match the endpoint /v1/{endpoint}")]
            )
        document["type"] = endpoint
        try:
            size = len(orjson.dumps(document))
        except orjson.JSONEncodeError as error:  # nested deeper than orjson writes (254)
            raise RequestRejected(
                [Problem(None, "", f"event cannot be stored as JSON ({error})")]
            ) from None
        if size > MAX_EVENT_BYTES:
            raise RequestRejected(
                [Problem(None, "", f"event is over the {MAX_EVENT_BYTES // 1024} KB limit")], 413
            )
        return [document], write_key
    if endpoint not in BATCH_ENDPOINTS:
        raise RequestRejected([Problem(None, "", f"unknown endpoint /v1/{endpoint}")], 404)
    items = document.get("batch")
    if not isinstance(items, list) or not items:
        raise RequestRejected([Problem(None, "batch", "must be a non-empty list of events")])
    return _merge_batch(document, items), write_key


def _merge_batch(document: dict[str, Any], items: list[Any]) -> list[dict[str, Any]]:
    context = document.get("context") if isinstance(document.get("context"), dict) else None
    integrations = document.get("integrations")
    integrations = integrations if isinstance(integrations, dict) else None
    sent_at = document.get("sentAt")
    merged: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            merged.append(item)  # reported by validation with its index
            continue
        event = dict(item)
        # analytics.js repeats the write key in every batched event: a secret
        # must not be copied into the log.
        event.pop("writeKey", None)
        if context and isinstance(event.get("context", {}), dict):
            event["context"] = {**context, **event.get("context", {})}
        if integrations and isinstance(event.get("integrations", {}), dict):
            event["integrations"] = {**integrations, **event.get("integrations", {})}
        if sent_at is not None and "sentAt" not in event:
            event["sentAt"] = sent_at
        merged.append(event)
    return merged


def to_records(
    items: list[dict[str, Any]],
    received_at: datetime,
    source: str | None,
    single: bool = False,
    server_received_at: bool = False,
    message_ids: MessageIds = server_message_id,
) -> list[Record]:
    """Validate every item; ``RequestRejected`` naming each bad one (all or nothing).

    With ``server_received_at`` (the live HTTP API) a ``receivedAt`` sent by the
    client is replaced by the server's, as Segment does; imports and webhooks
    keep theirs. An item without ``messageId`` gets ``message_ids(index)``:
    by default a fresh server id, so identical items are distinct events.
    """
    records: list[Record] = []
    problems: list[Problem] = []
    for index, item in enumerate(items):
        where = None if single else index
        if not isinstance(item, dict):
            problems.append(Problem(where, "", "an event must be a JSON object"))
            continue
        raw = item
        if server_received_at and "receivedAt" in raw:
            raw = {k: v for k, v in raw.items() if k != "receivedAt"}
        try:
            message_id = message_ids(index) if lacks_message_id(raw) else None
            records.append(to_record(raw, received_at, source, message_id=message_id))
        except EventValidationError as error:
            problems.extend(Problem(where, p.path, p.reason) for p in error.problems)
    if problems:
        raise RequestRejected(problems)
    return records
