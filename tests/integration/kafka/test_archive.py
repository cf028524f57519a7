"""The archiver against real brokers: every offset in exactly one file, across
restarts, injected faults and kill -9; DuckDB over the archive answers like
the embedded data directory."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from cdp.adapters.archive.layout import EVENTS, LOCK_FILE, ArchiveTopics, resolve
from cdp.adapters.archive.log import ArchiveEventLog
from cdp.adapters.archive.manifest import Manifest, Roll
from cdp.adapters.archive.session import ArchiveSession
from cdp.cli import app
from cdp.config import Settings
from cdp.errors import ArchiveError
from connectors.destinations.archive import Archiver, RollPolicy
from connectors.destinations.archive.files import clean_unrecorded
from tests.brokers import Broker
from tests.integration.kafka.test_archive_helpers import (
    build_reference,
    create_topics,
    log_rows,
    produce_events,
    produce_log,
    publish_projections,
    send_rows,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]


class InjectedFault(Exception):
    """Raised between writing a roll's files and recording them."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return build_reference(tmp_path_factory.mktemp("reference"), customers=30)


def archived_offsets(root: Path) -> list[int]:
    """Every offset in the events files the manifest names, with repeats."""
    files = [str(resolve(root, f)) for f in Manifest.read(root).files(EVENTS)]
    if not files:
        return []
    con = duckdb.connect()
    try:
        rows = con.execute('SELECT "offset" FROM read_parquet(?)', [files]).fetchall()
    finally:
        con.close()
    return sorted(int(r[0]) for r in rows)


def parquet_on_disk(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} - {
        "manifest.jsonl",
        LOCK_FILE,
    }


def assert_exact(root: Path, count: int) -> None:
    offsets = archived_offsets(root)
    assert offsets == list(range(count)), "duplicate or missing offsets"
    assert parquet_on_disk(root) == set(Manifest.read(root).files()), "unrecorded files left"


def archiver(root: Path, broker: Broker, prefix: str, **kw: object) -> Archiver:
    policy = kw.pop("policy", RollPolicy(max_records=97, max_seconds=3600))
    return Archiver(root, broker.bootstrap, ArchiveTopics.with_prefix(prefix), policy, **kw)  # type: ignore[arg-type]


def test_every_offset_lands_in_exactly_one_file(
    broker: Broker, topic_prefix: str, reference: Settings, tmp_path: Path
) -> None:
    create_topics(broker.bootstrap, topic_prefix)
    total = len(log_rows(reference))
    half = total // 2
    produce_events(broker.bootstrap, f"{topic_prefix}log", reference, half)
    root = tmp_path / "archive"
    first = archiver(root, broker, topic_prefix).run(once=True)
    assert first.records == half
    assert_exact(root, half)
    produce_log(broker.bootstrap, f"{topic_prefix}log", reference, start=half)
    second = archiver(root, broker, topic_prefix).run(once=True)
    assert second.records == total - half
    assert_exact(root, total)
    # The files hold the embedded log's rows, column for column.
    files = [str(resolve(root, f)) for f in Manifest.read(root).files(EVENTS)]
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{reference.database}' AS ref (READ_ONLY)")
        columns = (
            '"offset", message_id, type, event, timestamp, received_at, user_id, '
            "anonymous_id, source, schema_version, payload"
        )
        differing = con.execute(
            f"""SELECT count(*) FROM (
                   (SELECT {columns} FROM read_parquet(?) EXCEPT ALL
                    SELECT {columns} FROM ref.event_log)
                   UNION ALL
                   (SELECT {columns} FROM ref.event_log EXCEPT ALL
                    SELECT {columns} FROM read_parquet(?)))""",
            [files, files],
        ).fetchone()
        dates_ok = con.execute(
            "SELECT bool_and(event_date = CAST(timezone('UTC', timestamp) AS DATE)) "
            "FROM read_parquet(?, hive_partitioning = true)",
            [files],
        ).fetchone()
    finally:
        con.close()
    assert differing == (0,)
    assert dates_ok == (True,)
    status = CliRunner().invoke(app, ["--json", "archive", "status", str(root)])
    assert status.exit_code == 0, status.output
    (events,) = [p for p in orjson.loads(status.stdout)["partitions"] if p["kind"] == EVENTS]
    assert (events["records"], events["first"], events["next"]) == (total, 0, total)


def test_fault_between_write_and_manifest_leaves_no_duplicate_and_no_gap(
    broker: Broker, topic_prefix: str, reference: Settings, tmp_path: Path
) -> None:
    create_topics(broker.bootstrap, topic_prefix)
    total = produce_log(broker.bootstrap, f"{topic_prefix}log", reference)
    root = tmp_path / "archive"
    rolls = []

    def crash_on_third(files: list[str]) -> None:
        rolls.append(files)
        if len(rolls) == 3:
            raise InjectedFault(files[0])

    with pytest.raises(InjectedFault):
        archiver(root, broker, topic_prefix, before_record=crash_on_third).run(once=True)
    assert len(Manifest.read(root).rolls) == 2
    orphans = parquet_on_disk(root) - set(Manifest.read(root).files())
    assert orphans == set(rolls[2]), "the faulted roll's files are on disk, unrecorded"
    # A crash while appending the manifest line: a torn, unterminated tail.
    with (root / "manifest.jsonl").open("ab") as handle:
        handle.write(b'{"topic": "torn')
    report = archiver(root, broker, topic_prefix).run(once=True)
    assert set(report.removed_on_start) == orphans
    assert_exact(root, total)


def test_kill_9_mid_file_then_restart(
    broker: Broker, topic_prefix: str, reference: Settings, tmp_path: Path
) -> None:
    create_topics(broker.bootstrap, topic_prefix)
    total = 700
    produce_events(broker.bootstrap, f"{topic_prefix}log", reference, total)
    root = tmp_path / "archive"
    command = [
        sys.executable, "-m", "cdp.cli", "--json", "archive", "run",
        "--bootstrap", broker.bootstrap, "--prefix", topic_prefix, "--out", str(root),
        "--max-records", "50", "--once",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(4)
    kills = 0
    for _ in range(2):  # kill it twice, at random moments after it started writing
        before = len(Manifest.read(root).rolls) if root.exists() else 0
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            deadline = time.monotonic() + 60
            # Wait until it is writing (a roll recorded since it started), then a bit more.
            while time.monotonic() < deadline and process.poll() is None:
                if root.exists() and len(Manifest.read(root).rolls) > before:
                    break
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.15))
            if process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                kills += 1
        finally:
            process.wait(timeout=30)
    assert kills >= 1, "the archiver finished before it could be killed"
    final = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, timeout=120, check=False
    )
    assert final.returncode == 0, final.stderr.decode()
    assert_exact(root, total)


def test_one_archiver_per_directory_and_gaps_are_refused(
    broker: Broker, topic_prefix: str, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    import fcntl  # noqa: PLC0415

    with (root / LOCK_FILE).open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ArchiveError, match="in use by another archiver"):
            archiver(root, broker, topic_prefix).run(once=True)
    with pytest.raises(ArchiveError, match="does not exist"):
        archiver(root, broker, topic_prefix).run(once=True)


def test_repeated_message_ids_are_archived_once_each_and_skipped_by_readers(
    broker: Broker, topic_prefix: str, reference: Settings, tmp_path: Path
) -> None:
    create_topics(broker.bootstrap, topic_prefix)
    topic = f"{topic_prefix}log"
    rows = log_rows(reference)[:60]
    send_rows(broker.bootstrap, topic, [*rows, rows[10], rows[20]])
    root = tmp_path / "archive"
    archiver(root, broker, topic_prefix).run(once=True)
    send_rows(broker.bootstrap, topic, [rows[5], rows[59]])  # after a restart too
    archiver(root, broker, topic_prefix).run(once=True)
    assert_exact(root, 64)
    files = [str(resolve(root, f)) for f in Manifest.read(root).files(EVENTS)]
    con = duckdb.connect()
    try:
        marked = con.execute(
            'SELECT "offset", duplicate_of FROM read_parquet(?) '
            'WHERE duplicate_of IS NOT NULL ORDER BY "offset"',
            [files],
        ).fetchall()
    finally:
        con.close()
    assert marked == [(60, 10), (61, 20), (62, 5), (63, 59)]
    log = ArchiveEventLog(root)
    try:
        assert [s.offset for b in log.read() for s in b] == list(range(60))
    finally:
        log.close()
    with ArchiveSession.open(root) as session:
        assert session.query('SELECT count(*), max("offset") FROM events').rows == [(60, 59)]


def test_a_damaged_manifest_or_a_missing_file_is_an_error_not_a_silent_gap(
    tmp_path: Path,
) -> None:
    root = tmp_path / "archive"
    root.mkdir()
    roll = Roll("cdp.log", EVENTS, 0, 0, 9, 10, ("events/event_date=2026-01-01/x.parquet",), "t")
    (root / "manifest.jsonl").write_bytes(roll.to_line() + b"not json\n" + roll.to_line())
    with pytest.raises(ArchiveError, match="line 2 is not a manifest entry"):
        Manifest.read(root)
    (root / "manifest.jsonl").write_bytes(roll.to_line())
    assert Manifest.read(root).next_offsets() == {("cdp.log", 0): 10}
    with pytest.raises(ArchiveError, match="named by the manifest are missing"):
        clean_unrecorded(root, Manifest.read(root).files())


def test_following_mode_rolls_by_age_and_stops_cleanly(
    broker: Broker, topic_prefix: str, reference: Settings, tmp_path: Path
) -> None:
    create_topics(broker.bootstrap, topic_prefix)
    root = tmp_path / "archive"
    stop = threading.Event()
    following = archiver(
        root, broker, topic_prefix, policy=RollPolicy(max_records=10_000, max_seconds=0.5)
    )
    thread = threading.Thread(target=following.run, kwargs={"stop": stop})
    thread.start()
    try:
        rows = log_rows(reference)[:300]
        for part in (rows[:120], rows[120:]):  # two bursts, each rolled by age
            send_rows(broker.bootstrap, f"{topic_prefix}log", part)
            deadline = time.monotonic() + 30
            while archived_offsets(root) != list(range(rows.index(part[-1]) + 1)):
                assert time.monotonic() < deadline, "not archived by age"
                time.sleep(0.1)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert_exact(root, 300)
    assert len(Manifest.read(root).rolls) >= 2


class HeldBytes(Archiver):
    """An archiver that notes the bytes buffered over all partitions at each roll."""

    held: list[int]

    def _roll(self, buffers, buffer, manifest, report):  # type: ignore[no-untyped-def]
        self.held.append(sum(b.bytes for b in buffers.values()))
        super()._roll(buffers, buffer, manifest, report)


def test_max_bytes_bounds_the_buffers_of_all_partitions_together(
    broker: Broker, topic_prefix: str, reference: Settings, tmp_path: Path
) -> None:
    """Buffered records are held in memory: past max_bytes over every partition
    the largest buffer rolls, so the total held stays within max_bytes plus one
    record, whatever the number of partitions (10 here)."""
    create_topics(broker.bootstrap, topic_prefix)
    total = produce_log(broker.bootstrap, f"{topic_prefix}log", reference)
    publish_projections(broker.bootstrap, topic_prefix, reference, stale_first=False)
    root = tmp_path / "archive"
    limit = 16 * 1024
    policy = RollPolicy(max_records=10**9, max_bytes=limit, max_seconds=3600)
    recording = HeldBytes(root, broker.bootstrap, ArchiveTopics.with_prefix(topic_prefix), policy)
    recording.held = []
    recording.run(once=True)
    assert_exact(root, total)
    manifest = Manifest.read(root)
    con = duckdb.connect()
    try:
        largest = max(
            con.execute(sql, [[str(resolve(root, f)) for f in files]]).fetchone()[0]  # type: ignore[index]
            for sql, files in (
                ("SELECT max(strlen(payload)) FROM read_parquet(?)", manifest.files(EVENTS)),
                (
                    "SELECT max(strlen(value) + strlen(key)) FROM read_parquet(?)",
                    [f for f in manifest.files() if not f.startswith("events/")],
                ),
            )
        )
    finally:
        con.close()
    assert max(recording.held) < limit + largest
    assert len({r.topic for r in Manifest.read(root).rolls}) == 4
