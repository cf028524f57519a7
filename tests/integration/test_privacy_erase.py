"""Erasure of a person from an embedded data directory (issue 16): every byte of the
data directory is scanned for them afterwards, everyone else is unchanged, replay
gives the same result for them, and an interrupted erasure finishes when run again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
from typer.testing import CliRunner

from cdp.adapters.duckdb import erase as duckdb_erase
from cdp.cli import app
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, iter_events
from cdp.services.privacy import erase, requests
from cdp.services.privacy.requests import Requests

pytestmark = pytest.mark.integration

CUSTOMERS = 60


def cli(data: Path, *args: str) -> Any:
    return CliRunner().invoke(app, ["--data-dir", str(data), *args])


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated shop ingested into a data directory (copied per test)."""
    root = tmp_path_factory.mktemp("shop")
    events = root / "events.jsonl"
    events.write_bytes(
        b"".join(orjson.dumps(e) + b"\n" for e in iter_events(GenerateConfig(11, CUSTOMERS)))
    )
    result = cli(root / "data", "ingest", str(events))
    assert result.exit_code == 0, result.output
    return root / "data"


@pytest.fixture
def data(shop: Path, tmp_path: Path) -> Path:
    target = tmp_path / "data"
    con = duckdb.connect(str(shop / "cdp.duckdb"), read_only=True)
    con.close()
    import shutil  # noqa: PLC0415

    shutil.copytree(shop, target)
    return target


def query(data: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(data / "cdp.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def person_with_many_ids(data: Path) -> tuple[str, list[str], dict[str, Any]]:
    """A customer with an email and several anonymous ids: (customer, identifier keys, profile)."""
    rows = query(
        data,
        "SELECT customer_id, list(identifier ORDER BY identifier) FROM identities GROUP BY 1 "
        "HAVING count(*) FILTER (WHERE kind = 'email') > 0 "
        "AND count(*) FILTER (WHERE kind = 'anonymous_id') >= 2 ORDER BY count(*) DESC LIMIT 1",
    )
    assert rows, "the generated shop has nobody with an email and two anonymous ids"
    customer, keys = rows[0]
    cols = [
        r[0]
        for r in query(
            data, "SELECT column_name FROM information_schema.columns WHERE table_name = 'profiles'"
        )
    ]
    profile = dict(
        zip(
            cols,
            query(data, "SELECT * FROM profiles WHERE customer_id = ?", [customer])[0],
            strict=True,
        )
    )
    return customer, list(keys), profile


def needles(keys: list[str], profile: dict[str, Any]) -> set[bytes]:
    """The person in every form the scan looks for: values, normalised, SHA-256 hex."""
    values = {k.partition(":")[2] for k in keys}
    for field in (
        "email",
        "phone",
        "name",
        "first_name",
        "last_name",
        "first_name_kana",
        "last_name_kana",
    ):
        if profile.get(field):
            values.add(str(profile[field]))
    found: set[bytes] = set()
    for value in values:
        if len(value) < 4:
            continue
        for form in {value, value.lower()}:
            found.add(form.encode())
            found.add(hashlib.sha256(form.encode()).hexdigest().encode())
    return found


def hits(root: Path, marks: set[bytes]) -> list[str]:
    out = []
    for path in root.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            out += [f"{path.relative_to(root)}: {m[:40]!r}" for m in marks if m in blob]
    return out


def others(data: Path, customers: set[str]) -> dict[str, tuple[Any, ...]]:
    return {
        r[0]: r
        for r in query(data, "SELECT * FROM profiles ORDER BY customer_id")
        if r[0] not in customers
    }


def test_erasure_leaves_no_byte_of_the_person_and_everyone_else_as_before(data: Path) -> None:
    customer, keys, profile = person_with_many_ids(data)
    marks = needles(keys, profile)
    assert hits(data, marks), "the scan must find the person before the erasure"
    email = next(k for k in keys if k.startswith("email:"))
    merged = {
        r[0]
        for r in query(data, "SELECT from_customer FROM merges WHERE into_customer = ?", [customer])
    }
    before = others(data, {customer, *merged})

    result = cli(data, "--json", "privacy", "erase", email)
    assert result.exit_code == 0, result.output
    [done] = orjson.loads(result.stdout)
    assert done["status"] == "finished"
    assert "subject" not in done and email not in result.stdout
    assert done["counts"]["event_log"] > 0

    assert hits(data, marks) == []
    assert others(data, {customer, *merged}) == before
    assert query(
        data,
        "SELECT count(*) FROM identities WHERE customer_id IN (SELECT unnest(?))",
        [sorted({customer, *merged})],
    ) == [(0,)]

    replay = cli(data, "replay")
    assert replay.exit_code == 0, replay.output
    assert others(data, {customer, *merged}) == before
    assert hits(data, marks) == []


def test_an_erasure_interrupted_before_the_rewrite_finishes_when_run_again(data: Path) -> None:
    _customer, keys, profile = person_with_many_ids(data)
    marks = needles(keys, profile)
    settings = Settings.resolve(data)
    registry = Requests(data)
    request = registry.file(requests.DELETE, keys[0], "test")
    request = registry.update(request, status=requests.RUNNING)
    # The crash: rows deleted, the file not rewritten yet (deleted bytes still in it).
    person = erase.find_person(settings, keys[0])
    con = duckdb.connect(str(settings.database))
    duckdb_erase.remove(con, person)
    con.close()
    assert registry.open() == [request]
    leftover = (data / "cdp.duckdb").read_bytes()
    assert any(m in leftover for m in marks), "deleted, not rewritten: the bytes are still there"

    result = cli(data, "--json", "privacy", "process")
    assert result.exit_code == 0, result.output
    assert [r["status"] for r in orjson.loads(result.stdout)] == ["finished"]
    assert hits(data, marks) == []  # the deleted bytes went with the rewrite
    assert registry.open() == []
    assert registry.get(request.id).subject is None  # done: the identifier is forgotten


def test_an_erasure_resumed_after_its_deletes_still_reaches_every_copy(data: Path) -> None:
    """The process dies after the database is done (a copy step raises
    ``KeyboardInterrupt``, which nothing catches, as a killed process stops). The
    database no longer knows the person, yet the next run hands every copy (the
    archive, audiences, APPI records, SFAs) all their customers and identifiers:
    the request saved them before deleting anything, and forgets them when done."""
    customer, keys, _profile = person_with_many_ids(data)
    merged = {
        r[0]
        for r in query(data, "SELECT from_customer FROM merges WHERE into_customer = ?", [customer])
    }
    settings = Settings.resolve(data)
    registry = Requests(data)
    email = next(k for k in keys if k.startswith("email:"))
    request = registry.file(requests.DELETE, email, "test")

    def killed(request: Any, person: Any) -> dict[str, str]:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        erase.run(settings, request, [killed])
    interrupted = registry.get(request.id)
    assert interrupted.status == requests.RUNNING
    assert "person" not in interrupted.public() and "subject" not in interrupted.public()
    assert erase.find_person(settings, email).customer_ids == frozenset()  # gone from the file

    handed: list[Any] = []

    def copies(request: Any, person: Any) -> dict[str, str]:
        handed.append(person)
        return {}

    done = erase.run(settings, interrupted, [copies])
    assert done.status == requests.FINISHED
    [person] = handed
    assert person.customer_ids == {customer, *merged}
    assert set(keys) <= person.identifiers
    assert getattr(done, "person", None) is None and done.subject is None


def test_erasures_waiting_together_share_one_rewrite(data: Path) -> None:
    """Two erasures processed together: both people's rows go, the file is
    rewritten once for both (the rewrite costs as much as the file, whoever it is
    for), each request says so, and everyone else is as before."""
    first, *_ = person_with_many_ids(data)
    rows = query(
        data,
        "SELECT customer_id, list(identifier ORDER BY identifier) FROM identities "
        "WHERE customer_id <> ? GROUP BY 1 "
        "HAVING count(*) FILTER (WHERE kind = 'email') > 0 ORDER BY 1 LIMIT 1",
        [first],
    )
    second, second_keys = rows[0][0], list(rows[0][1])
    first_keys = [
        r[0]
        for r in query(data, "SELECT identifier FROM identities WHERE customer_id = ?", [first])
    ]
    merged = {
        r[0]
        for r in query(
            data,
            "SELECT from_customer FROM merges WHERE into_customer IN (SELECT unnest(?))",
            [[first, second]],
        )
    }
    before = others(data, {first, second, *merged})
    marks = {v.encode() for v in values_of(first_keys + second_keys) if len(v) >= 4}
    assert hits(data, marks)
    registry = Requests(data)
    for keys in (first_keys, second_keys):
        email = next(k for k in keys if k.startswith("email:"))
        registry.file(requests.DELETE, email, "test")

    result = cli(data, "--json", "privacy", "process")
    assert result.exit_code == 0, result.output
    done = orjson.loads(result.stdout)
    assert [r["status"] for r in done] == ["finished", "finished"]
    assert [r["counts"]["erased_together"] for r in done] == [2, 2]
    assert done[0]["counts"]["file_bytes"] == done[1]["counts"]["file_bytes"]
    assert all(r["counts"]["event_log"] > 0 for r in done)
    assert hits(data, marks) == []
    assert others(data, {first, second, *merged}) == before


def values_of(keys: list[str]) -> list[str]:
    return [k.partition(":")[2] for k in keys]


def test_suppress_then_unsuppress_keeps_the_data(data: Path) -> None:
    _customer, keys, _ = person_with_many_ids(data)
    events = query(data, "SELECT count(*) FROM event_log")[0][0]
    result = cli(data, "--json", "privacy", "suppress", keys[0])
    assert result.exit_code == 0, result.output
    from cdp.services.privacy.suppressions import SuppressionList  # noqa: PLC0415

    assert all(SuppressionList.load(data).suppressed([k]) for k in keys)  # every id of theirs
    assert query(data, "SELECT count(*) FROM event_log")[0][0] == events
    assert cli(data, "privacy", "unsuppress", keys[-1]).exit_code == 0
    assert not any(SuppressionList.load(data).suppressed([k]) for k in keys)


def test_an_unknown_identifier_is_a_finished_request_that_removed_nothing(data: Path) -> None:
    result = cli(data, "--json", "privacy", "erase", "email:nobody-here@example.jp")
    assert result.exit_code == 0, result.output
    [done] = orjson.loads(result.stdout)
    assert done["counts"]["customers"] == 0 and done["counts"].get("event_log", 0) == 0


def test_a_malformed_identifier_is_refused_naming_it(data: Path) -> None:
    result = cli(data, "privacy", "erase", "shoe:size-9")
    assert result.exit_code == 2
    assert "shoe:size-9" in result.output
