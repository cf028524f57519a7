"""The fast profile lookup (``cdp.read.lookup``) against the analyst views it replaces.

``reference_lookup`` answers "who is this?" the slow, obvious way: straight
from the ``profiles``, ``identities``, ``merges``, ``events`` and
``log_clock`` views (the code ``cdp profile`` ran before the point-query
rewrite). Every identifier of a generated shop must give the same answer
through both, with and without the lookup indexes, and after more events
arrive (the maintained log clock and the attribution of events).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.errors import NotFoundError
from cdp.read import keys, lookup, now
from cdp.runtime import replay
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest, to_record
from projections import lead_score
from tests.factories import at_days, raw_identify, raw_page, raw_track

pytestmark = pytest.mark.integration


# ----------------------------------------------------------------- reference
def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def reference_lookup(
    con: duckdb.DuckDBPyConnection,
    customer_id: str,
    rules: lead_score.Rules = lead_score.DEFAULT_RULES,
    recent: int = 10,
) -> dict[str, Any]:
    """What the views say about a live customer (everything but ``matched``)."""
    summary = _rows(con.execute("SELECT * FROM profiles WHERE customer_id = ?", [customer_id]))[0]
    state = con.execute(
        "SELECT lead_state FROM customers WHERE customer_id = ?", [customer_id]
    ).fetchone()
    as_of: datetime | None = con.execute("SELECT as_of FROM log_clock").fetchone()[0]  # type: ignore[index]
    lead_state = lead_score.from_json(orjson.loads(state[0])) if state else None
    lead = {
        "score_at_last_activity": summary.get("lead_score"),
        "score_now": summary.get("lead_score_now"),
        "as_of": as_of,
        "lifecycle_stage": summary.get("lifecycle_stage"),
        "funnel_stage": summary.get("funnel_stage"),
        "hot_now": summary.get("hot_now"),
        "explanation": lead_score.explain(lead_state, rules, at=as_of) if lead_state else [],
    }
    identifiers = [
        r[0]
        for r in con.execute(
            "SELECT identifier FROM identities WHERE customer_id = ? ORDER BY identifier",
            [customer_id],
        ).fetchall()
    ]
    merges = _rows(
        con.execute(
            """WITH RECURSIVE chain(customer_id) AS (
                   SELECT ?::VARCHAR
                   UNION SELECT m.from_customer FROM merges m
                   JOIN chain c ON m.into_customer = c.customer_id)
               SELECT m.from_customer, m.into_customer, m.via, m.reason, m.message_id,
                      m."offset", m."at"
               FROM merges m WHERE m.into_customer IN (SELECT customer_id FROM chain)
               ORDER BY m."offset", m.from_customer, m.into_customer""",
            [customer_id],
        )
    )
    events = _rows(
        con.execute(
            """SELECT "offset", timestamp, type, event, message_id, source FROM events
               WHERE customer_id = ? ORDER BY timestamp DESC, "offset" DESC LIMIT ?""",
            [customer_id, recent],
        )
    )
    summary.pop("customer_id")
    return {
        "customer_id": customer_id,
        "identifiers": identifiers,
        "profile": summary,
        "lead": lead,
        "merges": merges,
        "recent_events": events,
    }


def fast(con: duckdb.DuckDBPyConnection, text: str, **kwargs: Any) -> dict[str, Any]:
    answer = lookup.lookup(con, text, **kwargs).as_dict()
    answer.pop("matched")
    return answer


def owners(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Every (identifier, customer) of the graph, sorted."""
    return [
        (str(a), str(b))
        for a, b in con.execute(
            "SELECT identifier, customer_id FROM identity_graph WHERE identifier <> '' "
            "ORDER BY identifier"
        ).fetchall()
    ]


def build_shop(data_dir: Path, customers: int) -> Settings:
    """A data directory holding a generated shop of ``customers`` people."""
    settings = Settings(data_dir)
    raws = iter_events(GenerateConfig(customers=customers, seed=7))
    with Engine.open(settings) as engine:
        ingest(((f"event {i}", raw) for i, raw in enumerate(raws)), engine, source="test")
    return settings


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shop(tmp_path_factory.mktemp("shop") / "data", 90).data_dir


@pytest.fixture
def shop_engine(shop: Path, tmp_path: Path) -> Iterator[Engine]:
    copy = tmp_path / "data"
    shutil.copytree(shop, copy)
    with Engine.open(Settings(copy)) as engine:
        yield engine


# --------------------------------------------------------------------- tests
@pytest.mark.parametrize("indexed", [False, True], ids=["views-only", "indexed"])
def test_every_identifier_answers_as_the_views_do(shop_engine: Engine, indexed: bool) -> None:
    con = shop_engine.con
    if indexed:
        lookup.ensure_indexes(con)
    pairs = owners(con)
    assert {k.partition(":")[0] for k, _ in pairs} >= {"email", "user_id", "anonymous_id", "line"}
    # Every identifier of a quarter of the customers (the merged ones among them),
    # and a few of every kind: the views are slow, the test must not be.
    merged = {r[0] for r in con.execute("SELECT into_customer FROM merges").fetchall()}
    chosen = set(sorted({c for _, c in pairs})[::4]) | set(sorted(merged)[:10])
    by_kind: dict[str, int] = {}
    sample = []
    for identifier, customer in pairs:
        kind = identifier.partition(":")[0]
        by_kind[kind] = by_kind.get(kind, 0) + 1
        if customer in chosen or by_kind[kind] <= 5:
            sample.append((identifier, customer))
    clock = lookup.LogClock()
    reference: dict[str, dict[str, Any]] = {}
    for identifier, customer in sample:
        if customer not in reference:
            reference[customer] = reference_lookup(con, customer)
        assert fast(con, identifier, clock=clock) == reference[customer], identifier
    customer_ids = [r[0] for r in con.execute("SELECT customer_id FROM customers").fetchall()]
    assert set(customer_ids) == {c for _, c in pairs}  # every customer has an identifier
    for customer in customer_ids[:5]:
        assert fast(con, customer, recent=3) == reference_lookup(con, customer, recent=3)


def test_merged_away_ids_resolve_to_the_survivor(shop_engine: Engine) -> None:
    con = shop_engine.con
    merges = con.execute("SELECT from_customer, into_customer FROM merges").fetchall()
    assert merges, "the generated shop has merges"
    live = {r[0] for r in con.execute("SELECT customer_id FROM customers").fetchall()}
    into = dict(merges)
    for loser, _ in merges:
        survivor = loser
        while survivor not in live:  # follow the chain independently
            survivor = into[survivor]
        view = lookup.lookup(con, loser)
        assert (view.customer_id, view.matched) == (survivor, loser)
        assert any(m["from_customer"] == loser for m in view.merges)


def test_the_clock_and_events_follow_new_appends(shop_engine: Engine) -> None:
    """Events appended after the checkpoint: attributed like the view, clock moves."""
    con = shop_engine.con
    lookup.ensure_indexes(con)
    clock = lookup.LogClock()
    user, customer = next((k, c) for k, c in owners(con) if k.startswith("user_id:"))
    uid = user.partition(":")[2]
    lookup.lookup(con, user, clock=clock)
    anon = "anon-late-1"
    shop_engine.append(
        [
            # a padded user id: the view trims it, so must the lookup
            _record(raw_track("Wishlist Shared", user_id=f" {uid} ", at=at_days(400))),
            _record(raw_identify(anonymous_id=anon, user_id=uid, at=at_days(401))),
            _record(raw_page("/", anonymous_id=anon, at=at_days(402))),
            # this anonymous id's later event with another (new) user id
            _record(raw_page("/", anonymous_id=anon, user_id="someone-else", at=at_days(403))),
        ]
    )
    shop_engine.checkpoint()
    answer = fast(con, user, clock=clock)
    assert answer == reference_lookup(con, customer)
    assert answer["lead"]["as_of"] == con.execute("SELECT as_of FROM log_clock").fetchone()[0]  # type: ignore[index]
    assert len(answer["recent_events"]) == 10
    assert f"anonymous_id:{anon}" in answer["identifiers"]


def _record(raw: dict[str, Any]) -> Any:
    return to_record(raw, raw_received(raw), "test")


def raw_received(raw: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(raw["receivedAt"].replace("Z", "+00:00"))


def test_unknown_and_malformed_identifiers(shop_engine: Engine) -> None:
    con = shop_engine.con
    with pytest.raises(NotFoundError, match="no customer has identifier"):
        lookup.lookup(con, "email:nobody@nowhere.jp")
    with pytest.raises(NotFoundError, match="no customer 'cus_nobody'"):
        lookup.lookup(con, "cus_nobody")
    for text, problem in (
        ("fax:1", "unknown identifier kind"),
        ("email:", "must be written kind:value"),
        ("nocolon", "must be written kind:value"),
        ("email:not-an-email", "not a usable identifier"),
        ("cus_", "nothing after"),
    ):
        with pytest.raises(ValueError, match=problem):
            keys.parse(text)
        with pytest.raises(NotFoundError, match=problem):
            lookup.resolve(con, text)


def test_lookups_read_one_snapshot(shop_engine: Engine) -> None:
    """Inside ``snapshot`` a cursor does not see a checkpoint committed meanwhile."""
    con = shop_engine.con
    reader = con.cursor()
    try:
        before = reader.execute("SELECT count(*) FROM customers").fetchone()
        with lookup.snapshot(reader):
            first = reader.execute("SELECT count(*) FROM customers").fetchone()
            shop_engine.append([_record(raw_identify(user_id="brand-new", at=at_days(500)))])
            shop_engine.checkpoint()
            inside = reader.execute("SELECT count(*) FROM customers").fetchone()
        after = reader.execute("SELECT count(*) FROM customers").fetchone()
    finally:
        reader.close()
    assert before == first == inside
    assert after is not None and first is not None and after[0] == first[0] + 1


def test_a_replay_still_works_with_the_indexes(shop_engine: Engine) -> None:
    """The replay swaps tables under the indexes; lookups stay exact, indexes come back."""
    con = shop_engine.con
    lookup.ensure_indexes(con)
    identifier, customer = owners(con)[0]
    before = fast(con, identifier)
    report = replay.rebuild(shop_engine, verify=True)
    assert not report.differences
    assert fast(con, identifier) == before == reference_lookup(con, customer)
    lookup.ensure_indexes(con)
    names = {r[0] for r in con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()}
    assert set(lookup.INDEXES) <= names


@pytest.mark.parametrize("zone", ["Etc/UTC", "Asia/Tokyo", "America/New_York"])
def test_the_now_columns_computed_in_python_equal_the_view(shop_engine: Engine, zone: str) -> None:
    """``_derive`` against the ``profiles`` view, for every customer, in three time zones."""
    con = shop_engine.con
    rules = shop_engine.runtime.config.scoring
    assert lookup.derivable(rules)  # the fast path is in use for the view as it is
    con.execute(f"SET TimeZone = '{zone}'")
    as_of = con.execute("SELECT as_of FROM log_clock").fetchone()[0]  # type: ignore[index]
    columns = list(now._derive({}, as_of, rules, lookup.session_zone(con)))  # type: ignore[arg-type]
    view = {
        row[0]: row[1:]
        for row in con.execute(f"SELECT customer_id, {', '.join(columns)} FROM profiles").fetchall()
    }
    rows = _rows(con.execute("SELECT * EXCLUDE (profile_state, lead_state) FROM customers"))
    assert len(rows) == len(view) > 50
    stage_seen = set()
    for row in rows:
        derived = now._derive(row, as_of, rules, lookup.session_zone(con))  # type: ignore[arg-type]
        assert tuple(derived.values()) == view[row["customer_id"]], row["customer_id"]
        stage_seen.add((derived["hot_now"], derived["age_band"] is None))
    assert len(stage_seen) >= 2
