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
from datetime import UTC, datetime
from typing import TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.demo.generate import GenerateConfig, iter_events
from cdp.ports.log import Record, StoredEvent
from cdp.runtime import customer
from cdp.runtime.embedded import EmbeddedRuntime
from cdp.services.ingest import to_record
from projections import identity, lead_score
from streams import messages
from streams.gaps import Cursors
from streams.profiles import Batch
from streams.sequencer import LogRecord, Sequencer

NOW = datetime(2026, 11, 1, tzinfo=UTC)
T = TypeVar("T")
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


def _skipping(rng: random.Random, items: list[T], skip: bool) -> list[T]:
    """``items``, or (when ``skip``, sometimes) with a range missing: the consumer skipped it."""
    if not skip or len(items) < 3 or rng.random() < 0.7:
        return items
    a = rng.randint(1, len(items) - 2)
    return items[:a] + items[rng.randint(a + 1, len(items) - 1) :]


def _run(
    records: list[Record], rng: random.Random, partitions: int, crash: bool, skip: bool = False
):
    """Both steps under a random schedule; ``skip``: the consumer sometimes loses a range
    of a batch, and the agents must notice (``Step.gap``, ``Cursors``) and read it again."""
    table: dict[str, object] = {}
    sequencer = Sequencer(identity.Rules())
    queues: list[list[bytes]] = [[] for _ in range(partitions)]

    def route(sent: list[tuple[str, bytes]]) -> None:
        # As the agents send them: one bundle per partition per batch.
        for p, record in messages.bundles(sent, partitions).items():
            queues[p].append(record)

    i = 0
    while i < len(records):
        n = rng.randint(1, 60)
        batch = [LogRecord(o, records[o].data, NOW) for o in range(i, min(i + n, len(records)))]
        step = sequencer.process(_skipping(rng, batch, skip))
        route([(o.key.decode(), o.value) for o in step.outputs if o.target == "by_customer"])
        if crash and rng.random() < 0.2:
            # The changelog kept only a prefix of the writes; the batch may be redone.
            kept = step.writes[: rng.randint(0, len(step.writes))]
            table.update(kept)
            sequencer = Sequencer.restore(table.items(), identity.Rules())
            i = sequencer.next_offset
            continue
        table.update(step.writes)
        assert step.gap is None or step.gap[0] == sequencer.next_offset
        i = sequencer.next_offset  # after a gap: the seek back
    customers: dict[str, dict[str, object]] = {}
    position = [0] * partitions
    cursors = Cursors()
    for p in range(partitions):
        cursors.start(p, 0)
    while any(position[p] < len(queues[p]) for p in range(partitions)):
        p = rng.choice([p for p in range(partitions) if position[p] < len(queues[p])])
        k = rng.randint(1, 40)
        work = Batch(lead_score.DEFAULT_RULES, customers.get)
        cursors.new_batch()
        delivered = list(range(position[p], min(len(queues[p]), position[p] + k)))
        for offset in _skipping(rng, delivered, skip):
            if cursors.admit(p, offset):
                for message in messages.decode_record(queues[p][offset]):
                    work.apply(message)
        position[p] = cursors.next[p] if p in cursors.gapped else delivered[-1] + 1
        if rng.random() < 0.2:  # redelivery: the committed offset lagged behind
            position[p] = max(0, position[p] - rng.randint(1, 50))
        result = work.finish()
        customers.update(result.writes)
        route([(m.customer, messages.encode(m)) for m in result.by_customer])
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
    skip=st.booleans(),
)
def test_any_schedule_gives_the_embedded_result(
    seed: int, partitions: int, shuffle: bool, crash: bool, skip: bool
) -> None:
    rng = random.Random(seed)
    records = list(RECORDS)
    if shuffle:
        rng.shuffle(records)
    assert _run(records, rng, partitions, crash, skip) == _expected(records)


def test_a_skipped_range_is_noticed_and_read_again() -> None:
    """The consumer lost offsets 5..9: the sequencer stops at 5 and says so."""
    sequencer = Sequencer(identity.Rules())
    step = sequencer.process([LogRecord(o, RECORDS[o].data, NOW) for o in [*range(5), 10, 11]])
    assert step.gap == (5, 10) and step.events == 5 and sequencer.next_offset == 5
    again = sequencer.process([LogRecord(o, RECORDS[o].data, NOW) for o in range(3, 12)])
    assert again.gap is None and again.events == 7 and sequencer.next_offset == 12


def test_skipped_ranges_on_both_sides_still_give_the_embedded_result() -> None:
    records = RECORDS[:300]
    assert _run(records, random.Random(5), 3, crash=True, skip=True) == _expected(records)


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
