"""Erasing a person from a Parquet archive the archiver built from a broker.

One person is known by an email, a phone, a LINE id, a name and two
anonymous ids. After ``erase_from_archive``, no byte of any file under the
archive, and no cell of any Parquet file read back, holds any of them (plain,
normalised or SHA-256); ``cdp replay --archive`` gives everyone else the
profiles it gave before; ``cdp archive status`` and ``cdp sql --archive``
agree with the files; a crash between two files is finished by running again,
and a further run changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cdp.adapters.archive import erase
from cdp.adapters.archive.erase import erase_from_archive
from cdp.adapters.archive.layout import ArchiveTopics, resolve
from cdp.adapters.archive.manifest import Manifest
from cdp.cli import app
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, generate
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from connectors.destinations.archive import Archiver, RollPolicy
from connectors.sources.files import read_items
from tests.brokers import Broker
from tests.factories import at_days, raw_identify, raw_order, raw_page
from tests.integration.kafka.test_archive_helpers import (
    create_topics,
    produce_log,
    producer,
    publish_projections,
)

pytestmark = pytest.mark.integration

EMAIL = "Erase.Me@Example.JP"
PHONE = "090-1234-5678"
LINE_ID = "Uab12cd34ef56ab12cd34ef56ab12cd34"
NAME = "消去 太郎"
ANONYMOUS = ("anon-erase-1", "anon-erase-2")
FORMS = [
    EMAIL,
    EMAIL.lower(),
    PHONE,
    "+819012345678",
    "09012345678",
    LINE_ID,
    NAME,
    *ANONYMOUS,
]


def person_events() -> list[dict[str, Any]]:
    """Two browsers, linked by one email; events on several days (several files)."""
    first, second = ANONYMOUS
    traits = {"email": EMAIL, "phone": PHONE, "name": NAME, "line_user_id": LINE_ID}
    return [
        raw_page("/", anonymous_id=first, at=at_days(30)),
        raw_identify(anonymous_id=first, traits=traits, at=at_days(31)),
        raw_page("/sale", anonymous_id=second, at=at_days(40)),
        raw_identify(anonymous_id=second, traits={"email": EMAIL.lower()}, at=at_days(41)),
        raw_order(anonymous_id=second, order_id="o-erase", revenue=5400, at=at_days(42)),
    ]


def needles() -> list[bytes]:
    found = []
    for form in FORMS:
        found += [form.encode(), hashlib.sha256(form.encode()).hexdigest().encode()]
    return found


def hits(root: Path) -> list[str]:
    """Every needle in the raw bytes of every file, and in every Parquet cell read back."""
    where = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        where += [f"{path.name}: {n!r}" for n in needles() if n in data]
        if path.suffix == ".parquet":
            text = json.dumps(pq.ParquetFile(path).read().to_pylist(), default=str)
            cells = text + json.dumps(json.loads(text), ensure_ascii=False)
            where += [f"{path.name} (rows): {n!r}" for n in needles() if n.decode() in cells]
    return where


def build(directory: Path) -> Settings:
    """A generated shop plus the person, ingested into an embedded data directory."""
    directory.mkdir(parents=True, exist_ok=True)
    events = directory / "events.jsonl"
    generate(events, GenerateConfig(seed=11, customers=15))
    with events.open("ab") as handle:
        for raw in person_events():
            handle.write(orjson.dumps(raw) + b"\n")
    settings = Settings(directory / "data")
    with Engine.open(settings) as engine:
        report = ingest(read_items(events), engine, source="file:events.jsonl")
        assert report.rejected == 0
        engine.checkpoint()
    return settings


@pytest.fixture(scope="module")
def archived(
    broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Path]]:
    """The reference data directory and an archive of it built through the broker."""
    settings = build(tmp_path_factory.mktemp("reference"))
    prefix = f"e{broker.kind}."
    create_topics(broker.bootstrap, prefix)
    produce_log(broker.bootstrap, f"{prefix}log", settings)
    publish_projections(broker.bootstrap, prefix, settings)
    root = tmp_path_factory.mktemp("archive") / "archive"
    Archiver(
        root,
        broker.bootstrap,
        ArchiveTopics.with_prefix(prefix),
        RollPolicy(max_records=150, max_seconds=3600),
    ).run(once=True)
    yield settings, root


def the_person(settings: Settings) -> str:
    con = Engine.open_read_only(settings)
    try:
        row = con.execute(
            "SELECT customer_id FROM identities WHERE identifier = ?", [f"email:{EMAIL.lower()}"]
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return str(row[0])


def replayed(root: Path, into: Path, leave_out: str) -> dict[str, list[tuple[Any, ...]]]:
    """``cdp replay --archive``, then everyone's rows but the person's."""
    result = CliRunner().invoke(
        app, ["--json", "--data-dir", str(into), "replay", "--archive", str(root)]
    )
    assert result.exit_code == 0, result.output
    con = Engine.open_read_only(Settings(into))
    columns = "* EXCLUDE (profile_state, lead_state), profile_state::VARCHAR, lead_state::VARCHAR"
    try:
        return {
            "customers": con.execute(
                f"SELECT {columns} FROM customers WHERE customer_id <> ? ORDER BY customer_id",
                [leave_out],
            ).fetchall(),
            "identities": con.execute(
                "SELECT * FROM identities WHERE customer_id <> ? ORDER BY identifier", [leave_out]
            ).fetchall(),
            "people": con.execute("SELECT customer_id FROM customers").fetchall(),
        }
    finally:
        con.close()


def rows_in_files(root: Path) -> dict[tuple[str, int], int]:
    counted: dict[tuple[str, int], int] = {}
    for roll in Manifest.read(root).rolls:
        rows = sum(pq.ParquetFile(resolve(root, f)).metadata.num_rows for f in roll.files)
        where = (roll.topic, roll.partition)
        counted[where] = counted.get(where, 0) + rows
    return counted


def archive_state(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


class InjectedCrash(Exception):
    """Raised in place of the second file replacement."""


def test_erasure_leaves_nothing_of_the_person_and_everyone_else_unchanged(
    archived: tuple[Settings, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, original = archived
    root = tmp_path / "archive"
    shutil.copytree(original, root)
    customer = the_person(settings)
    assert hits(root), "the scan must see the person before the erasure"
    before = replayed(root, tmp_path / "before", customer)
    assert (customer,) in before["people"]
    events_before = count_events(root)

    # A crash between two files: each file is old or new, and re-running completes.
    real = erase._replace
    calls = []

    def crash_on_second(*args: Any) -> None:
        calls.append(args[1])
        if len(calls) == 2:
            raise InjectedCrash
        real(*args)

    monkeypatch.setattr(erase, "_replace", crash_on_second)
    with pytest.raises(InjectedCrash):
        erase_from_archive(root, {customer}, {f"email:{EMAIL.lower()}"})
    monkeypatch.setattr(erase, "_replace", real)
    assert len(calls) == 2 and hits(root), "the crash left the erasure half done"
    for relative in Manifest.read(root).files():
        pq.ParquetFile(resolve(root, relative)).read()  # every file whole and readable

    # Only the customer id and the email are given: the archive's identity
    # records add the phone, the LINE id and both anonymous ids.
    report = erase_from_archive(root, {customer}, {f"email:{EMAIL.lower()}"})
    assert report.identifier_keys >= 5
    assert report.rows_removed.get("events", 0) >= 1
    assert report.rows_removed.get("profiles", 0) >= 1
    assert report.rows_removed.get("assignments", 0) >= 5
    assert hits(root) == []

    # (b) replay gives everyone else what it gave before; the person is gone.
    after = replayed(root, tmp_path / "after", customer)
    assert after["customers"] == before["customers"]
    assert after["identities"] == before["identities"]
    assert (customer,) not in after["people"]
    assert count_events(root) == events_before - len(person_events())

    # The manifest's counts follow the files; status and SQL agree.
    result = CliRunner().invoke(app, ["--json", "archive", "status", str(root)])
    assert result.exit_code == 0, result.output
    status = orjson.loads(result.stdout)
    assert status["missing_files"] == []
    assert {(p["topic"], p["partition"]): p["records"] for p in status["partitions"]} == (
        rows_in_files(root)
    )
    query = "SELECT count(*) AS n FROM events"
    result = CliRunner().invoke(app, ["--json", "sql", "--archive", str(root), query])
    assert result.exit_code == 0, result.output
    assert orjson.loads(result.stdout) == [{"n": count_events(root)}]

    # (c) Running again finds nothing and changes no byte.
    state = archive_state(root)
    again = erase_from_archive(root, {customer}, {f"email:{EMAIL.lower()}"})
    assert again.files == [] and again.rows == 0 and again.rolls_recounted == 0
    assert archive_state(root) == state


def count_events(root: Path) -> int:
    files = [str(resolve(root, f)) for f in Manifest.read(root).files("events")]
    con = duckdb.connect()
    try:
        found = con.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchone()
    finally:
        con.close()
    assert found is not None
    return int(found[0])


def test_an_archiver_recording_during_the_erasure_loses_no_line(
    archived: tuple[Settings, Path], broker: Broker, tmp_path: Path
) -> None:
    """The archiver writes a roll, the erasure rewrites the manifest, then the
    archiver records the roll: its line must be there, and the counts true."""
    settings, original = archived
    root = tmp_path / "archive"
    shutil.copytree(original, root)
    customer = the_person(settings)
    prefix = f"e{broker.kind}."
    sender = producer(broker.bootstrap)
    try:
        sender.send(f"{prefix}profiles", b'{"customer_id": "cus_late"}', b"cus_late")
        sender.flush()
    finally:
        sender.close()
    reports = []

    def erase_meanwhile(files: list[str]) -> None:
        reports.append(erase_from_archive(root, {customer}, {f"email:{EMAIL.lower()}"}))

    rolls_before = len(Manifest.read(root).rolls)
    run = Archiver(
        root,
        broker.bootstrap,
        ArchiveTopics.with_prefix(prefix),
        RollPolicy(max_records=150, max_seconds=3600),
        before_record=erase_meanwhile,
    ).run(once=True)
    assert run.rolls == 1 and len(reports) == 1 and reports[0].rolls_recounted > 0
    assert len(Manifest.read(root).rolls) == rolls_before + 1
    status = orjson.loads(
        CliRunner().invoke(app, ["--json", "archive", "status", str(root)]).stdout
    )
    assert {(p["topic"], p["partition"]): p["records"] for p in status["partitions"]} == (
        rows_in_files(root)
    )
    assert hits(root) == []
