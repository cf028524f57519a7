"""DuckDB over the archive answers exactly like the embedded data directory:
same ``events`` rows, same profiles, identities and merges, same segment
members; replay from the archive rebuilds the same projections."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from cdp.adapters.archive.layout import ArchiveTopics
from cdp.adapters.archive.log import ArchiveEventLog
from cdp.adapters.archive.restore import copy_events
from cdp.adapters.archive.session import ArchiveSession
from cdp.adapters.duckdb.log import DuckDBEventLog
from cdp.cli import app
from cdp.config import DATA_DIR_ENV, Settings
from cdp.errors import ArchiveError, QueryError
from cdp.runtime.engine import Engine
from cdp.services import segments
from connectors.destinations.archive import Archiver, RollPolicy
from tests.brokers import Broker
from tests.integration.kafka.test_archive_helpers import (
    build_reference,
    create_topics,
    produce_log,
    publish_projections,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def archived(
    broker: Broker, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, Path]]:
    """A reference data directory, and an archive of the same data through Kafka."""
    settings = build_reference(tmp_path_factory.mktemp("reference"), customers=60)
    prefix = f"q{broker.kind}."
    create_topics(broker.bootstrap, prefix)
    produce_log(broker.bootstrap, f"{prefix}log", settings)
    publish_projections(broker.bootstrap, prefix, settings)
    root = tmp_path_factory.mktemp("archive") / "archive"
    Archiver(
        root,
        broker.bootstrap,
        ArchiveTopics.with_prefix(prefix),
        RollPolicy(max_records=400, max_seconds=3600),
    ).run(once=True)
    yield settings, root


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, ...]]:
    return con.execute(sql).fetchall()


@pytest.fixture
def both(archived: tuple[Settings, Path]) -> Iterator[tuple[duckdb.DuckDBPyConnection, Any]]:
    settings, root = archived
    embedded = Engine.open_read_only(settings)
    session = ArchiveSession.open(root, settings.runtime_config().scoring)
    try:
        yield embedded, session.con
    finally:
        session.close()
        embedded.close()


QUERIES = [
    'SELECT * FROM events ORDER BY "offset"',
    "SELECT * FROM profiles ORDER BY customer_id",
    "SELECT * FROM identities ORDER BY identifier",
    'SELECT * FROM merges ORDER BY "offset", from_customer',
    'SELECT * FROM identity_rejections ORDER BY "offset", identifier',
    "SELECT * FROM log_clock",
]


@pytest.mark.parametrize("sql", QUERIES, ids=lambda q: q.split()[3])
def test_views_over_the_archive_equal_the_embedded_views(
    both: tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection], sql: str
) -> None:
    embedded, archive = both
    expected = rows(embedded, sql)
    assert expected, f"the reference has no rows for {sql}"
    assert rows(archive, sql) == expected


def test_every_builtin_segment_has_the_same_members(
    both: tuple[duckdb.DuckDBPyConnection, duckdb.DuckDBPyConnection],
) -> None:
    embedded, archive = both
    nonempty = 0
    for name in segments.BUILTIN:
        expected = segments.run(embedded, name)
        assert sorted(segments.run(archive, name).members) == sorted(expected.members), name
        nonempty += bool(expected.members)
    assert nonempty >= 2


def test_the_session_only_reads(archived: tuple[Settings, Path]) -> None:
    _, root = archived
    victim = next(root.rglob("*.parquet"))
    with ArchiveSession.open(root) as session:
        for sql in (
            f"COPY (SELECT 1) TO '{victim}' (FORMAT parquet, USE_TMP_FILE false)",
            "CREATE TABLE x AS SELECT 1",
            "SELECT 1; DROP VIEW events",
        ):
            with pytest.raises(QueryError, match="only SELECT"):
                session.query(sql)
        with pytest.raises(QueryError, match="disabled"):
            session.query("SELECT * FROM read_csv('/etc/passwd')")
        assert session.query("SELECT count(*) FROM events").rows[0][0] > 0
    with pytest.raises(ArchiveError, match="does not exist"):
        ArchiveSession.open(root / "nowhere")


def test_cli_sql_and_segment_over_the_archive(archived: tuple[Settings, Path]) -> None:
    settings, root = archived
    runner = CliRunner()
    sql = "SELECT count(*) AS n, count(DISTINCT customer_id) AS c FROM events"
    result = runner.invoke(app, ["--json", "sql", "--archive", str(root), sql])
    assert result.exit_code == 0, result.output
    embedded = Engine.open_read_only(settings)
    try:
        expected = embedded.execute(sql).fetchone()
    finally:
        embedded.close()
    assert orjson.loads(result.stdout) == [{"n": expected[0], "c": expected[1]}]
    result = runner.invoke(
        app, ["--json", "segment", "run", "hot_leads", "--archive", str(root), "--limit", "0"]
    )
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["sql", "--archive", str(root), "DELETE FROM customers"])
    assert result.exit_code == 2


def test_archive_event_log_reads_what_the_embedded_log_holds(
    archived: tuple[Settings, Path],
) -> None:
    settings, root = archived
    con = duckdb.connect(str(settings.database), read_only=True)
    archive_log = ArchiveEventLog(root)
    try:
        embedded_log = DuckDBEventLog.__new__(DuckDBEventLog)  # read only: no DDL, no index
        embedded_log._con = con
        embedded_log._high_water = archive_log.high_water()
        for start, stop, size in ((0, None, 333), (17, 801, 50)):
            got = [s for b in archive_log.read(start, stop, size) for s in b]
            want = [s for b in embedded_log.read(start, stop, size) for s in b]
            assert got == want and got
            assert all(len(b) <= size for b in archive_log.read(start, stop, size))
        with pytest.raises(ArchiveError, match="read-only"):
            archive_log.append([])
    finally:
        archive_log.close()
        con.close()


def test_replay_from_the_archive_rebuilds_the_same_projections(
    archived: tuple[Settings, Path], tmp_path: Path
) -> None:
    settings, root = archived
    copy = Settings(tmp_path / "copy")
    runner = CliRunner()
    result = runner.invoke(
        app, ["--json", "--data-dir", str(copy.data_dir), "replay", "--archive", str(root)]
    )
    assert result.exit_code == 0, result.output
    said = orjson.loads(result.stdout)
    assert said["data_dir"] == str(copy.data_dir.resolve())
    assert said["copied_from_archive"] == said["events"] > 0
    on_disk = sum(f.stat().st_size for f in copy.data_dir.rglob("*") if f.is_file())
    assert said["data_dir_bytes"] == on_disk > 0
    columns = "* EXCLUDE (profile_state, lead_state), profile_state::VARCHAR, lead_state::VARCHAR"
    sql = f"SELECT {columns} FROM customers ORDER BY customer_id"
    reference = Engine.open_read_only(settings)
    copied = Engine.open_read_only(copy)
    try:
        assert rows(copied, sql) == rows(reference, sql)
        log_sql = 'SELECT * FROM event_log ORDER BY "offset"'
        assert rows(copied, log_sql) == rows(reference, log_sql)
    finally:
        copied.close()
        reference.close()
    # Copying again adds nothing; a data directory with its own log is refused.
    with Engine.open(copy) as engine:
        assert copy_events(engine, root) == 0
    with Engine.open(settings) as engine, pytest.raises(ArchiveError, match="of its own"):
        copy_events(engine, root)


def test_replay_from_the_archive_says_where_it_writes_and_how_much(
    archived: tuple[Settings, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bare form writes into ./.cdp-data: it must say so, and what it holds."""
    _, root = archived
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    result = CliRunner().invoke(app, ["replay", "--archive", str(root)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    target = (tmp_path / ".cdp-data").resolve()
    copied = Engine.open_read_only(Settings(target))
    try:
        events, customers = copied.execute(
            "SELECT (SELECT count(*) FROM event_log), (SELECT count(*) FROM customers)"
        ).fetchone() or (0, 0)
    finally:
        copied.close()
    assert events > 0
    assert f"copied {events:,} new events from {root}" in result.stdout
    assert f"data directory {target}: {events:,} events, {customers:,} customers, " in (
        result.stdout
    )
