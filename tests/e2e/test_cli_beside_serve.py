"""The CLI beside a running ``cdp serve`` on the same data directory.

One real server process for the module (a small generated shop). Every read
command gives, through the server's local socket, exactly what it gives with
the server stopped; statements that could write or read files are refused as
the direct read-only connection refuses them; ``cdp ingest`` appends through
the server; other writes refuse in one line that says what to do.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import httpx
import orjson
import pytest
from typer.testing import CliRunner, Result

from cdp.adapters.duckdb import guard as read_guard
from cdp.adapters.socket import client as local_client
from cdp.adapters.socket.protocol import socket_path
from cdp.adapters.socket.server import LocalServer
from cdp.cli import app
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.runtime.engine import Engine
from cdp.runtime.writer import GroupCommitWriter
from cdp.services import deadletters
from cdp.services.ingest import ingest
from tests.loopback import start_cdp_serve

pytestmark = pytest.mark.e2e

SEGMENT = "engaged_never_bought"
READS: dict[str, list[str]] = {
    "status": ["status"],
    "sql": ["sql", "SELECT * FROM profiles ORDER BY customer_id"],
    "sql events": ["sql", 'SELECT * FROM events ORDER BY "offset" DESC LIMIT 50'],
    "profile": ["profile", "PROFILE"],
    "segment run": ["segment", "run", SEGMENT],
    "segment run rfm": ["segment", "run", "frequent_buyers"],
    "segment history": ["segment", "history", SEGMENT],
    "analytics rfm": ["analytics", "rfm", "--customers"],
    "analytics ltv": ["analytics", "ltv"],
    "analytics retention": ["analytics", "retention"],
    "analytics next-purchase": ["analytics", "next-purchase"],
    "analytics sequences": ["analytics", "sequences"],
    "analytics email-ab": ["analytics", "email-ab"],
    "analytics funnel": ["analytics", "funnel"],
    "deadletter list": ["deadletter", "list", "--all"],
    "export": ["export", SEGMENT, "--to", "csv", "--out", "OUT", "--consent", "none"],
}
REFUSED = {
    "read_csv": "SELECT * FROM read_csv('/etc/passwd')",
    "file path": "SELECT * FROM '/etc/passwd'",
    "read_text": "SELECT (SELECT count(*) FROM read_text('/etc/passwd'))",
    "copy": "COPY (SELECT 1) TO 'copied.csv'",
    "insert": "INSERT INTO customers SELECT * FROM customers",
    "delete": "DELETE FROM event_log",
    "attach": "ATTACH 'other.duckdb'",
    "create": "CREATE TABLE planted (a INTEGER)",
    "two statements": "SELECT 1; DROP TABLE customers",
}
# A private read-only connection may change its own settings; the server's
# database is shared (``SET threads`` is global there), so the socket refuses.
REFUSED_BY_SERVER = {
    "set": "SET threads = 1",
    "pragma": "PRAGMA threads = 1",
}


def cdp(data_dir: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["--data-dir", str(data_dir), "--json", *args])


def one_line_error(result: Result) -> str:
    """The error a command printed; it must be a single line."""
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    return lines[0]


@dataclass
class Shop:
    data_dir: Path
    url: str
    key: str
    email: str
    pid: int
    direct: dict[str, tuple[int, Any, bytes]] = field(default_factory=dict)
    served: dict[str, tuple[int, Any, bytes]] = field(default_factory=dict)
    direct_refusals: dict[str, int] = field(default_factory=dict)


def run_reads(data_dir: Path, out_dir: Path, email: str) -> dict[str, tuple[int, Any, bytes]]:
    """Every read command: (exit code, JSON output, bytes of the file it wrote)."""
    answers = {}
    for name, args in READS.items():
        out = out_dir / f"{name.replace(' ', '-')}.csv"
        argv = [f"email:{email}" if a == "PROFILE" else str(out) if a == "OUT" else a for a in args]
        result = cdp(data_dir, *argv)
        assert result.exit_code == 0, (name, result.output)
        data = orjson.loads(result.stdout)
        if isinstance(data, dict):
            data.pop("file", None)  # the --out path differs between the runs
        answers[name] = (result.exit_code, data, out.read_bytes() if out.exists() else b"")
    return answers


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("beside-serve")
    data_dir = root / "data"
    settings = Settings(data_dir)
    events = iter_events(GenerateConfig(seed=1, customers=200))
    with Engine.open(settings) as engine:
        assert ingest(((str(i), e) for i, e in enumerate(events)), engine).rejected == 0
        deadletters.add(
            engine.con,
            received_at=datetime(2026, 5, 1, tzinfo=UTC),
            source="web",
            endpoint="batch",
            reason="needs userId or anonymousId",
            body=b'{"batch": [{"type": "page"}]}',
        )
    email = orjson.loads(
        cdp(data_dir, "sql", "SELECT min(email) AS e FROM profiles WHERE email IS NOT NULL").stdout
    )[0]["e"]
    key = orjson.loads(cdp(data_dir, "sources", "add", "web").stdout)["write_key"]
    (root / "direct").mkdir()
    (root / "served").mkdir()
    shop = Shop(data_dir, "", key, email, 0)
    shop.direct = run_reads(data_dir, root / "direct", email)  # the server is not running yet
    for name, sql in REFUSED.items():
        shop.direct_refusals[name] = cdp(data_dir, "sql", sql).exit_code

    server = start_cdp_serve(data_dir)
    try:
        shop.url = server.url
        shop.pid = server.pid
        # Before any test writes: the same data as the direct answers.
        shop.served = run_reads(data_dir, root / "served", email)
        yield shop
    finally:
        server.stop()
    assert not socket_path(data_dir).exists(), "cdp serve left its socket behind"


@pytest.mark.parametrize("name", list(READS))
def test_read_commands_answer_as_without_the_server(shop: Shop, name: str) -> None:
    assert shop.served[name] == shop.direct[name]


def test_the_served_answers_hold_data(shop: Shop) -> None:
    """The comparison above is not between two empty answers."""
    assert shop.served["status"][1]["events"] > 5_000
    assert len(shop.served["sql"][1]) > 100
    assert shop.served["export"][2].count(b"\n") > 1
    assert shop.served["deadletter list"][1][0]["reason"] == "needs userId or anonymousId"


def test_the_socket_is_private(shop: Shop) -> None:
    mode = os.stat(socket_path(shop.data_dir)).st_mode
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


@pytest.mark.parametrize("name", [*REFUSED, *REFUSED_BY_SERVER])
def test_sql_that_writes_or_reads_files_is_refused(shop: Shop, name: str) -> None:
    if name in REFUSED:
        assert shop.direct_refusals[name] == 2  # the direct read-only connection refuses it too
    result = cdp(shop.data_dir, "sql", {**REFUSED, **REFUSED_BY_SERVER}[name])
    assert result.exit_code == 2
    assert one_line_error(result).startswith("error: ")
    assert not (shop.data_dir / "copied.csv").exists()
    assert not (Path.cwd() / "copied.csv").exists()


def test_nothing_was_written_by_a_refused_statement(shop: Shop) -> None:
    for sql in [REFUSED["create"], REFUSED["copy"], *REFUSED_BY_SERVER.values()]:
        cdp(shop.data_dir, "sql", sql)
    tables = orjson.loads(cdp(shop.data_dir, "sql", "SHOW TABLES").stdout)
    assert "planted" not in {t["name"] for t in tables}
    threads = orjson.loads(
        cdp(shop.data_dir, "sql", "SELECT current_setting('threads') AS t").stdout
    )
    assert threads[0]["t"] != 1 or (os.cpu_count() or 1) == 1
    assert cdp(shop.data_dir, "status").exit_code == 0


def test_an_error_after_the_first_rows_is_reported_and_the_next_query_runs(shop: Shop) -> None:
    failing = "SELECT CASE WHEN range > 100000 THEN error('boom') ELSE range END FROM range(200000)"
    result = cdp(shop.data_dir, "sql", failing)
    assert result.exit_code == 2
    assert "boom" in result.output
    assert orjson.loads(cdp(shop.data_dir, "sql", "SELECT 1 AS one").stdout) == [{"one": 1}]


TYPED = """SELECT $amount::DECIMAL(12, 2) * 2 AS amount, $at AS at, $day AS day, $names AS names,
    sum(range)::HUGEINT AS huge, '5b1f3b1e-0b8e-4a3f-9d7c-9d4b2b9f2c11'::UUID AS id,
    {'k': [1, 2], 'v': {'x': 1.5::DECIMAL(4, 2)}} AS nested, MAP {'a': 1} AS mapped,
    INTERVAL 3 DAY AS span, NULL AS nothing, 1 AS dup, 2 AS dup,
    $at::TIMESTAMPTZ AS local_time, $at::TIMESTAMPTZ::DATE AS local_day
FROM range(10)"""


def test_values_cross_the_socket_with_their_types(shop: Shop) -> None:
    params = {
        "amount": Decimal("1234.50"),
        "at": datetime(2026, 3, 1, 23, 30, tzinfo=ZoneInfo("Asia/Tokyo")),
        "day": date(2026, 3, 2),
        "names": ["a", "b"],
    }
    remote = local_client.connect(shop.data_dir)
    assert remote is not None
    with remote:
        served = remote.execute(TYPED, params)
        description = [(d[0], str(d[1])) for d in served.description or []]
        rows = served.fetchall()
    direct = duckdb.connect().execute(TYPED, params)
    assert description == [(d[0], str(d[1])) for d in direct.description or []]
    assert rows == direct.fetchall()
    assert isinstance(rows[0][0], Decimal) and rows[0][0] == Decimal("2469.00")


def positions(data_dir: Path) -> tuple[int, int]:
    """(offset the checkpoint reached, the log's next offset), read through the server."""
    rows = orjson.loads(
        cdp(
            data_dir,
            "sql",
            "SELECT (SELECT max(next_offset) FROM positions) AS saved, "
            '(SELECT max("offset") + 1 FROM event_log) AS logged',
        ).stdout
    )
    return int(rows[0]["saved"]), int(rows[0]["logged"])


def test_an_event_posted_to_the_server_is_read_after_a_checkpoint(shop: Shop) -> None:
    event = {
        "type": "identify",
        "messageId": "beside-serve-http-1",
        "userId": "beside-serve-http-1",
        "timestamp": "2026-06-01T00:00:00Z",
        "traits": {"email": "posted@shop.example.jp"},
    }
    answer = httpx.post(f"{shop.url}/v1/identify", json=event, auth=(shop.key, ""), timeout=10)
    assert answer.status_code == 200, answer.text
    # The server checkpoints every 10 s while events arrive; ask for that
    # checkpoint now (as `cdp ingest` does) instead of waiting for it.
    remote = local_client.connect(shop.data_dir)
    assert remote is not None
    with remote:
        remote.checkpoint()
    saved, logged = positions(shop.data_dir)
    assert saved == logged
    rows = orjson.loads(
        cdp(
            shop.data_dir,
            "sql",
            "SELECT email FROM profiles WHERE email = 'posted@shop.example.jp'",
        ).stdout
    )
    assert rows == [{"email": "posted@shop.example.jp"}]


def test_ingest_goes_through_the_server(shop: Shop, tmp_path: Path) -> None:
    lines = [
        {
            "type": "identify",
            "messageId": "beside-serve-file-1",
            "userId": "beside-serve-file-1",
            "timestamp": "2026-06-02T00:00:00Z",
            "traits": {"email": "ingested@shop.example.jp"},
        },
        {
            "type": "track",
            "messageId": "beside-serve-file-2",
            "userId": "beside-serve-file-1",
            "event": "Product Viewed",
            "timestamp": "2026-06-02T00:01:00Z",
            "properties": {"product_id": "TEA-STARTER"},
        },
        {"no": "type"},
    ]
    path = tmp_path / "more.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(line) for line in lines) + b"\n")
    first = cdp(shop.data_dir, "ingest", str(path))
    assert first.exit_code == 1, first.output  # one line rejected, the others kept
    report = orjson.loads(first.stdout)
    assert (report["accepted"], report["rejected"]) == (2, 1)
    # The server saved its projections at the end of the ingest: visible at once.
    profile = orjson.loads(cdp(shop.data_dir, "profile", "email:ingested@shop.example.jp").stdout)
    assert "user_id:beside-serve-file-1" in profile["identifiers"]
    again = orjson.loads(cdp(shop.data_dir, "ingest", str(path)).stdout)
    assert (again["accepted"], again["duplicates"]) == (0, 2)


@pytest.mark.parametrize(
    ("args", "instead"),
    [
        (["replay"], "a replay rebuilds"),
        (["segment", "refresh", SEGMENT], "cdp segment run NAME"),
        (["segment", "run", SEGMENT, "--record"], "leave out --record"),
        (["deadletter", "retry"], "then retry"),
    ],
    ids=["replay", "segment refresh", "segment run --record", "deadletter retry"],
)
def test_write_commands_say_what_to_do(shop: Shop, args: list[str], instead: str) -> None:
    result = cdp(shop.data_dir, *args)
    assert result.exit_code == 2
    line = one_line_error(result)
    assert f"cdp serve (pid {shop.pid}) is running on {shop.data_dir}: stop it first" in line
    assert instead in line


def test_sources_and_tokens_reach_the_running_server(shop: Shop) -> None:
    key = orjson.loads(cdp(shop.data_dir, "sources", "add", "shop-app").stdout)["write_key"]
    event = {"type": "track", "userId": "app-1", "event": "App Opened", "messageId": "app-1"}
    answer = httpx.post(f"{shop.url}/v1/track", json=event, auth=(key, ""), timeout=10)
    assert answer.status_code == 200, answer.text
    assert cdp(shop.data_dir, "sources", "revoke", "shop-app").exit_code == 0
    refused = httpx.post(f"{shop.url}/v1/track", json=event, auth=(key, ""), timeout=10)
    assert refused.status_code == 401

    token = orjson.loads(
        cdp(shop.data_dir, "tokens", "add", "crm", "--scope", "profiles:read").stdout
    )
    bearer = {"Authorization": f"Bearer {token['token']}"}
    profile = f"{shop.url}/v1/profiles/email:{shop.email}"
    found = httpx.get(profile, headers=bearer, timeout=10)
    assert found.status_code == 200, found.text
    assert cdp(shop.data_dir, "tokens", "revoke", "crm").exit_code == 0
    gone = httpx.get(profile, headers=bearer, timeout=10)
    assert gone.status_code == 401


def test_segments_saved_beside_the_server_run_through_it(shop: Shop, tmp_path: Path) -> None:
    rules = tmp_path / "beside_repeaters.yaml"
    rules.write_text(
        "name: beside_repeaters\n"
        "rules:\n  all:\n    - trait: {field: lifecycle_stage, op: eq, value: repeater}\n",
        encoding="utf-8",
    )
    raw = tmp_path / "beside_repeaters_sql.yaml"
    raw.write_text(
        "name: beside_repeaters_sql\n"
        "sql: SELECT customer_id FROM profiles WHERE lifecycle_stage = 'repeater'\n",
        encoding="utf-8",
    )
    expected = orjson.loads(
        cdp(
            shop.data_dir,
            "sql",
            "SELECT count(*) AS n FROM profiles WHERE lifecycle_stage = 'repeater'",
        ).stdout
    )[0]["n"]
    assert expected > 0
    for path in (rules, raw):
        assert cdp(shop.data_dir, "segment", "validate", str(path)).exit_code == 0
        saved = cdp(shop.data_dir, "segment", "save", str(path))
        assert saved.exit_code == 0, saved.output
    for name in ("beside_repeaters", "beside_repeaters_sql"):
        result = cdp(shop.data_dir, "segment", "run", name)
        assert result.exit_code == 0, result.output
        assert orjson.loads(result.stdout)["count"] == expected


# ------------------------------------------------- without a server process
def test_a_stale_socket_is_ignored_and_replaced(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    with Engine.open(settings) as engine:
        ingest([("1", {"type": "page", "messageId": "p-1", "anonymousId": "a-1"})], engine)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a server killed with -9
    stale.bind(str(socket_path(settings.data_dir)))
    stale.close()
    assert socket_path(settings.data_dir).exists()
    status = orjson.loads(cdp(settings.data_dir, "status").stdout)  # the lock is free: direct
    assert status["events"] == 1

    writer = GroupCommitWriter(lambda: Engine.open(settings))
    writer.start()
    server = LocalServer(settings.data_dir, writer)
    try:
        assert server.start()  # nobody answered on the old socket: it was replaced
        remote = local_client.connect(settings.data_dir)
        assert remote is not None
        with remote:
            assert remote.execute("SELECT count(*) FROM event_log").fetchall() == [(1,)]
        assert not LocalServer(settings.data_dir, writer).start()  # never steal a live one
    finally:
        server.close()
        writer.stop()
    assert not socket_path(settings.data_dir).exists()


def test_a_busy_directory_without_a_server_says_so(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    with Engine.open(settings) as engine:
        ingest([("1", {"type": "page", "messageId": "p-1", "anonymousId": "a-1"})], engine)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from cdp.config import Settings; from cdp.runtime.engine import Engine; "
            f"e = Engine.open(Settings(pathlib.Path({str(settings.data_dir)!r}))); "
            "print('held', flush=True); "
            "sys.stdin.read(); e.close()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        result = cdp(settings.data_dir, "status")
        assert result.exit_code == 2
        assert "does not answer on" in one_line_error(result)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        if holder.stdout is not None:
            holder.stdout.close()


# ---------------------------------------------------------------- the guard
@pytest.mark.parametrize(
    "sql",
    [
        "SELECT * FROM profiles",
        "WITH recent AS (SELECT * FROM events) SELECT count(*) FROM recent",
        "SELECT * FROM range(3)",
        "SELECT * FROM unnest([1, 2])",
        "DESCRIBE profiles",
        "SHOW TABLES",
        "SUMMARIZE profiles",
        "SELECT * FROM information_schema.tables",
        "SELECT current_setting('TimeZone')",
        "BEGIN TRANSACTION",
    ],
)
def test_the_guard_lets_reads_through(sql: str) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE profiles (id INTEGER); CREATE TABLE events (id INTEGER)")
    read_guard.check(con, sql)


@pytest.mark.parametrize(
    "sql",
    [
        *REFUSED.values(),
        *REFUSED_BY_SERVER.values(),
        "SELECT * FROM glob('/etc/*')",
        "SELECT * FROM parquet_scan('x.parquet')",
        "SELECT * FROM sniff_csv('x.csv')",
        "SELECT getenv('HOME')",
        "SELECT nextval('seq')",
        "SELECT * FROM query('SELECT 1')",
        "DESCRIBE 'x.csv'",
        "SELECT * FROM (WITH \"x.csv\" AS (SELECT 1) SELECT 1), 'x.csv'",
        "SELECT * FROM profiles, LATERAL (SELECT * FROM read_json('x.json'))",
        "SELECT * FROM other.main.profiles",
        "EXPLAIN SELECT 1",
        "",
    ],
)
def test_the_guard_refuses_the_rest(sql: str) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE profiles (id INTEGER); CREATE TABLE customers (id INTEGER)")
    con.execute("CREATE TABLE event_log (id INTEGER)")
    with pytest.raises(duckdb.Error):
        read_guard.check(con, sql)
