"""The agents' steps without a broker: any partitioning, interleaving and redelivery.

``streams.sequencer`` (identity agent) and ``streams.profiles`` (profile
agent) are plain Python, so hypothesis can drive them through far more
schedules than a broker run allows: random batch sizes, by-customer
partitions, the order in which partitions make progress, messages delivered
again (at-least-once), and a crash of the identity agent that loses part of
its table writes. The result must equal the embedded runtime's, computed
independently on the same records.
"""

from __future__ import annotations

import random
import zlib
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp import customer
from cdp.generate import GenerateConfig, iter_events
from cdp.ingest import to_record
from cdp.log import Record, StoredEvent
from cdp.runtime import EmbeddedRuntime
from projections import identity, lead_score
from streams import messages
from streams.profiles import Batch
from streams.sequencer import LogRecord, Sequencer

NOW = datetime(2026, 11, 1, tzinfo=UTC)
RECORDS: list[Record] = [
    to_record(raw, NOW, "test") for raw in iter_events(GenerateConfig(seed=11, customers=12))
]


def _expected(records: list[Record]) -> tuple[dict[str, object], list[identity.Row]]:
    runtime = EmbeddedRuntime()
    runtime.apply([StoredEvent(i, r.event) for i, r in enumerate(records)])
    states = {
        c: customer.to_json(customer.CustomerState(p, runtime.leads[c]))
        for c, p in runtime.profiles.items()
    }
    return states, runtime.graph.to_rows()


def _run(records: list[Record], rng: random.Random, partitions: int, crash: bool):
    table: dict[str, object] = {}
    sequencer = Sequencer(identity.Rules())
    queues: list[list[bytes]] = [[] for _ in range(partitions)]

    def route(key: bytes, value: bytes) -> None:
        queues[zlib.crc32(key) % partitions].append(value)

    i = 0
    while i < len(records):
        n = rng.randint(1, 60)
        batch = [LogRecord(o, records[o].data, NOW) for o in range(i, min(i + n, len(records)))]
        step = sequencer.process(batch)
        for out in step.outputs:
            if out.target == "by_customer":
                route(out.key, out.value)
        if crash and rng.random() < 0.2:
            # The changelog kept only a prefix of the writes; the batch may be redone.
            kept = step.writes[: rng.randint(0, len(step.writes))]
            table.update(kept)
            sequencer = Sequencer.restore(table.items(), identity.Rules())
            i = sequencer.next_offset
            continue
        table.update(step.writes)
        i += n
    customers: dict[str, dict[str, object]] = {}
    position = [0] * partitions
    while any(position[p] < len(queues[p]) for p in range(partitions)):
        p = rng.choice([p for p in range(partitions) if position[p] < len(queues[p])])
        k = rng.randint(1, 40)
        work = Batch(lead_score.DEFAULT_RULES, customers.get)
        for value in queues[p][position[p] : position[p] + k]:
            work.apply(messages.decode_message(value))
        position[p] = min(len(queues[p]), position[p] + k)
        if rng.random() < 0.2:  # redelivery: the committed offset lagged behind
            position[p] = max(0, position[p] - rng.randint(1, 50))
        result = work.finish()
        customers.update(result.writes)
        for message in result.by_customer:
            route(message.customer.encode(), messages.encode(message))
    states = {
        c: v["state"]
        for c, v in customers.items()
        if v["into"] is None and v["state"] is not None  # type: ignore[index]
    }
    return states, sequencer.graph.to_rows()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32 - 1),
    partitions=st.sampled_from([1, 2, 4, 7]),
    shuffle=st.booleans(),
    crash=st.booleans(),
)
def test_any_schedule_gives_the_embedded_result(
    seed: int, partitions: int, shuffle: bool, crash: bool
) -> None:
    rng = random.Random(seed)
    records = list(RECORDS)
    if shuffle:
        rng.shuffle(records)
    assert _run(records, rng, partitions, crash) == _expected(records)


def test_duplicate_message_ids_are_folded_once() -> None:
    """The first copy of a messageId wins, as in the embedded log."""
    records = RECORDS[:200]
    doubled = [*records[:150], *records[50:100], *records[150:]]
    assert _run(doubled, random.Random(1), 3, crash=False) == _expected(records)


def test_undecodable_records_become_dead_letters_and_the_log_moves_on() -> None:
    sequencer = Sequencer(identity.Rules(), log_topic="cdp.log")
    good = RECORDS[0]
    step = sequencer.process(
        [LogRecord(0, b"{oops", NOW, "web"), LogRecord(1, None, NOW), LogRecord(2, good.data, NOW)]
    )
    letters = [o for o in step.outputs if o.target == "deadletters"]
    assert len(letters) == 2 and step.dead_letters == 2 and step.events == 1
    assert sequencer.next_offset == 3
    assert b'"origin":"cdp.log@0"' in letters[0].value and b"not JSON" in letters[0].value
