"""Kafka records as rows of the archive's datasets (``cdp.adapters.archive.layout``).

``event_row`` turns a record of the log topic into an ``events`` row (the
stored event's fields, its JSON verbatim, and ``duplicate_of``: the offset of
the first copy of its ``messageId``, from ``FirstCopies``); ``record_row``
turns a record of another topic into a generic key/value row. Each returns the
row's UTC date too: the partition the row is filed under.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from cdp.adapters.archive.layout import resolve
from cdp.adapters.kafka.codec import id_digest, open_value, source_of
from cdp.errors import ArchiveError, EventValidationError
from cdp.services.privacy.sealing import SealError
from schemas import decode_stored


def _utc(milliseconds: int | None) -> datetime:
    if milliseconds is None or milliseconds < 0:  # no timestamp on the record
        return datetime.now(UTC)
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


class FirstCopies:
    """``messageId`` → offset of its first copy in the log topic (blake2b-128 keys).

    Rebuilt at start from the recorded events files, then kept current.
    """

    def __init__(self, root: Path, files: list[str]) -> None:
        self.index: dict[bytes, int] = {}
        if files:
            con = duckdb.connect(config={"memory_limit": "256MB"})
            try:
                cursor = con.execute(
                    'SELECT message_id, "offset" FROM read_parquet(?) '
                    'WHERE duplicate_of IS NULL ORDER BY "offset"',
                    [[str(resolve(root, f)) for f in files]],
                )
                # In parts: the index keeps 16-byte digests, not every row's tuple at once.
                while rows := cursor.fetchmany(50_000):
                    self.index.update((id_digest(m), int(o)) for m, o in rows)
            finally:
                con.close()

    def first(self, message_id: str, offset: int) -> int:
        """The offset of the first copy of ``message_id`` (``offset`` itself if new)."""
        return self.index.setdefault(id_digest(message_id), offset)


def event_row(
    message: Any,
    first_copies: FirstCopies,
    secret_of: Callable[[bytes], bytes | None] | None = None,
) -> tuple[str, dict[str, Any]] | None:
    """The ``events`` row of a log-topic record, and its date; ``None`` when the record
    is sealed under a destroyed key (the person was erased); ``ArchiveError`` if it is
    not a stored event."""
    try:
        data = open_value(message.value, secret_of)
        if data is None:
            return None
        event = decode_stored(data)
    except (EventValidationError, SealError) as error:
        raise ArchiveError(
            f"{message.topic}[{message.partition}] offset {message.offset} is not a stored "
            f"event ({error}); the log topic must hold only validated events"
        ) from None
    fields = event.__dict__
    first = first_copies.first(fields["message_id"], message.offset)
    row = {
        "offset": message.offset,
        "message_id": fields["message_id"],
        "type": fields["type"],
        "event": fields.get("event"),
        "timestamp": fields["timestamp"],
        "received_at": fields["received_at"],
        "user_id": fields["user_id"],
        "anonymous_id": fields["anonymous_id"],
        "source": source_of(message.headers),
        "schema_version": fields["schema_version"],
        "payload": data.decode(),
        "duplicate_of": None if first == message.offset else first,
    }
    return fields["timestamp"].astimezone(UTC).date().isoformat(), row


def text_of(message: Any, data: bytes | None, what: str) -> str | None:
    """``data`` as UTF-8 text; ``ArchiveError`` naming the record if it is not."""
    if data is None:
        return None
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise ArchiveError(
            f"{message.topic}[{message.partition}] offset {message.offset}: {what} is not UTF-8"
        ) from None


def record_row(message: Any) -> tuple[str, dict[str, Any]]:
    """The key/value row of a record of another topic, and its date (when published)."""
    published = _utc(message.timestamp)
    row = {
        "kafka_partition": message.partition,
        "kafka_offset": message.offset,
        "key": text_of(message, message.key, "key"),
        "value": text_of(message, message.value, "value"),
        "published_at": published,
    }
    return published.date().isoformat(), row
