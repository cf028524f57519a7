"""The read API (``/v1/profiles``, ``/v1/segments``) over real HTTP on loopback.

A generated shop is served by ``create_app`` with a real writer; answers are
checked against the analyst views (``reference_lookup`` of test_lookup) and
against segments evaluated in-process; auth is checked for every way a token
can be wrong; lookups run while the collector ingests.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import pytest

from cdp.config import Settings
from cdp.http.app import create_app
from cdp.http.read import json_default
from cdp.read import keys
from cdp.runtime.engine import Engine
from cdp.runtime.writer import GroupCommitWriter
from cdp.services.privacy import audit, files
from cdp.services.segment_lang import SegmentCatalog
from cdp.services.sources import SourceRegistry
from cdp.services.tokens import TokenRegistry
from tests.factories import at_days, raw_identify, raw_page
from tests.integration.test_lookup import build_shop, owners, reference_lookup
from tests.loopback import serve_app

pytestmark = pytest.mark.integration


@dataclass
class Service:
    url: str
    settings: Settings
    writer: GroupCommitWriter[Any]
    tokens: dict[str, str]
    write_key: str
    audit_log: audit.AuditLog

    def get(self, path: str, token: str | None = None, **params: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            return client.get(path, headers=headers, params=params or None)

    def engine(self, fn: Any) -> Any:
        return self.writer.call(fn).result(timeout=60)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shop(tmp_path_factory.mktemp("read-api") / "data", 60).data_dir


@pytest.fixture
def service(shop: Path, tmp_path: Path) -> Iterator[Service]:
    settings = Settings(tmp_path / "data")
    shutil.copytree(shop, settings.data_dir)
    registry = TokenRegistry(settings.data_dir)
    tokens = {
        "both": registry.add("both", ["profiles:read", "segments:read"]),
        "profiles": registry.add("profiles", ["profiles:read"]),
        "segments": registry.add("segments", ["segments:read"]),
        "gone": registry.add("gone", ["profiles:read", "segments:read"]),
    }
    registry.revoke("gone")
    write_key = SourceRegistry(settings.data_dir).add("web")
    writer: GroupCommitWriter[Any] = GroupCommitWriter(
        lambda: Engine.open(settings), checkpoint_every=0.2
    )
    writer.start()
    try:
        app = create_app(settings, writer)
        for url in serve_app(app):
            yield Service(url, settings, writer, tokens, write_key, app.state.audit)
    finally:
        writer.stop()


def as_json(data: Any) -> Any:
    """What the API's JSON rules make of an in-process answer."""
    return orjson.loads(orjson.dumps(data, default=json_default))


def expected(service: Service, customer_id: str, recent: int = 10) -> dict[str, Any]:
    return as_json(service.engine(lambda e: reference_lookup(e.con, customer_id, recent=recent)))


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in {"matched", "segments", "freshness"}}


def some_identifiers(service: Service) -> dict[str, tuple[str, str]]:
    """One (identifier, customer) per identifier kind."""
    pairs = service.engine(lambda e: owners(e.con))
    return {k.partition(":")[0]: (k, c) for k, c in reversed(pairs)}


# ---------------------------------------------------------------------- auth
def test_no_data_without_the_right_token(service: Service) -> None:
    identifier, _ = some_identifiers(service)["email"]
    profile_path = f"/v1/profiles/{quote(identifier)}"
    for path, wrong_scope in (
        (profile_path, "segments"),
        ("/v1/segments", "profiles"),
        ("/v1/segments/hot_leads", "profiles"),
    ):
        refusals = {
            401: [
                service.get(path),
                service.get(path, "rt_not-a-token"),
                service.get(path, service.tokens["gone"]),
                service.get(path, service.write_key),  # a write key cannot read
            ],
            403: [service.get(path, service.tokens[wrong_scope])],
        }
        for status, answers in refusals.items():
            for answer in answers:
                assert answer.status_code == status, (path, answer.text)
                body = answer.json()
                assert set(body) == {"success", "error", "status"} and body["error"]
                assert "@" not in answer.text  # nothing of the customer leaks
        assert service.get(path, service.tokens["both"]).status_code == 200
    basic = httpx.get(f"{service.url}{profile_path}", auth=(service.tokens["both"], ""), timeout=10)
    assert basic.status_code == 401 and "Bearer" in basic.json()["error"]
    assert "write key" in service.get(profile_path, service.write_key).json()["error"]


def test_a_read_token_is_not_a_write_key(service: Service) -> None:
    event = raw_page("/", anonymous_id="a-1", at=at_days(1))
    for key in (service.tokens["both"], service.tokens["profiles"]):
        answer = httpx.post(f"{service.url}/v1/page", json=event, auth=(key, ""), timeout=10)
        assert answer.status_code == 401
    ok = httpx.post(f"{service.url}/v1/page", json=event, auth=(service.write_key, ""), timeout=10)
    assert ok.status_code == 200


def test_revoking_a_token_takes_effect_without_a_restart(service: Service) -> None:
    registry = TokenRegistry(service.settings.data_dir)
    token = registry.add("temporary", ["segments:read"])
    assert service.get("/v1/segments", token).status_code == 200
    registry.revoke("temporary")
    answer = service.get("/v1/segments", token)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]
    assert "segments" not in answer.json()


# ------------------------------------------------------------------ profiles
def test_every_identifier_type_gives_the_customer_cdp_profile_gives(service: Service) -> None:
    kinds = some_identifiers(service)
    assert set(kinds) >= {"email", "phone", "user_id", "anonymous_id", "line"}
    token = service.tokens["profiles"]
    for kind, (identifier, customer) in kinds.items():
        value = identifier.partition(":")[2]
        typed = value.upper() if kind == "email" else value
        answer = service.get(f"/v1/profiles/{kind}:{quote(typed, safe='')}", token)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["customer_id"] == customer and body["matched"] == identifier
        assert comparable(body) == expected(service, customer)
        assert identifier in body["identifiers"]
        assert body["freshness"]["log_offset"] >= 0
    _, customer = kinds["email"]
    by_id = service.get(f"/v1/profiles/{customer}", token, events=3).json()
    assert comparable(by_id) == expected(service, customer, recent=3)
    # the CLI's JSON rules: decimals as strings, times in ISO 8601
    assert isinstance(by_id["profile"]["revenue"], str)
    assert by_id["lead"]["as_of"].endswith("+00:00")


def test_a_merged_away_customer_resolves_to_the_survivor(service: Service) -> None:
    rows = service.engine(
        lambda e: e.con.execute(
            "SELECT m.from_customer, g.customer_id FROM merges m "
            "JOIN identity_graph g ON g.identifier = m.via LIMIT 3"
        ).fetchall()
    )
    assert rows
    for loser, survivor in rows:
        body = service.get(f"/v1/profiles/{loser}", service.tokens["profiles"]).json()
        assert body["customer_id"] == survivor and body["matched"] == loser
        assert loser in {m["from_customer"] for m in body["merges"]}


def test_unknown_is_404_and_malformed_is_400(service: Service) -> None:
    token = service.tokens["profiles"]
    for path, status, words in (
        ("/v1/profiles/email:nobody%40nowhere.jp", 404, "no customer has identifier"),
        ("/v1/profiles/cus_nobody", 404, "no customer"),
        ("/v1/profiles/fax:123", 400, "unknown identifier kind"),
        ("/v1/profiles/email:", 400, "kind:value"),
        ("/v1/profiles/nocolon", 400, "kind:value"),
        ("/v1/profiles/phone:abc", 400, "not a usable identifier"),
        ("/v1/profiles/email:a%40b.jp?events=many", 400, "'events' must be a whole number"),
        ("/v1/profiles/email:a%40b.jp?events=-1", 400, "between 0 and 1000"),
        ("/v1/segments/no_such_segment", 404, "no segment named"),
        ("/v1/segments/hot_leads?limit=0", 400, "'limit' must be between"),
    ):
        answer = service.get(path, service.tokens["both"] if "segments" in path else token)
        assert answer.status_code == status, (path, answer.text)
        assert words in answer.json()["error"], path


def test_the_audit_log_names_the_token_not_the_identifier(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    identifier, _ = some_identifiers(service)["email"]
    with caplog.at_level(logging.INFO, logger="cdp.audit"):
        service.get(f"/v1/profiles/{quote(identifier)}", service.tokens["profiles"])
        service.get(f"/v1/profiles/{quote(identifier)}", service.tokens["segments"])
        service.get("/v1/segments", service.tokens["segments"])
    lines = [r.getMessage() for r in caplog.records if r.name == "cdp.audit"]
    assert len(lines) == 3
    assert "token=profiles" in lines[0] and "status=200" in lines[0]
    assert "token=segments" in lines[1] and "status=403" in lines[1]
    assert "route=segments" in lines[2]
    value = identifier.partition(":")[2]
    assert all(value not in line and value.split("@")[0] not in line for line in lines)
    assert all("target" not in line and "sha256" not in line for line in lines)
    # The audit log file has the same requests, the identifier as its peppered token.
    service.audit_log.flush()
    data_dir = service.settings.data_dir
    lookups = audit.entries(data_dir, action="profile.lookup")[-2:]
    assert [(e.actor, e.details["status"]) for e in lookups] == [
        ("profiles", 200),
        ("segments", 403),
    ]
    token = audit.subject(files.pepper(data_dir), identifier)
    assert token.startswith("email:") and all(e.target == token for e in lookups)
    assert audit.entries(data_dir, action="segment.list")[-1].actor == "segments"
    written = b"".join(p.read_bytes() for p in audit.directory(data_dir).iterdir())
    assert value.encode() not in written and audit.verify(data_dir).ok


# ------------------------------------------------------------------ segments
def test_segment_list_and_pages_cover_every_member_once(service: Service) -> None:
    token = service.tokens["segments"]
    listed = service.get("/v1/segments", token).json()["segments"]
    names = [s["name"] for s in listed]
    assert names == SegmentCatalog(service.settings.data_dir).names()
    assert {s["kind"] for s in listed} >= {"builtin"}
    assert all(s["description"] for s in listed)
    checked = 0
    for name in names:
        truth = service.engine(lambda e, n=name: SegmentCatalog(e.settings.data_dir).run(e.con, n))
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 7} | ({"cursor": cursor} if cursor else {})
            body = service.get(f"/v1/segments/{name}", token, **params).json()
            assert body["count"] == truth.count
            pages.append(body["members"])
            cursor = body["next_cursor"]
            if cursor is None:
                break
        flat = [m for page in pages for m in page]
        assert flat == sorted(set(truth.members))  # complete, no duplicates, stable order
        assert all(0 < len(p) <= 7 for p in pages[:-1])
        checked += bool(flat)
    assert checked >= 2  # the generated shop fills some segments


def test_openapi_documents_the_read_routes(service: Service) -> None:
    spec = httpx.get(f"{service.url}/openapi.json", timeout=10).json()
    profile = spec["paths"]["/v1/profiles/{identifier}"]["get"]
    assert {"200", "400", "401", "403", "404"} <= set(profile["responses"])
    assert "ProfileBody" in str(profile["responses"]["200"])
    assert [p["name"] for p in profile["parameters"]] == ["identifier", "events"]
    assert "SegmentPage" in str(spec["paths"]["/v1/segments/{name}"]["get"]["responses"])


# --------------------------------------------------------------- concurrency
def recent(hours: float) -> datetime:
    """A time in the last two days, later than every stored event: the live collector
    refuses event times more than 24 h after it received them."""
    return datetime.now(UTC) - timedelta(hours=48) + timedelta(hours=hours)


def test_lookups_while_the_collector_ingests(service: Service) -> None:
    """Readers and a writer at once: no errors, every answer consistent, then exact."""
    kinds = some_identifiers(service)
    targets = [kinds[k] for k in ("email", "user_id", "anonymous_id", "line")]
    token = service.tokens["profiles"]
    stop = threading.Event()
    problems: list[str] = []
    answered = [0]

    def read() -> None:
        with httpx.Client(base_url=service.url, timeout=30) as client:
            headers = {"authorization": f"Bearer {token}"}
            while not stop.is_set():
                for identifier, customer in targets:
                    answer = client.get(f"/v1/profiles/{quote(identifier)}", headers=headers)
                    if answer.status_code != 200:
                        problems.append(answer.text)
                        continue
                    body = answer.json()
                    events = body["recent_events"]
                    order = [(e["timestamp"], e["offset"]) for e in events]
                    fresh = body["freshness"]
                    if (
                        body["customer_id"] != customer
                        or order != sorted(order, reverse=True)
                        or any(e["offset"] > fresh["log_offset"] for e in events)
                        or (fresh["checkpoint_offset"] or 0) > fresh["log_offset"] + 1
                    ):
                        problems.append(f"inconsistent: {body}")
                    answered[0] += 1

    readers = [threading.Thread(target=read) for _ in range(3)]
    for thread in readers:
        thread.start()
    user = targets[1][0].partition(":")[2]
    try:
        with httpx.Client(base_url=service.url, auth=(service.write_key, ""), timeout=30) as c:
            for n in range(30):
                batch = [
                    raw_page(f"/p{n}-{i}", user_id=user, at=recent(n + i / 10)) for i in range(10)
                ] + [raw_identify(anonymous_id=f"late-{n}", user_id=user, at=recent(n + 1))]
                assert c.post("/v1/batch", json={"batch": batch}).status_code == 200
    finally:
        stop.set()
        for thread in readers:
            thread.join(60)
    assert not problems, problems[:3]
    assert answered[0] > 0
    # once the writer has checkpointed everything, answers are exact again
    service.engine(lambda e: e.checkpoint())
    identifier, customer = targets[1]
    body = service.get(f"/v1/profiles/{quote(identifier)}", token, events=20).json()
    assert comparable(body) == expected(service, customer, recent=20)
    assert "anonymous_id:late-29" in body["identifiers"]


def test_the_cache_never_serves_a_stale_answer(service: Service) -> None:
    """A repeated lookup is served from the cache only until the next commit."""
    identifier, customer = some_identifiers(service)["user_id"]
    token = service.tokens["profiles"]
    first = service.get(f"/v1/profiles/{quote(identifier)}", token).json()
    assert service.get(f"/v1/profiles/{quote(identifier)}", token).json() == first
    user = identifier.partition(":")[2]
    event = raw_page("/new", user_id=user, at=recent(40))
    posted = httpx.post(f"{service.url}/v1/page", json=event, auth=(service.write_key, ""))
    assert posted.status_code == 200
    after = service.get(f"/v1/profiles/{quote(identifier)}", token).json()
    assert after["recent_events"][0]["message_id"] == event["messageId"]
    assert after["freshness"]["log_offset"] == first["freshness"]["log_offset"] + 1
    deadline = time.monotonic() + 10
    # until a checkpoint covers the new event (next_offset past its offset)
    while after["freshness"]["checkpoint_offset"] <= after["freshness"]["log_offset"]:
        assert time.monotonic() < deadline, "the writer did not checkpoint"
        time.sleep(0.1)
        after = service.get(f"/v1/profiles/{quote(identifier)}", token).json()
    assert comparable(after) == expected(service, customer)
    assert keys.parse(identifier) == identifier
