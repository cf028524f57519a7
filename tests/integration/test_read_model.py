"""The lookup read model (``cdp.read.model``) against the DuckDB tables and views.

The model caches customers read on demand and the runtime's checkpoints evict
what they change; after ingest, merges and a replay, every customer's answer
built from it must equal what the analyst views say (``reference_lookup``),
and every entry it still holds must equal one a model opened afresh reads
from the tables. Its cache stays within its capacity. Readers on other
threads never see a torn entry while the writer publishes.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.jsonable import json_default
from cdp.read import lookup
from cdp.read.model import ReadModel
from cdp.read.reader import ReadModelLookups, engine_connection
from cdp.runtime import replay
from cdp.runtime.engine import Engine
from cdp.services.ingest import to_record
from tests.factories import at_days, raw_identify, raw_page, raw_track
from tests.integration.test_lookup import owners, reference_lookup

pytestmark = pytest.mark.integration


def _record(raw: dict[str, Any]) -> Any:
    received = datetime.fromisoformat(raw["receivedAt"].replace("Z", "+00:00"))
    return to_record(raw, received, "test")


def as_json(data: Any) -> Any:
    return orjson.loads(orjson.dumps(data, default=json_default))


def reader_of(engine: Engine, settings: Settings) -> ReadModelLookups:
    """A ReadModelLookups over ``engine`` with its model attached (as ``cdp serve`` does)."""
    source = engine_connection(engine)
    assert source[2] is not None, "the read model is in use"
    reader = ReadModelLookups(settings, lambda: source)
    reader.warm()
    return reader


def check_against_views(engine: Engine, reader: ReadModelLookups, recent: int = 10) -> int:
    """Every identifier and customer answers as the views do; returns customers checked."""
    con = engine.con
    customers = {c for _, c in owners(con)}
    reference = {c: as_json(reference_lookup(con, c, recent=recent)) for c in customers}
    for identifier, customer in owners(con):
        body = orjson.loads(reader.profile(identifier, recent)[0])
        assert body.pop("matched") == identifier
        body.pop("segments")
        fresh = body.pop("freshness")
        assert body == reference[customer], identifier
        assert fresh["checkpoint_offset"] == engine.runtime.next_offset
    return len(customers)


def entries_of(model: ReadModel, identifiers: list[str]) -> dict[str, Any]:
    """What ``model`` gives for each identifier (from its cache where it holds one)."""
    found = {i: model.view(i) for i in identifiers}
    return {i: None if f is None else
            (f.customer_id, f.entry.identifiers, f.entry.profile, f.entry.facts, f.entry.explain,
             f.entry.merges, f.entry.recent, f.segments)
            for i, f in found.items()}  # fmt: skip


def fresh_model(engine: Engine, model: ReadModel) -> ReadModel:
    return ReadModel.load(engine.con.cursor(), model.rules, model.zone)


def every_key(engine: Engine) -> list[str]:
    """Every identifier and every customer id (merged-away ones too)."""
    rows = engine.con.execute(
        "SELECT identifier FROM identity_graph WHERE identifier <> '' "
        "UNION SELECT customer_id FROM identity_graph ORDER BY 1"
    ).fetchall()
    return [str(r[0]) for r in rows]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(tmp_path / "data")


def shop_records(customers: int) -> list[Any]:
    raws = iter_events(GenerateConfig(customers=customers, seed=11))
    return [_record(raw) for raw in raws]


def test_ingest_with_checkpoints_keeps_the_model_equal_to_the_tables(settings: Settings) -> None:
    records = shop_records(40)
    with Engine.open(settings) as engine:
        engine.append(records[:50])
        engine.checkpoint()
        reader = reader_of(engine, settings)
        try:
            model = reader.model
            assert model is not None
            for start in range(50, len(records), 700):  # many checkpoints, merges among them
                entries_of(model, every_key(engine))  # cached now: the checkpoint must evict
                engine.append(records[start : start + 700])
                engine.checkpoint()
            assert engine.con.execute("SELECT count(*) FROM merges").fetchall()[0][0] > 0
            assert check_against_views(engine, reader) >= 40
            keys = every_key(engine)
            assert entries_of(model, keys) == entries_of(fresh_model(engine, model), keys)
            assert model.version.next_offset == engine.runtime.next_offset
            # more events than the ring: read from the log, same answer
            assert check_against_views(engine, reader, recent=25)
        finally:
            reader.close()


def test_merges_move_identifiers_events_and_explanations(settings: Settings) -> None:
    with Engine.open(settings) as engine:
        engine.append([_record(raw_page("/", anonymous_id="anon-a", at=at_days(1)))])
        engine.checkpoint()
        reader = reader_of(engine, settings)
        try:
            model = reader.model
            assert model is not None
            engine.append(
                [
                    _record(raw_page("/x", anonymous_id="anon-b", at=at_days(2))),
                    _record(raw_track("Wishlist Shared", anonymous_id="anon-b", at=at_days(3))),
                    _record(raw_identify(anonymous_id="anon-c", user_id="u-1", at=at_days(4))),
                ]
            )
            engine.checkpoint()
            before = every_key(engine)
            entries_of(model, before)
            # one identify links all three anonymous customers into u-1's
            engine.append(
                [
                    _record(raw_identify(anonymous_id="anon-a", user_id="u-1", at=at_days(5))),
                    _record(raw_identify(anonymous_id="anon-b", user_id="u-1", at=at_days(6))),
                    _record(raw_page("/late", anonymous_id="anon-b", at=at_days(0.5))),
                ]
            )
            engine.checkpoint()
            survivor = model.view("user_id:u-1")
            assert survivor is not None
            assert set(survivor.entry.identifiers) == {
                "anonymous_id:anon-a", "anonymous_id:anon-b", "anonymous_id:anon-c", "user_id:u-1"
            }  # fmt: skip
            gone = [c for c in before if c.startswith("cus_") and c != survivor.customer_id]
            assert len(gone) == 2
            assert all(model.view(c).customer_id == survivor.customer_id for c in gone)  # type: ignore[union-attr]
            assert len(orjson.loads(survivor.entry.merges)) == 2
            assert check_against_views(engine, reader) == 1
            keys = every_key(engine)
            assert entries_of(model, keys) == entries_of(fresh_model(engine, model), keys)
        finally:
            reader.close()


def test_after_a_replay_a_loaded_model_equals_the_incremental_one(settings: Settings) -> None:
    with Engine.open(settings) as engine:
        records = shop_records(25)
        engine.append(records[:10])
        engine.checkpoint()
        reader = reader_of(engine, settings)
        try:
            model = reader.model
            assert model is not None
            engine.append(records[10:])
            engine.checkpoint()
            keys = every_key(engine)
            incremental = entries_of(model, keys)
            report = replay.rebuild(engine, verify=True)
            assert not report.differences
            # the model notices the new runtime, starts over and follows it
            assert entries_of(model, keys) == incremental
            assert check_against_views(engine, reader) >= 25
            engine.append([_record(raw_page("/after", anonymous_id="anon-after", at=at_days(9)))])
            engine.checkpoint()  # the new runtime reports to the model, which remakes the indexes
            names = {
                r[0]
                for r in engine.con.execute("SELECT index_name FROM duckdb_indexes()").fetchall()
            }
            assert set(lookup.INDEXES) <= names
            assert check_against_views(engine, reader) >= 25
            keys = every_key(engine)
            assert entries_of(model, keys) == entries_of(fresh_model(engine, model), keys)
        finally:
            reader.close()


def test_identifiers_refused_at_the_anonymous_id_cap(settings: Settings) -> None:
    """An anonymous id refused at the cap gets a customer of its own later; the
    model's events and identifiers follow the graph as the views do."""
    config = settings.runtime_config()
    with Engine.open(settings) as engine:
        cap = config.identity.max_anonymous_ids
        engine.append(
            [_record(raw_identify(anonymous_id=f"a-{n}", user_id="u-cap", at=at_days(1 + n / 100)))
             for n in range(cap + 1)]
            + [_record(raw_page("/before", anonymous_id=f"a-{cap}", at=at_days(2)))]
        )  # fmt: skip
        engine.checkpoint()
        reader = reader_of(engine, settings)
        try:
            engine.append([_record(raw_page("/after", anonymous_id=f"a-{cap}", at=at_days(3)))])
            engine.checkpoint()
            assert check_against_views(engine, reader) >= 1
        finally:
            reader.close()


def test_readers_never_see_a_torn_entry_while_the_writer_publishes(settings: Settings) -> None:
    with Engine.open(settings) as engine:
        engine.append([_record(raw_identify(anonymous_id="t-0", user_id="t-user", at=at_days(1)))])
        engine.checkpoint()
        reader = reader_of(engine, settings)
        model = reader.model
        assert model is not None
        stop = threading.Event()
        problems: list[str] = []
        seen = [0]

        def read() -> None:
            last = -1
            while not stop.is_set():
                for key in ("user_id:t-user", "anonymous_id:t-0"):
                    found = model.view(key)
                    if found is None or found.entry.profile is None:
                        problems.append(f"{key} vanished")
                        continue
                    entry, version = found.entry, found.version
                    profile = orjson.loads(entry.profile)
                    anons = sum(i.startswith("anonymous_id:") for i in entry.identifiers)
                    recent = orjson.loads(entry.recent)
                    # one checkpoint's entry: the counts agree with each other
                    if key not in entry.identifiers or profile["page_views"] != anons - 1:
                        problems.append(f"torn: {entry.identifiers} {profile['page_views']}")
                    if recent and recent[0][2]["offset"] >= version.next_offset:
                        problems.append("an event past the checkpoint")
                    if version.next_offset < last:
                        problems.append("the version went back")
                    last = version.next_offset
                    seen[0] += 1

        threads = [threading.Thread(target=read) for _ in range(3)]
        for thread in threads:
            thread.start()
        try:
            for n in range(1, 40):  # each checkpoint: one more anonymous id and one page view
                engine.append(
                    [
                        _record(raw_identify(anonymous_id=f"t-{n}", user_id="t-user",
                                             at=at_days(1 + n / 10))),
                        _record(raw_page(f"/{n}", anonymous_id=f"t-{n}", at=at_days(1 + n / 10))),
                    ]
                )  # fmt: skip
                engine.checkpoint()
        finally:
            stop.set()
            for thread in threads:
                thread.join(30)
            reader.close()
        assert not problems, problems[:3]
        assert seen[0] > 0
        found = model.view("user_id:t-user")
        assert found is not None and len(found.entry.identifiers) == 41


@pytest.mark.parametrize("zone", ["Asia/Tokyo", "America/New_York"])
def test_answers_in_another_session_time_zone(settings: Settings, zone: str) -> None:
    """Times are rendered, and calendar values computed, in the session's zone."""
    with Engine.open(settings) as engine:
        engine.con.execute(f"SET GLOBAL TimeZone = '{zone}'")
        engine.append(shop_records(12))
        engine.checkpoint()
        reader = reader_of(engine, settings)
        try:
            assert reader.model is not None and str(reader.model.zone) == zone
            assert check_against_views(engine, reader) >= 12
        finally:
            reader.close()


def test_without_a_read_model_lookups_read_duckdb(settings: Settings) -> None:
    with Engine.open(settings) as engine:
        engine.append(shop_records(12))
        engine.checkpoint()
        cursor, high_water, _ = engine_connection(engine)
        engine.runtime.on_checkpoint = None
        reader = ReadModelLookups(settings, lambda: (cursor, high_water, None))
        reader.warm()
        try:
            assert reader.model is None
            assert check_against_views(engine, reader) >= 12
        finally:
            reader.close()


def test_the_cache_stays_within_its_capacity_and_answers_stay_exact(settings: Settings) -> None:
    """A model holding 3 customers answers every identifier of a shop as the views
    do, evicting as it goes; checkpoints in between change nothing of that."""
    records = shop_records(20)
    with Engine.open(settings) as engine:
        engine.append(records[:400])
        engine.checkpoint()
        reader = reader_of(engine, settings)
        try:
            model = reader.model
            assert model is not None
            model.capacity = 3
            assert check_against_views(engine, reader) >= 10
            assert len(model) <= 3
            engine.append(records[400:])
            engine.checkpoint()
            assert check_against_views(engine, reader) >= 20
            assert len(model) <= 3
            keys = every_key(engine)
            assert entries_of(model, keys) == entries_of(fresh_model(engine, model), keys)
        finally:
            reader.close()
