"""``KafkaProfileLookups``: the ``ProfileLookups`` port (``cdp.ports.lookups``) of
``cdp serve --kafka``, answered from the topics.

An API replica holds no DuckDB engine; it follows ``cdp.profiles``,
``cdp.identity.assignments``, ``cdp.identity.merges`` and ``cdp.log`` into
memory (``cdp.adapters.kafka.follower.TopicFollower``) and answers
``GET /v1/profiles/{type}:{value}`` for any customer from there, consistent
within the follower's lag (``lag_seconds``, on ``/health``). The answer is
built by ``cdp.read.answer`` as in embedded mode, with these differences
(docs/api.md): times are in UTC, ``recent_events`` holds at most ``RING``
events, ``segments`` is empty and ``freshness.checkpoint_offset`` null (the
workers fold asynchronously; no checkpoint is known here), and ``freshness``
also says how far the workers are behind the input log (``workers_freshness``,
from a ``cdp.adapters.kafka.groups.GroupWatcher`` of their consumer group, so
no lookup waits on the broker). Segments need the
event history, which in distributed mode lives in the Parquet archive:
``/v1/segments`` answers 503 and points at ``cdp segment run NAME --archive DIR``.
"""

from __future__ import annotations

import time
from collections.abc import Container
from datetime import UTC, date, datetime
from typing import Any

import orjson

from cdp.adapters.kafka.follower import ProfileTopics, TopicFollower
from cdp.adapters.kafka.groups import GroupStatus, GroupWatcher
from cdp.adapters.kafka.own_writes import OwnWrites
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.errors import LogUnavailableError, NotFoundError
from cdp.read.answer import encode, profile_answer
from cdp.read.keys import not_found, parse
from projections import lead_score

STATE_COLUMNS = ("profile_state", "lead_state")
"""Snapshot columns that are fold states, not profile columns."""
_TIMES = ("score_time", "last_order_at", "last_seen", "last_contacted_at")
_SEGMENTS_UNAVAILABLE = (
    "segments are not served in Kafka mode: run them over the Parquet archive "
    "(cdp segment run NAME --archive DIR)"
)


def workers_freshness(
    status: GroupStatus | None, reader_lag: float, now: float | None = None
) -> dict[str, Any]:
    """The fields Kafka mode adds to ``freshness`` (docs/api.md, "Freshness").

    ``unfolded_events``: records of the input log and of ``events.by-customer``
    the workers have not folded yet (null when not measured: no broker answer
    yet); ``unfolded_age_seconds``: how long ago the oldest of them was
    appended (null when none); ``workers``: members of the workers' group;
    ``measured_seconds_ago``: age of that measurement; ``reader_lag_seconds``:
    how far this replica's own reading of the topics may be behind."""
    at = time.time() if now is None else now
    reader = None if reader_lag == float("inf") else _round(reader_lag)
    if status is None:
        return {
            "unfolded_events": None,
            "unfolded_age_seconds": None,
            "workers": None,
            "measured_seconds_ago": None,
            "reader_lag_seconds": reader,
        }
    return {
        "unfolded_events": status.lag(),
        "unfolded_age_seconds": _round(status.oldest_age(at)),
        "workers": len(status.members),
        "measured_seconds_ago": _round(max(0.0, at - status.measured_at)),
        "reader_lag_seconds": reader,
    }


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def typed_facts(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A snapshot's JSON values with the dates and times the answer computes from
    typed as the ``customers`` table types them."""
    facts = dict(snapshot)
    for name in _TIMES:
        if isinstance(facts.get(name), str):
            facts[name] = datetime.fromisoformat(facts[name])
    if isinstance(facts.get("birthday"), str):
        facts["birthday"] = date.fromisoformat(facts["birthday"])
    facts["contacts_by_day"] = [
        {"day": date.fromisoformat(d["day"]), "contacts": d["contacts"]}
        for d in facts.get("contacts_by_day") or ()
    ]
    return facts


class KafkaProfileLookups:
    """Profile lookups over a ``TopicFollower`` of the topics (see the module docstring)."""

    def __init__(
        self,
        kafka: KafkaSettings,
        rules: lead_score.Rules,
        workers: GroupWatcher | None = None,
        erased: Container[str] = (),
        own_writes: OwnWrites | None = None,
    ) -> None:
        self.rules = rules
        #: Customers erased whose derived copies are not rebuilt yet: never served.
        self.erased = erased
        self.follower = TopicFollower(
            kafka.bootstrap,
            ProfileTopics.with_prefix(kafka.prefix, kafka.input_prefix),
            own_writes=own_writes,
        )
        #: The workers' consumer group, watched for ``freshness`` (None: not reported).
        self.workers = workers

    def warm(self) -> None:
        """Start following the topics (from their beginning) and watching the workers'
        group, in background threads."""
        self.follower.start()
        if self.workers is not None:
            self.workers.start()

    def close(self) -> None:
        """Stop following the topics and watching the group."""
        if self.workers is not None:
            self.workers.close()
        self.follower.close()

    def profile(self, text: str, recent: int) -> tuple[bytes, str]:
        """(the answer as JSON, the identifier key) for ``text``; ``ValueError``/``NotFoundError``."""
        identifier = parse(text)
        held = self.follower.find(identifier)
        if held.customer_id in self.erased:
            raise NotFoundError(not_found(identifier))
        snapshot = held.snapshot
        stored = {
            k: v for k, v in snapshot.items() if k not in STATE_COLUMNS and k != "customer_id"
        }
        lead_json = snapshot.get("lead_state")
        answer = profile_answer(
            matched=identifier,
            customer_id=held.customer_id,
            identifiers=held.identifiers,
            stored=stored,
            facts=typed_facts(stored),
            lead_state=lead_score.from_json(orjson.loads(lead_json)) if lead_json else None,
            rules=self.rules,
            as_of=held.as_of,
            zone=UTC,
            merges=held.merges,
            recent_events=held.recent_events[:recent],
            segments=[],
            freshness={"checkpoint_offset": None, "log_offset": held.log_offset},
        )
        if self.workers is not None:
            answer["freshness"] = {
                **answer["freshness"],
                **workers_freshness(self.workers.latest(), self.lag_seconds()),
            }
        return encode(answer), identifier

    def in_memory(self, recent: int) -> bool:
        """Answers never touch a database here: always cheap enough for the event loop."""
        del recent
        return True

    def segment_list(self) -> list[dict[str, Any]]:
        """503: see the module docstring."""
        raise LogUnavailableError(_SEGMENTS_UNAVAILABLE)

    def segment_page(self, name: str, limit: int, after: str | None) -> dict[str, Any]:
        """503: see the module docstring."""
        raise LogUnavailableError(_SEGMENTS_UNAVAILABLE)

    def lag_seconds(self) -> float:
        """Upper bound of how far behind the broker the answers are."""
        return self.follower.lag_seconds()
