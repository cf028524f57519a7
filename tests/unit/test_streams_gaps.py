"""``streams.gaps``: the bookkeeping that makes a skipped range come again."""

from __future__ import annotations

from streams.gaps import Cursors, Seeks


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_gap_asks_for_one_seek_until_it_is_late() -> None:
    clock = Clock()
    seeks = Seeks(reseek_after=3.0, clock=clock)
    assert seeks.gap("log-0", 425) is True
    assert seeks.gap("log-0", 425) is False  # asked already, not late yet
    assert seeks.due() == []
    clock.now += 3.0
    assert seeks.due() == [("log-0", 425)]  # nothing came back: ask again
    assert seeks.due() == []  # ... once per period
    assert seeks.gap("log-0", 430) is True  # a different place is a new seek


def test_the_expected_record_settles_the_seek() -> None:
    clock = Clock()
    seeks = Seeks(reseek_after=3.0, clock=clock)
    seeks.gap("p1", 10)
    seeks.arrived("p1", 9)
    assert len(seeks) == 1
    seeks.arrived("p1", 10)
    assert len(seeks) == 0
    clock.now += 10
    assert seeks.due() == []


def test_revoked_partitions_owe_nothing() -> None:
    seeks = Seeks(clock=Clock())
    seeks.gap("p1", 1)
    seeks.gap("p2", 2)
    seeks.forget(["p1"])
    assert len(seeks) == 1


def test_cursors_admit_in_order_redeliveries_and_stop_at_a_gap() -> None:
    cursors = Cursors()
    cursors.start("p0", 5)
    cursors.start("p1", 0)
    cursors.new_batch()
    admitted = [
        (tp, o)
        for tp, o in [("p0", 3), ("p0", 5), ("p1", 0), ("p0", 6), ("p0", 9), ("p1", 1), ("p0", 7)]
        if cursors.admit(tp, o)
    ]
    # 3 is a redelivery (folded, cursor stays); 9 is past 7: p0 stops there, p1 goes on
    assert admitted == [("p0", 3), ("p0", 5), ("p1", 0), ("p0", 6), ("p1", 1)]
    assert cursors.next == {"p0": 7, "p1": 2}
    assert cursors.gapped == {"p0": 7}
    cursors.new_batch()  # the seek back brings 7 again
    assert cursors.admit("p0", 7) and cursors.next["p0"] == 8


def test_forgotten_partitions_must_be_started_again() -> None:
    cursors = Cursors()
    cursors.start("p0", 1)
    cursors.forget(["p0"])
    assert not cursors.known("p0")
