"""The grouped catch-up (``cdp.runtime.grouped``) and the bounded state cache of
``EmbeddedRuntime`` give exactly the states of folding event by event.

Random logs of anonymous visitors, forms with emails, logins and orders link
and merge customers at random points. Each is folded four ways on real DuckDB
files: in memory without a store (the definition), incrementally with a cache
of two states that evicts, reloads and checkpoints by itself, with a tail
caught up by the grouped path on top of saved states (merges of customers
saved before the tail), and by ``cdp replay`` (grouped from offset 0, with
``--verify`` comparing every row to the live tables).
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.config import Settings
from cdp.runtime import grouped, replay
from cdp.runtime.embedded import EmbeddedRuntime
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from tests.factories import at_days, raw_identify, raw_order, raw_page, raw_track

pytestmark = pytest.mark.integration

ANONS = [f"a-{i}" for i in range(6)]
USERS = [f"u-{i}" for i in range(4)]
EMAILS = [f"p{i}@example.jp" for i in range(4)]


@st.composite
def raw_event(draw: st.DrawFn, index: int) -> dict[str, Any]:
    at = at_days(draw(st.integers(0, 60)) + index / 1000)
    kind = draw(st.sampled_from(["page", "form", "login", "order", "email"]))
    anon = draw(st.sampled_from(ANONS))
    if kind == "page":
        return raw_page(f"/p/{draw(st.integers(0, 3))}", anonymous_id=anon, at=at)
    if kind == "form":
        traits = {
            "email": draw(st.sampled_from(EMAILS)),
            "first_name": draw(st.sampled_from("ABC")),
        }
        return raw_identify(anonymous_id=anon, traits=traits, at=at)
    if kind == "login":
        return raw_identify(user_id=draw(st.sampled_from(USERS)), anonymous_id=anon, at=at)
    if kind == "order":
        user = draw(st.sampled_from(USERS))
        return raw_order(f"o-{index}", draw(st.integers(100, 9000)), user_id=user, at=at)
    return raw_track("Email Opened", {"campaign_id": "c-1"}, anonymous_id=anon, at=at)


@st.composite
def logs(draw: st.DrawFn) -> list[dict[str, Any]]:
    size = draw(st.integers(2, 40))
    return [draw(raw_event(i)) for i in range(size)]


def feed(engine: Engine, raws: list[dict[str, Any]]) -> None:
    report = ingest(
        [(f"item:{i}", r) for i, r in enumerate(raws)],
        engine,
        received_at=datetime(2027, 6, 1, tzinfo=UTC),
        batch_size=3,
    )
    assert report.rejected == 0, report.errors


def rows(engine: Engine) -> list[tuple[Any, ...]]:
    engine.checkpoint()
    return engine.con.execute("SELECT * FROM customers ORDER BY customer_id").fetchall()


def tiny(engine: Engine) -> Engine:
    runtime = engine.runtime
    runtime.cache_size, runtime.max_dirty, runtime.flush_every = 1, 2, 2
    return engine


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log=logs(), split=st.floats(0, 1))
def test_every_path_folds_the_same_states(log: list[dict[str, Any]], split: float) -> None:
    cut = int(len(log) * split)
    with tempfile.TemporaryDirectory() as tmp:
        incremental = tiny(Engine.open(Settings(Path(tmp) / "one")))
        feed(incremental, log[:cut])
        incremental.checkpoint()
        feed(incremental, log[cut:])
        expected = rows(incremental)

        memory = EmbeddedRuntime(incremental.runtime.config)
        memory.catch_up(incremental.log)
        assert memory.profiles == incremental.runtime.profiles
        assert memory.leads == incremental.runtime.leads
        assert sorted(memory.graph.to_rows()) == sorted(incremental.runtime.graph.to_rows())

        report = replay.rebuild(incremental, verify=True)
        assert report.verified, report.differences
        assert rows(incremental) == expected
        incremental.close()

        tail = tiny(Engine.open(Settings(Path(tmp) / "two")))
        feed(tail, log[:cut])
        tail.checkpoint()
        threshold = grouped.THRESHOLD
        grouped.THRESHOLD = 1
        try:
            with tail.bulk():
                feed(tail, log[cut:])
        finally:
            grouped.THRESHOLD = threshold
        assert rows(tail) == expected
        assert sorted(tail.runtime.graph.to_rows()) == sorted(memory.graph.to_rows())
        tail.close()


def test_the_pool_folds_what_one_process_folds(tmp_path: Path) -> None:
    """Pass 3 on worker processes and in several parts (a large catch-up) writes the
    rows one process writes."""
    engine = Engine.open(Settings(tmp_path / "data"))
    try:
        log = [
            raw_identify(
                anonymous_id=f"a-{i % 40}",
                traits={"email": f"p{i % 25}@example.jp"},
                at=at_days(i / 10),
            )
            if i % 7 == 0
            else raw_order(
                f"o-{i}",
                100 + i,
                user_id=f"u-{i % 30}",
                anonymous_id=f"a-{i % 40}",
                at=at_days(i / 10),
            )
            for i in range(600)
        ]
        feed(engine, log)
        expected = rows(engine)
        saved = grouped.POOL_EVENTS, grouped.CHUNK_EVENTS, grouped.PART_EVENTS
        grouped.POOL_EVENTS, grouped.CHUNK_EVENTS, grouped.PART_EVENTS = 1, 50, 100
        try:
            report = replay.rebuild(engine, verify=True)
        finally:
            grouped.POOL_EVENTS, grouped.CHUNK_EVENTS, grouped.PART_EVENTS = saved
        assert report.verified, report.differences
        assert rows(engine) == expected
    finally:
        engine.close()
