"""The customer's activity and the shop's contacts, through the tables and views.

The folds decide (``projections.outbound``); here the stored ``profiles``
columns and the view's windowed counts are checked against the ``events``
view counted the obvious way, on a generated shop, and the documented
segment example against the same reference. A data directory written with
the layout before this split is rebuilt from its log when opened.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cdp.adapters.duckdb import store
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.read import lookup
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from cdp.services.segment_lang import compile_definition, parse
from cdp.services.segment_lang.catalog import execute
from projections.outbound import CONTACT_EVENTS, CONTACT_WINDOWS, SHOP_EVENTS

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).parents[2] / "docs" / "segments" / "examples"


def _fill(engine: Engine) -> None:
    events = iter_events(GenerateConfig(seed=1, customers=200))
    assert ingest(((str(i), e) for i, e in enumerate(events)), engine).rejected == 0
    engine.checkpoint()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = Engine.open(Settings(tmp_path_factory.mktemp("contacts") / "data"))
    try:
        _fill(engine)
        yield engine
    finally:
        engine.close()


def _names(names: frozenset[str]) -> str:
    return ", ".join(f"'{n}'" for n in sorted(names))


def reference(con: Any) -> dict[str, dict[str, Any]]:
    """Per customer, from the ``events`` view: own activity, contacts, windowed counts."""
    as_of: datetime = con.execute("SELECT as_of FROM log_clock").fetchone()[0]
    today = as_of.astimezone(UTC).date()
    out: dict[str, dict[str, Any]] = {}
    rows = con.execute(
        f"""SELECT customer_id,
                   max(timestamp) FILTER (WHERE event IS NULL OR event NOT IN ({_names(SHOP_EVENTS)})),
                   max(timestamp) FILTER (WHERE event IN ({_names(CONTACT_EVENTS)})),
                   list(timestamp) FILTER (WHERE event IN ({_names(CONTACT_EVENTS)}))
            FROM events WHERE customer_id IS NOT NULL GROUP BY customer_id"""
    ).fetchall()
    for customer, seen, contacted, times in rows:
        days = [t.astimezone(UTC).date() for t in times or []]
        out[customer] = {
            "last_seen": seen,
            "last_contacted_at": contacted,
            **{
                f"contacts_{n}d": sum(1 for d in days if today - timedelta(days=n) < d <= today)
                for n in CONTACT_WINDOWS
            },
        }
    return out


def test_the_profiles_view_matches_the_events_counted_by_hand(shop: Engine) -> None:
    con = shop.con
    expected = reference(con)
    columns = ["last_seen", "last_contacted_at", *(f"contacts_{n}d" for n in CONTACT_WINDOWS)]
    got = {
        row[0]: dict(zip(columns, row[1:], strict=True))
        for row in con.execute(f"SELECT customer_id, {', '.join(columns)} FROM profiles").fetchall()
    }
    assert got == expected
    # Not vacuous: the demo shop mails customers who have gone quiet.
    quiet = [c for c, r in got.items() if r["last_contacted_at"] and r["last_seen"]
             and r["last_contacted_at"] > r["last_seen"]]  # fmt: skip
    assert len(quiet) >= 10
    assert sum(r["contacts_30d"] for r in got.values()) > 0


def test_the_documented_segment_selects_the_inactive_who_are_still_contacted(
    shop: Engine,
) -> None:
    con = shop.con
    text = (EXAMPLE / "inactive_but_contacted.yaml").read_text(encoding="utf-8")
    members = set(execute(con, "inactive_but_contacted", compile_definition(parse(text))).members)
    as_of: datetime = con.execute("SELECT as_of FROM log_clock").fetchone()[0]  # type: ignore[index]
    zone = lookup.session_zone(con)
    assert zone is not None
    today = as_of.astimezone(zone).date()
    expected = {
        customer
        for customer, r in reference(con).items()
        if r["contacts_30d"] >= 1
        and (r["last_seen"] is None or (today - r["last_seen"].astimezone(zone).date()).days >= 90)
    }
    assert members == expected
    assert members  # the demo has such customers


def test_a_lookup_shows_last_seen_apart_from_last_contacted(shop: Engine) -> None:
    con = shop.con
    row = con.execute(
        "SELECT customer_id FROM profiles WHERE last_contacted_at > last_seen "
        "ORDER BY last_contacted_at - last_seen DESC, customer_id LIMIT 1"
    ).fetchone()
    assert row is not None
    view = lookup.lookup(con, row[0])
    p = view.profile
    assert p["last_contacted_at"] > p["last_seen"]
    assert p["days_since_last_seen"] > p["days_since_last_contact"]
    assert {"contacts_7d", "contacts_30d", "contacts_90d", "contacts_by_day"} <= p.keys()
    # The latest event is the shop's: once, it would have been "last seen".
    assert view.recent_events[0]["event"] in SHOP_EVENTS


def test_tables_of_the_layout_before_the_split_are_rebuilt_from_the_log(
    tmp_path: Path,
) -> None:
    settings = Settings(tmp_path / "data")
    with Engine.open(settings) as engine:
        _fill(engine)
        before = engine.con.execute(
            "SELECT * EXCLUDE (profile_state, lead_state) FROM customers ORDER BY customer_id"
        ).fetchall()
        high_water = engine.log.high_water()
        # What the previous release left: no contact columns, version 1 states.
        engine.con.execute("ALTER TABLE customers DROP COLUMN contacts_by_day")
        engine.con.execute("ALTER TABLE customers DROP COLUMN last_contacted_at")
        engine.con.execute("UPDATE customers SET profile_state = '{\"version\": 1}'")
        assert store.outdated(engine.con)
    with Engine.open(settings) as engine:
        assert not store.outdated(engine.con)
        assert engine.runtime.next_offset == high_water
        after = engine.con.execute(
            "SELECT * EXCLUDE (profile_state, lead_state) FROM customers ORDER BY customer_id"
        ).fetchall()
        assert after == before
