"""By-customer bundles, identity journals and the profile agent's state cache, no broker.

The agents send a batch's by-customer messages as one record per partition
(``streams.messages.bundles``) and the identity table as one journal per
batch (``streams.sequencer``); these tests bind both to what they replace:
the messages one by one, keyed by customer, and the table of rows and seen
ids under their own keys. ``States`` must give exactly what decoding gives.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.demo.generate import GenerateConfig, iter_events
from cdp.errors import MessageError
from cdp.runtime import customer
from cdp.services.ingest import to_record
from projections import identity, lead_score
from streams import messages
from streams.profiles import States
from streams.sequencer import LogRecord, Sequencer

NOW = datetime(2026, 11, 1, tzinfo=UTC)
RECORDS = [to_record(raw, NOW, "test") for raw in iter_events(GenerateConfig(seed=3, customers=8))]

customers = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
message = st.one_of(
    st.builds(messages.merge_out_message, customers, customers, st.integers(0, 10**9)),
    st.builds(
        messages.event_message,
        customers,
        st.integers(0, 10**9),
        st.sampled_from([RECORDS[0].data, RECORDS[1].data]),
    ),
    st.builds(
        messages.absorb_message,
        customers,
        customers,
        st.none() | st.just({"profile": {"n": 1}}),
        st.lists(customers, max_size=3).map(tuple),
    ),
)


def _comparable(m: messages.ByCustomer) -> messages.ByCustomer:
    """An event's bytes parsed, as ``decode_record`` gives them."""
    return messages.decode_message(messages.encode(m))


@settings(max_examples=60, deadline=None)
@given(st.lists(message, max_size=30), st.sampled_from([1, 2, 4, 7]))
def test_bundles_carry_every_message_in_order_to_the_keyed_partition(
    sent: list[messages.ByCustomer], partitions: int
) -> None:
    records = messages.bundles([(m.customer, messages.encode(m)) for m in sent], partitions)
    keyed = DefaultPartitioner()
    for p in range(partitions):
        # The partition a message keyed by its customer id would have gone to.
        want = [
            _comparable(m)
            for m in sent
            if keyed(m.customer.encode(), list(range(partitions)), None) == p
        ]
        got = messages.decode_record(records[p]) if p in records else []
        assert got == want


def test_a_record_holding_one_bare_message_is_still_read() -> None:
    """The format before bundles: one message per record, keyed by the customer."""
    bare = messages.encode(messages.merge_out_message("c-1", "c-2", 7))
    assert messages.decode_record(bare) == [messages.decode_message(bare)]


@pytest.mark.parametrize("data", [b"{oops", b"[1]", b'[{"kind": "nope", "customer": "c"}]'])
def test_an_unreadable_record_is_a_message_error(data: bytes) -> None:
    with pytest.raises(MessageError):
        messages.decode_record(data)


def _log(offsets: range) -> list[LogRecord]:
    return [LogRecord(o, RECORDS[o].data, NOW) for o in offsets]


def test_one_journal_per_batch_restores_the_graph_exactly() -> None:
    """Any prefix of the journals restores the state after that many batches."""
    sequencer = Sequencer(identity.Rules())
    table: dict[str, object] = {}
    cuts = [0, 40, 41, 90, 150, len(RECORDS)]
    for a, b in itertools.pairwise(cuts):
        step = sequencer.process(_log(range(a, b)))
        assert len(step.writes) == 1  # one changelog record for the whole batch
        table.update(step.writes)
        restored = Sequencer.restore(table.items(), identity.Rules())
        assert restored.next_offset == b == sequencer.next_offset
        assert restored.graph.to_rows() == sequencer.graph.to_rows()
        assert restored.seen == sequencer.seen


def test_a_table_of_the_format_before_journals_is_restored_with_new_journals_on_top() -> None:
    whole = Sequencer(identity.Rules())
    first = whole.process(_log(range(100)))
    ((_, journal),) = first.writes
    # The earlier format: rows and seen ids under their own keys, one "journal".
    old: dict[str, object] = {"journal": journal}
    for key, value in journal["rows"]:
        old[key] = value
    for message_id in journal["seen"]:
        old["m:" + message_id] = 1
    later = whole.process(_log(range(100, len(RECORDS))))
    restored = Sequencer.restore([*old.items(), *later.writes], identity.Rules())
    assert restored.next_offset == len(RECORDS)
    assert restored.graph.to_rows() == whole.graph.to_rows()
    assert restored.seen == whole.seen


def test_the_state_cache_decodes_unless_it_holds_the_very_object_written() -> None:
    state = customer.fold(None, [r.event for r in RECORDS[:20]], lead_score.DEFAULT_RULES)
    written = customer.to_json(state)
    states = States(size=2)
    states.remember("c-1", written, state)
    assert states.decode("c-1", written) is state  # the object written: no decode
    equal_copy = customer.to_json(state)  # what another store reads back
    assert states.decode("c-1", equal_copy) == state
    assert states.decode("c-1", equal_copy) is states.decode("c-1", equal_copy)
    states.remember("c-2", written, state)
    states.remember("c-3", written, state)  # size 2: c-1 goes
    assert states.decode("c-1", written) is not state
