"""Membership history across runs with data appended in between, and
``current_segments`` for the profile lookup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from cdp.services.segment_lang import SegmentCatalog, current_segments, history
from tests.factories import T0, raw_order

pytestmark = pytest.mark.integration

RECENT_BUYERS = """
name: recent_buyers
description: Ordered in the last $days days.
params: {days: 10}
rules:
  event: {name: Order Completed, within_days: $days}
"""


def add(engine: Engine, *orders: tuple[str, float]) -> None:
    """Orders as (user, day offset from T0)."""
    raws: list[tuple[str, Any]] = [
        (
            f"{user}-{day}",
            raw_order(f"{user}-{day}", 1000, user_id=user, at=T0 + timedelta(days=day)),
        )
        for user, day in orders
    ]
    report = ingest(raws, engine)
    assert report.accepted == len(raws)
    engine.checkpoint()


def customer_of(engine: Engine, user: str) -> str:
    row = engine.con.execute(
        "SELECT customer_id FROM identities WHERE identifier = ?", [f"user_id:{user}"]
    ).fetchone()
    assert row is not None
    return str(row[0])


def expected_members(orders: list[tuple[str, float]], days: int) -> set[str]:
    clock = max(day for _, day in orders)
    return {user for user, day in orders if day >= clock - days}


def test_enter_and_leave_are_recorded_across_runs(engine: Engine) -> None:
    catalog = SegmentCatalog(engine.settings.data_dir)
    catalog.save(RECENT_BUYERS)
    placed: list[tuple[str, float]] = []
    rounds = [
        [("u1", 0), ("u2", 0)],
        [("u3", 20)],  # the log clock moves 20 days: u1 and u2 leave, u3 enters
        [("u1", 25)],  # u1 comes back: a second spell
        [],  # nothing new: nothing changes
    ]
    recorded: list[history.Run] = []
    membership: list[set[str]] = []
    for number, batch in enumerate(rounds):
        if batch:
            add(engine, *batch)
            placed += batch
        result = catalog.run(engine.con, "recent_buyers")
        run_at = datetime(2026, 11, 1, tzinfo=UTC) + timedelta(hours=number)
        recorded.append(history.record(engine.con, result, run_at=run_at))
        users = {user for user, _ in placed}
        by_customer = {customer_of(engine, u): u for u in users}
        membership.append({by_customer[c] for c in result.members})
        assert membership[-1] == expected_members(placed, 10)

    assert [(r.entered, r.left, r.members) for r in recorded] == [
        (2, 0, 2),
        (1, 2, 1),
        (1, 0, 2),
        (0, 0, 2),
    ]
    runs = history.runs(engine.con, "recent_buyers")
    assert [r.run_id for r in runs] == [r.run_id for r in recorded]
    assert runs[1].run_at == datetime(2026, 11, 1, 1, tzinfo=UTC)
    assert runs[1].log_as_of == T0 + timedelta(days=20)
    assert runs[0].params == {"days": 10}

    # Rebuild who was in at each run from the spells alone.
    spells = history.spells(engine.con, "recent_buyers")
    ids = {customer_of(engine, u): u for u in ("u1", "u2", "u3")}
    for index, run in enumerate(runs):
        inside = {
            ids[s.customer_id]
            for s in spells
            if s.entered_run <= run.run_id and (s.left_run is None or s.left_run > run.run_id)
        }
        assert inside == membership[index]

    u1 = history.spells(engine.con, "recent_buyers", customer_of(engine, "u1"))
    assert [(s.entered_run, s.left_run) for s in u1] == [
        (runs[0].run_id, runs[1].run_id),
        (runs[2].run_id, None),
    ]
    assert u1[0].left_as_of == T0 + timedelta(days=20)
    assert u1[1].entered_as_of == T0 + timedelta(days=25)

    assert current_segments(engine.con, customer_of(engine, "u1")) == ["recent_buyers"]
    assert current_segments(engine.con, customer_of(engine, "u2")) == []
    assert current_segments(engine.con, customer_of(engine, "u1"), known={"other"}) == []


def test_runs_of_several_segments_and_read_only_reads(engine: Engine) -> None:
    catalog = SegmentCatalog(engine.settings.data_dir)
    assert current_segments(engine.con, "nobody") == []  # no history tables yet
    assert history.runs(engine.con, "x") == []
    add(engine, ("a", 0), ("a", 1), ("b", 1))
    catalog.save(RECENT_BUYERS)
    for name in ("recent_buyers", "new_customers", "lapsed_repeaters"):
        history.record(engine.con, catalog.run(engine.con, name))
    a = customer_of(engine, "a")
    expected = sorted(
        name
        for name in ("recent_buyers", "new_customers", "lapsed_repeaters")
        if a in catalog.run(engine.con, name).members
    )
    assert current_segments(engine.con, a) == expected
    assert "recent_buyers" in expected and "new_customers" in expected
