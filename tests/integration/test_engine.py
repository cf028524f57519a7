"""The embedded runtime end to end on a real DuckDB file: folds, checkpoints,
restart, replay, views, segments, lookup and read-only SQL."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import pytest

from cdp.adapters.duckdb import store
from cdp.config import Settings
from cdp.errors import LogUnavailableError, NotFoundError, QueryError, SegmentError
from cdp.read import lookup
from cdp.runtime import replay
from cdp.runtime.embedded import EmbeddedRuntime
from cdp.runtime.engine import Engine
from cdp.services import segments
from cdp.services.ingest import ingest
from cdp.services.query import audience, run_sql
from projections import lead_score
from tests.factories import (
    at_days,
    raw_identify,
    raw_order,
    raw_page,
    raw_track,
)

pytestmark = pytest.mark.integration


def journey() -> list[dict[str, Any]]:
    """An anonymous visitor who fills a form, buys, and messages on LINE; plus others."""
    return [
        raw_page("/", anonymous_id="a-1", at=at_days(0)),
        raw_page("/products/tea", anonymous_id="a-1", at=at_days(0.1)),
        raw_identify(anonymous_id="a-1", at=at_days(1), traits={"email": "Hanako@Example.jp"}),
        raw_order(
            "o-1",
            3000,
            user_id="u-1",
            anonymous_id="a-2",
            at=at_days(2),
            context={"traits": {"email": "hanako@example.jp"}},
        ),
        raw_track(
            "Message Received",
            {"channel": "line", "channel_user_id": "U1", "text": "hi"},
            user_id="u-1",
            at=at_days(3),
        ),
        raw_track(
            "Consent Updated",
            {"consents": {"ads": True, "email": True}},
            user_id="u-1",
            at=at_days(3),
        ),
        raw_page("/", anonymous_id="b-1", at=at_days(4)),
        raw_identify(user_id="u-2", at=at_days(5), traits={"email": "taro@example.jp"}),
    ]


def feed(engine: Engine, raws: list[dict[str, Any]]) -> None:
    report = ingest(
        [(f"item:{i}", r) for i, r in enumerate(raws)],
        engine,
        received_at=datetime(2027, 6, 1, tzinfo=UTC),  # after every event time
    )
    assert report.rejected == 0, report.errors


def fresh_fold(engine: Engine) -> EmbeddedRuntime:
    runtime = EmbeddedRuntime(engine.runtime.config)
    runtime.catch_up(engine.log)
    return runtime


def test_a_journey_becomes_one_customer_with_explained_merges(engine: Engine) -> None:
    feed(engine, journey())
    engine.checkpoint()
    view = lookup.lookup(engine.con, "email:HANAKO@example.jp")
    assert {
        "anonymous_id:a-1",
        "anonymous_id:a-2",
        "user_id:u-1",
        "line:U1",
        "email:hanako@example.jp",
    } <= set(view.identifiers)
    assert view.profile["orders_count"] == 1
    assert view.profile["consent_ads"] is True
    assert view.lead["lifecycle_stage"] == "customer"
    assert all(m["into_customer"] == view.customer_id for m in view.merges)
    assert len(view.recent_events) == 6
    other = lookup.lookup(engine.con, "user_id:u-2")
    assert other.customer_id != view.customer_id


def test_restart_resumes_from_the_checkpoint_and_folds_the_tail(settings: Settings) -> None:
    raws = journey()
    first = Engine.open(settings)
    feed(first, raws[:4])
    first.checkpoint()
    feed(first, raws[4:])  # appended and durable, but never checkpointed:
    first.con.close()  # the process "dies" before its checkpoint
    second = Engine.open(settings)
    try:
        assert second.runtime.next_offset == second.log.high_water() == len(raws)
        rebuilt = fresh_fold(second)
        assert second.runtime.profiles == rebuilt.profiles
        assert second.runtime.leads == rebuilt.leads
        assert sorted(second.runtime.graph.to_rows()) == sorted(rebuilt.graph.to_rows())
    finally:
        second.close()


def test_catch_up_file_folds_a_tail_left_behind_and_leaves_a_caught_up_file_alone(
    settings: Settings,
) -> None:
    """What an erasure runs first: projections behind the log are folded (the
    engine opened), projections caught up are only probed."""
    raws = journey()
    first = Engine.open(settings)
    feed(first, raws[:4])
    first.checkpoint()
    feed(first, raws[4:])
    first.con.close()  # dies before its checkpoint: positions stop at 4
    assert Engine.lagging(settings)
    Engine.catch_up_file(settings)
    assert not Engine.lagging(settings)
    with Engine.open(settings) as engine:
        assert engine.runtime.next_offset == engine.log.high_water() == len(raws)
        rows = sorted(engine.runtime.graph.to_rows())
    before = settings.database.read_bytes()
    Engine.catch_up_file(settings)  # caught up: nothing opened for writing, nothing written
    assert settings.database.read_bytes() == before
    with Engine.open(settings) as engine:
        assert sorted(engine.runtime.graph.to_rows()) == rows


def test_a_checkpoint_larger_than_a_chunk_writes_every_customer_once(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checkpoints stream customer rows in chunks (bounded memory at 1M customers)."""
    monkeypatch.setattr(store, "CHUNK_ROWS", 3)
    engine = Engine.open(settings)
    try:
        feed(engine, [raw_page(f"/p{n}", anonymous_id=f"anon-{n}") for n in range(10)])
        assert engine.checkpoint() == 10
        feed(engine, [raw_page("/again", anonymous_id=f"anon-{n}") for n in range(0, 10, 2)])
        assert engine.checkpoint() == 5
        rows = engine.con.execute(
            "SELECT count(*), count(DISTINCT customer_id), sum(events_count) FROM customers"
        ).fetchone()
        assert rows == (10, 10, 15)
        rebuilt = fresh_fold(engine)
        assert engine.runtime.profiles == rebuilt.profiles
    finally:
        engine.close()


def test_a_failed_checkpoint_leaves_the_previous_one_intact(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine.open(settings)
    feed(engine, journey()[:3])
    engine.checkpoint()
    saved = engine.con.execute("SELECT next_offset FROM positions").fetchall()
    feed(engine, journey()[3:])
    real_replace = store._replace

    def failing_replace(*args: Any, **kwargs: Any) -> None:
        real_replace(*args, **kwargs)
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_replace", failing_replace)
    with pytest.raises(RuntimeError, match="disk full"):
        engine.runtime.checkpoint()
    assert engine.con.execute("SELECT next_offset FROM positions").fetchall() == saved
    monkeypatch.undo()
    engine.con.close()
    reopened = Engine.open(settings)
    try:
        rebuilt = fresh_fold(reopened)
        assert reopened.runtime.profiles == rebuilt.profiles
    finally:
        reopened.close()


def test_replay_verifies_and_repairs_a_tampered_table(engine: Engine) -> None:
    feed(engine, journey())
    engine.checkpoint()
    clean = replay.rebuild(engine, verify=True)
    assert clean.verified is True, clean.differences
    assert clean.events == len(journey())
    customer = lookup.resolve(engine.con, "user_id:u-1")[0]
    engine.con.execute("UPDATE customers SET revenue = 999999 WHERE customer_id = ?", [customer])
    tampered = replay.rebuild(engine, verify=True)
    assert tampered.verified is False
    assert any(customer in line for line in tampered.differences)
    revenue = engine.con.execute(
        "SELECT revenue FROM customers WHERE customer_id = ?", [customer]
    ).fetchone()
    assert revenue is not None and revenue[0] == 3000
    assert replay.rebuild(engine, verify=True).verified is True


def test_replay_as_of_builds_a_point_in_time_copy(engine: Engine) -> None:
    feed(engine, journey())
    engine.checkpoint()
    report = replay.rebuild_as_of(engine, at_days(1.5))
    assert report.events == 3  # two page views and the form identify
    rows = engine.con.execute("SELECT orders_count, email FROM asof_customers").fetchall()
    assert rows == [(0, "Hanako@Example.jp")]
    live = engine.con.execute("SELECT count(*) FROM customers").fetchone()
    assert live is not None and live[0] == 3


def test_views_compute_now_values_against_the_log_clock(engine: Engine) -> None:
    feed(
        engine,
        [
            raw_identify(user_id="u-9", at=at_days(0), traits={"birthday": "1990-06-15"}),
            raw_track("Form Submitted", {"form_id": "contact"}, user_id="u-9", at=at_days(0)),
            raw_page("/", anonymous_id="clock", at=at_days(60)),  # the log clock moves on
        ],
    )
    engine.checkpoint()
    row = engine.con.execute(
        "SELECT age, age_band, lead_score, lead_score_now FROM profiles WHERE customer_id = ?",
        [lookup.resolve(engine.con, "user_id:u-9")[0]],
    ).fetchone()
    assert row is not None
    age, band, at_activity, now = row
    assert (age, band) == (35, "30s")  # 2026-03-02 minus 1990-06-15
    half_life = lead_score.DEFAULT_RULES.half_life_days
    assert now == pytest.approx(at_activity * 0.5 ** (60 / half_life), rel=1e-3)
    events = engine.con.execute(
        "SELECT count(*) FROM events WHERE customer_id IS NOT NULL"
    ).fetchone()
    assert events is not None and events[0] == 3


def orders_for(
    user: str, days: list[float], products: list[str] | None = None
) -> list[dict[str, Any]]:
    items = [{"product_id": p, "price": 1000, "quantity": 1} for p in (products or ["P-X"])]
    return [
        raw_order(f"{user}-{i}", 1000, user_id=user, at=at_days(d), products=items)
        for i, d in enumerate(days)
    ]


def test_builtin_segments_match_hand_computed_members(engine: Engine) -> None:
    a, b = (
        segments.BUILTIN["a_buyers_without_b"].params["product_a"],
        segments.BUILTIN["a_buyers_without_b"].params["product_b"],
    )
    raws = (
        orders_for("lapsed", [10, 20])  # 2 orders, last 280 days before the clock
        + orders_for("active", [250, 290])
        + orders_for("one-timer", [5])
        + orders_for("frequent", [200, 220, 240, 260, 280])
        + orders_for("a-buyer", [265], [str(a)])  # 35 days before the clock
        + orders_for("a-then-b", [262], [str(a)])
        + [
            raw_order(
                "a-then-b-b",
                1000,
                user_id="a-then-b",
                at=at_days(280),
                products=[{"product_id": str(b), "price": 1, "quantity": 5}],
            )
        ]
        + orders_for("a-too-old", [150], [str(a)])
        + orders_for("newbie", [285])
        + [raw_page("/", anonymous_id="clock", at=at_days(300))]
    )
    feed(engine, raws)
    engine.checkpoint()

    def members(name: str) -> set[str]:
        return set(segments.run(engine.con, name).members)

    def ids(*users: str) -> set[str]:
        return {lookup.resolve(engine.con, f"user_id:{u}")[0] for u in users}

    assert members("lapsed_repeaters") == ids("lapsed")
    assert members("frequent_buyers") == ids("frequent")
    assert members("a_buyers_without_b") == ids("a-buyer")
    assert members("new_customers") == ids("newbie")
    overridden = segments.run(engine.con, "lapsed_repeaters", {"lapsed_days": "5"})
    assert set(overridden.members) == ids("lapsed", "active", "frequent", "a-then-b")
    assert members("hot_leads") == set()  # every known contact here has ordered


def test_segment_errors_name_the_problem(engine: Engine) -> None:
    with pytest.raises(SegmentError, match="no segment named 'nope'; known: "):
        segments.run(engine.con, "nope")
    with pytest.raises(SegmentError, match="has no parameter 'days'"):
        segments.run(engine.con, "lapsed_repeaters", {"days": "3"})
    with pytest.raises(SegmentError, match="must be a whole number"):
        segments.run(engine.con, "lapsed_repeaters", {"lapsed_days": "soon"})


def test_audience_keeps_only_consenting_members_with_normalised_identifiers(
    engine: Engine,
) -> None:
    raws = (
        orders_for("yes", [1, 2])
        + orders_for("no", [1, 2])
        + [
            raw_identify(
                user_id="yes",
                at=at_days(3),
                traits={"email": " Yes@Example.JP ", "phone": "090-1111-2222"},
            ),
            raw_track("Consent Updated", {"consents": {"ads": True}}, user_id="yes", at=at_days(3)),
            raw_track("Consent Updated", {"consents": {"ads": False}}, user_id="no", at=at_days(3)),
            raw_page("/", anonymous_id="clock", at=at_days(200)),
        ]
    )
    feed(engine, raws)
    engine.checkpoint()
    result = audience(engine.con, "lapsed_repeaters", consent="ads")
    assert result.members == 2
    assert result.excluded_without_consent == 1
    assert len(result.rows) == 1
    row = dict(zip(result.columns, result.rows[0], strict=True))
    assert row["email"] == "yes@example.jp"
    assert row["phone"] == "+819011112222"
    assert len(audience(engine.con, "lapsed_repeaters", consent=None).rows) == 2


def test_lookup_of_an_unknown_identifier_is_not_found(engine: Engine) -> None:
    feed(engine, journey())
    engine.checkpoint()
    with pytest.raises(
        NotFoundError, match=re.escape("no customer has identifier 'email:nobody@shop.jp'")
    ):
        lookup.lookup(engine.con, "email:nobody@shop.jp")
    with pytest.raises(NotFoundError, match="unknown identifier kind"):
        lookup.lookup(engine.con, "fax:1")


def test_read_only_sql_cannot_write_or_touch_files(settings: Settings) -> None:
    with Engine.open(settings) as engine:
        feed(engine, journey())
    con = Engine.open_read_only(settings)
    try:
        assert run_sql(con, "SELECT count(*) FROM events").rows == [(8,)]
        with pytest.raises(QueryError, match="read-only"):
            run_sql(con, "DELETE FROM event_log")
        with pytest.raises(QueryError):
            run_sql(con, "COPY (SELECT 1) TO '/tmp/cdp-leak.csv'")
        with pytest.raises(QueryError):
            run_sql(con, "SELECT * FROM read_csv('/etc/passwd')")
    finally:
        con.close()


def test_a_second_writer_is_refused_with_a_clear_error(settings: Settings) -> None:
    with Engine.open(settings):
        code = (
            "from cdp.runtime.engine import Engine; from cdp.config import Settings; from pathlib import Path;"
            f"Engine.open(Settings(Path({str(settings.data_dir)!r})))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    assert result.returncode != 0
    assert LogUnavailableError.__name__ in result.stderr
    assert "in use by another cdp process" in result.stderr
