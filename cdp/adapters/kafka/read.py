"""The read API's lookups in Kafka mode: answered from the compacted topics.

``cdp serve --kafka`` holds no DuckDB engine; every API replica follows
``cdp.profiles``, ``cdp.identity.assignments`` and ``cdp.identity.merges``
into memory (``cdp.adapters.kafka.profiles.ProfileReader``) and answers
``GET /v1/profiles/{type}:{value}`` for any customer from there, consistent
within the reader's lag (``freshness.lag_seconds`` in each answer, and on
``/health``). Segments need the event history, which in distributed mode lives
in the Parquet archive: ``/v1/segments`` answers 503 and points at
``cdp segment run NAME --archive DIR``.
"""

from __future__ import annotations

from typing import Any

from cdp.adapters.kafka.profiles import ProfileReader, ProfileTopics
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.errors import LogUnavailableError
from projections import lead_score
from schemas.identifiers import key, parse_key

_SEGMENTS_UNAVAILABLE = (
    "segments are not served in Kafka mode: run them over the Parquet archive "
    "(cdp segment run NAME --archive DIR)"
)


class KafkaLookups:
    """The read router's lookup interface over a ``ProfileReader`` of the topics."""

    def __init__(self, kafka: KafkaSettings, rules: lead_score.Rules) -> None:
        self.reader = ProfileReader(kafka.bootstrap, ProfileTopics.with_prefix(kafka.prefix), rules)

    def warm(self) -> None:
        """Start following the topics (from their beginning) in a background thread."""
        self.reader.start()

    def close(self) -> None:
        """Stop following the topics."""
        self.reader.close()

    def profile(self, text: str, recent: int) -> tuple[dict[str, Any], str]:
        """(the answer, the identifier key) for ``text``; ``ValueError``/``NotFoundError``."""
        if text.startswith("cus_"):
            identifier = text
        else:
            kind, value = parse_key(text)
            identifier = key(kind, value)
        answer = dict(self.reader.lookup(identifier))
        lag = answer.pop("lag_seconds", None)
        answer.setdefault("recent_events", [])  # the event history is in the archive
        answer.setdefault("segments", [])
        answer["freshness"] = {"lag_seconds": lag, "source": "kafka"}
        del recent  # recent events are not kept in the compacted topics
        return answer, identifier

    def in_memory(self, recent: int) -> bool:
        """Answers never touch a database here: always cheap enough for the event loop."""
        del recent
        return True

    def segment_list(self) -> list[dict[str, Any]]:
        raise LogUnavailableError(_SEGMENTS_UNAVAILABLE)

    def segment_page(self, name: str, limit: int, after: str | None) -> dict[str, Any]:
        raise LogUnavailableError(_SEGMENTS_UNAVAILABLE)

    def lag_seconds(self) -> float:
        """Upper bound of how far behind the broker the answers are."""
        return self.reader.lag_seconds()
