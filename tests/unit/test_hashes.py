"""``HashSet`` (the embedded log's dedup set) answers exactly like a Python set."""

from __future__ import annotations

from array import array

from hypothesis import given, settings
from hypothesis import strategies as st

from cdp.adapters.duckdb import hashes
from cdp.adapters.duckdb.hashes import HashSet

INT64 = st.integers(-(2**63), 2**63 - 1)


@settings(max_examples=60)
@given(
    first=st.lists(INT64, max_size=50),
    added=st.lists(INT64, max_size=400),
    probes=st.lists(INT64, max_size=50),
)
def test_membership_equals_a_set(first: list[int], added: list[int], probes: list[int]) -> None:
    saved = hashes.RECENT
    hashes.RECENT = 7  # many runs and merges even for small inputs
    try:
        made = HashSet.from_sorted_bytes(array("q", sorted(set(first))).tobytes())
        expected = set(first)
        for value in added:
            made.add(value)
            expected.add(value)
        assert len(made._runs) <= 12
        for value in [*expected, *probes]:
            assert (value in made) == (value in expected)
    finally:
        hashes.RECENT = saved


def test_an_empty_set_holds_nothing() -> None:
    assert 0 not in HashSet.from_sorted_bytes(b"")
    assert 5 in HashSet([9, 5, 1])
