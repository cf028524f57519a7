"""The CLI as a newcomer meets it: no tracebacks, no silent truncation, messages
that say what is true, and a start-up that does not load the web server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from cdp.adapters.kafka import topics as kafka_topics
from cdp.cli import _defaults, app
from cdp.demo.generate import GenerateConfig, generate
from cdp.services import analytics, tokens
from tests.loopback import cdp_serve, free_port

pytestmark = pytest.mark.e2e

#: Modules `import cdp.cli` (and so `cdp --help`) must not load.
HEAVY = (
    "fastapi",
    "uvicorn",
    "starlette",
    "duckdb",
    "pydantic",
    "faust",
    "kafka",
    "aiokafka",
    "pyarrow",
    "httpx",
    "phonenumbers",
    "yaml",
    "schemas",
    "projections",
    "cdp.runtime.engine",
    "cdp.http.app",
    "cdp.services.analytics",
    "cdp.adapters.archive",
)


def cdp(data_dir: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(data_dir), *args])


def as_json(data_dir: Path, *args: str) -> Any:
    result = cdp(data_dir, "--json", *args)
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``cdp ARGS`` as the installed script runs it (``main``: its error handling too)."""
    return subprocess.run(
        [sys.executable, "-m", "cdp.cli", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def one_line_error(result: subprocess.CompletedProcess[str], exit_code: int = 2) -> str:
    """The single ``error:`` line of a failed run (no traceback anywhere)."""
    assert result.returncode == exit_code, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hygiene")
    events = root / "events.jsonl"
    generate(events, GenerateConfig(seed=1, customers=200))
    result = cdp(root / "data", "ingest", str(events))
    assert result.exit_code == 0, result.output
    return root / "data"


# ------------------------------------------------------------ start-up cost


def test_importing_the_cli_loads_no_server_database_or_kafka_code() -> None:
    probe = f"import sys, cdp.cli\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"`import cdp.cli` loaded {loaded}: import them inside the commands"


def test_help_lists_every_command_without_the_heavy_modules() -> None:
    result = script("--help")
    assert result.returncode == 0, result.stderr
    for command in ("ingest", "sql", "serve", "segment", "analytics", "export", "profile"):
        assert command in result.stdout


def test_the_cli_copies_of_constants_match_their_sources() -> None:
    assert _defaults.KAFKA_DEFAULT_PREFIX == kafka_topics.DEFAULT_PREFIX
    assert _defaults.KAFKA_DEFAULT_PARTITIONS == kafka_topics.DEFAULT_PARTITIONS
    assert _defaults.KAFKA_DEFAULT_APP_ID == kafka_topics.DEFAULT_APP_ID
    assert _defaults.ANALYTICS_DEFAULT_TZ == analytics.DEFAULT_TZ
    assert _defaults.TOKEN_SCOPES == tokens.SCOPES


# ------------------------------------------------------------ no tracebacks


def test_a_data_dir_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory", encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text('{"type":"track","userId":"u1","event":"X"}\n', encoding="utf-8")
    line = one_line_error(script("--data-dir", str(blocker / "data"), "ingest", str(events)))
    assert str(blocker) in line
    proc = one_line_error(script("--data-dir", "/proc/cdp-cannot-exist", "ingest", str(events)))
    assert "/proc/cdp-cannot-exist" in proc


def test_empty_sql_is_one_line(data_dir: Path) -> None:
    assert "no SQL given" in one_line_error(script("--data-dir", str(data_dir), "sql", ""))
    blank = cdp(data_dir, "sql", "  -- only a comment")
    assert blank.exit_code == 2 and "no result set" in blank.output


def test_a_database_error_is_one_line(data_dir: Path) -> None:
    env = {**os.environ, "CDP_DUCKDB_MEMORY_LIMIT": "lots"}
    line = one_line_error(script("--data-dir", str(data_dir), "status", env=env))
    assert "database:" in line or "memory" in line.lower()


def test_an_unexpected_exception_is_one_line_unless_debugging() -> None:
    program = (
        "from cdp.cli import _app, main\n"
        "@_app.app.command('boom')\n"
        "def boom() -> None:\n"
        "    raise RuntimeError('kaboom')\n"
        "main()\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "CDP_DEBUG"}
    run = subprocess.run(
        [sys.executable, "-c", program, "boom"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
    )
    assert run.returncode == 70, run.stderr
    assert "Traceback" not in run.stderr
    assert "internal error: RuntimeError: kaboom" in run.stderr
    debug = subprocess.run(
        [sys.executable, "-c", program, "boom"],
        check=False,
        capture_output=True,
        text=True,
        env={**env, "CDP_DEBUG": "1"},
    )
    assert "Traceback" in debug.stderr


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """A running `cdp serve`: its data directory and port."""
    data_dir = tmp_path / "served"
    with cdp_serve(data_dir) as server:
        yield data_dir, int(server.url.rpartition(":")[2])


def test_a_second_serve_is_one_line(served: tuple[Path, int], tmp_path: Path) -> None:
    data_dir, port = served
    taken = one_line_error(
        script("--data-dir", str(tmp_path / "other"), "serve", "--port", str(port))
    )
    assert f"127.0.0.1:{port}" in taken and "in use" in taken
    same_dir = script("--data-dir", str(data_dir), "serve", "--port", str(free_port()))
    one_line_error(same_dir)


# ------------------------------------------------------ no silent truncation

RANGE = "SELECT range AS n FROM range(250)"


def test_sql_table_says_how_many_rows_it_left_out(data_dir: Path) -> None:
    default = cdp(data_dir, "sql", RANGE)
    assert default.exit_code == 0, default.output
    assert "100 of 250 rows shown; --limit N, --all or --out FILE.csv for all" in default.output
    limited = cdp(data_dir, "sql", RANGE, "--limit", "5")
    assert "5 of 250 rows shown" in limited.output
    every = cdp(data_dir, "sql", RANGE, "--all")
    assert "rows shown" not in every.output and "│ 249 │" in every.output
    fits = cdp(data_dir, "sql", "SELECT 1 AS one")
    assert "rows shown" not in fits.output


def test_sql_json_returns_every_row(data_dir: Path) -> None:
    rows = as_json(data_dir, "sql", RANGE)
    assert [r["n"] for r in rows] == list(range(250))
    assert len(as_json(data_dir, "sql", RANGE, "--limit", "3")) == 3
    assert as_json(data_dir, "sql", "SELECT 1 AS one WHERE false") == []


def test_sql_out_writes_every_row(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rows.csv"
    summary = as_json(data_dir, "sql", RANGE, "--out", str(out))
    assert summary == {"out": str(out), "rows": 250, "columns": ["n"]}
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "n" and len(lines) == 251 and lines[-1] == "249"


def test_segment_run_says_how_many_members_it_left_out(data_dir: Path) -> None:
    everyone = as_json(data_dir, "segment", "run", "lapsed_repeaters", "--param", "lapsed_days=1")
    count = everyone["count"]
    assert count > 10, "the generated shop has more than 10 repeat buyers"
    assert len(everyone["members"]) == count  # --json lists every member
    text = cdp(data_dir, "segment", "run", "lapsed_repeaters", "--param", "lapsed_days=1")
    assert f"10 of {count} members shown; --all or --out FILE for all" in text.output
    assert (
        "members shown"
        not in cdp(
            data_dir, "segment", "run", "lapsed_repeaters", "--param", "lapsed_days=1", "--all"
        ).output
    )


# ---------------------------------------------------------- segment validate

TYPO = """
name: buyers_typo
rules:
  all:
    - event: {name: Order Complete, within_days: 30}
    - event: {name: Product Viewed}
"""


def test_validate_says_whether_the_file_is_saved(data_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(TYPO, encoding="utf-8")
    fresh = cdp(data_dir, "segment", "validate", str(path))
    assert fresh.exit_code == 0, fresh.output
    assert "(saved)" not in fresh.output
    assert f"not saved: `cdp segment save {path}` saves it as buyers_typo" in fresh.output
    assert as_json(data_dir, "segment", "validate", str(path))["save_state"] == "not saved"
    assert cdp(data_dir, "segment", "save", str(path)).exit_code == 0
    try:
        assert "saved as buyers_typo (the saved definition is identical)" in (
            cdp(data_dir, "segment", "validate", str(path)).output
        )
        path.write_text(TYPO.replace("within_days: 30", "within_days: 60"), encoding="utf-8")
        changed = as_json(data_dir, "segment", "validate", str(path))
        assert changed["save_state"] == "saved with a different definition"
    finally:
        cdp(data_dir, "segment", "delete", "buyers_typo")


def test_validate_warns_about_event_names_the_data_never_saw(
    data_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(TYPO, encoding="utf-8")
    checked = as_json(data_dir, "segment", "validate", str(path))
    assert checked["valid"] is True
    assert checked["warnings"] == [
        "event 'Order Complete' never occurs in the data; did you mean 'Order Completed'?"
    ]
    text = cdp(data_dir, "segment", "validate", str(path))
    assert text.exit_code == 0 and "warning: event 'Order Complete'" in text.output
    no_data = as_json(tmp_path / "empty", "segment", "validate", str(path))
    assert no_data["warnings"] == [] and no_data["checked_against_data"] is False


def test_day_counts_below_one_are_refused_by_name(data_dir: Path, tmp_path: Path) -> None:
    builtin = cdp(data_dir, "segment", "run", "lapsed_repeaters", "--param", "lapsed_days=0")
    assert builtin.exit_code == 2
    assert "parameter 'lapsed_days' is a number of days and must be at least 1" in builtin.output
    window = cdp(data_dir, "segment", "run", "frequent_buyers", "--param", "window_days=-3")
    assert window.exit_code == 2 and "'window_days'" in window.output
    zero_min = cdp(data_dir, "segment", "run", "a_buyers_without_b", "--param", "min_days=0")
    assert zero_min.exit_code == 0, zero_min.output  # "from today" is a valid lower bound
    path = tmp_path / "lapsed.yaml"
    path.write_text(
        "name: lapsed_zero\nparams: {lapsed_days: 0}\nrules:\n"
        "  metric: {field: days_since_last_order, op: gte, value: $lapsed_days}\n",
        encoding="utf-8",
    )
    defined = cdp(data_dir, "segment", "validate", str(path))
    assert defined.exit_code == 2 and "'lapsed_days'" in defined.output


# ------------------------------------------------------------------ profile


def test_profile_without_orders_shows_no_none(data_dir: Path) -> None:
    (row,) = as_json(
        data_dir,
        "sql",
        "SELECT customer_id FROM profiles WHERE coalesce(orders_count, 0) = 0 "
        "ORDER BY customer_id LIMIT 1",
    )
    shown = cdp(data_dir, "profile", row["customer_id"])
    assert shown.exit_code == 0, shown.output
    assert "None" not in shown.output and "AOV —" in shown.output


def test_profile_says_it_shows_the_top_reasons_and_json_holds_all(data_dir: Path) -> None:
    (row,) = as_json(
        data_dir, "sql", "SELECT customer_id FROM profiles ORDER BY lead_score DESC LIMIT 1"
    )
    reasons = as_json(data_dir, "profile", row["customer_id"])["lead"]["explanation"]
    assert len(reasons) > 5
    weights = [abs(r["decayed_points"]) for r in reasons]
    assert weights == sorted(weights, reverse=True)
    shown = cdp(data_dir, "profile", row["customer_id"]).output
    assert f"top 5 of {len(reasons)} reasons; --json for all" in shown


@pytest.mark.parametrize(
    ("identifier", "reason"),
    [
        ("email:nobody@example.com", "example.com is a placeholder domain"),
        ("email:test@shop.jp", "test@ is a test or no-reply mailbox"),
        ("user_id:undefined", "'undefined' is a placeholder"),
        ("email:not-an-email", "not an email address"),
        ("phone:abc", "not a phone number"),
    ],
)
def test_an_unusable_identifier_says_why(data_dir: Path, identifier: str, reason: str) -> None:
    result = cdp(data_dir, "profile", identifier)
    assert result.exit_code == 2
    assert "not a usable identifier" in result.output and reason in result.output


# ------------------------------------------------------------------- replay


def test_replay_as_of_before_the_first_event_is_refused(data_dir: Path) -> None:
    first = as_json(data_dir, "sql", "SELECT min(timestamp) AS t FROM event_log")[0]["t"]
    early = cdp(data_dir, "replay", "--as-of", "2000-01-01")
    assert early.exit_code == 2
    assert "before the first event" in early.output and first[:10] in early.output
    late = as_json(data_dir, "replay", "--as-of", "2100-01-01")
    assert any("equal the live state" in note for note in late["notes"])
    live = as_json(data_dir, "status")["customers"]
    assert late["customers"] == live


def test_history_of_a_segment_never_recorded_says_so(data_dir: Path) -> None:
    result = cdp(data_dir, "segment", "history", "hot_leads")
    assert result.exit_code == 0
    assert "no recorded runs of hot_leads" in result.output
    assert as_json(data_dir, "segment", "history", "hot_leads")["runs"] == []


BIG = "SELECT range AS n FROM range(500000)"


def test_a_reader_that_stops_early_ends_the_stream_quietly(data_dir: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "cdp.cli", "--data-dir", str(data_dir), "--json", "sql", BIG],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.readline() == b"[\n"
    process.stdout.close()  # as `| head -1` does
    error = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=60) == 1
    assert error == "", error
