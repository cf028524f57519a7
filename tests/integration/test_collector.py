"""The Segment-compatible collector over real HTTP on loopback (uvicorn + httpx)."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cdp.config import Settings
from cdp.http.app import create_app
from cdp.runtime.engine import Engine
from cdp.runtime.writer import GroupCommitWriter
from cdp.services import deadletters
from cdp.services.sources import SourceRegistry
from tests.loopback import serve_app

pytestmark = pytest.mark.integration


@dataclass
class Service:
    url: str
    key: str
    settings: Settings
    writer: GroupCommitWriter

    def client(self, key: str | None = None) -> httpx.Client:
        auth = httpx.BasicAuth(key if key is not None else self.key, "")
        return httpx.Client(base_url=self.url, auth=auth, timeout=10)

    def engine_call(self, fn: Any) -> Any:
        return self.writer.call(fn).result(timeout=10)

    def stored(self) -> list[tuple[Any, ...]]:
        return self.engine_call(
            lambda e: e.con.execute(
                "SELECT message_id, type, source, timestamp, received_at, payload FROM event_log "
                'ORDER BY "offset"'
            ).fetchall()
        )


def serve(settings: Settings, writer: GroupCommitWriter) -> Iterator[str]:
    """The collector app of ``settings`` with ``writer``, on loopback; yield its URL."""
    yield from serve_app(create_app(settings, writer))


def served(settings: Settings, key: str = "") -> Iterator[Service]:
    """The collector app of ``settings`` on loopback over a writer of its own, as a
    ``Service`` whose ``client()`` sends ``key``; the writer stops after."""
    writer = GroupCommitWriter(lambda: Engine.open(settings), checkpoint_every=0.2)
    writer.start()
    try:
        for url in serve(settings, writer):
            yield Service(url, key, settings, writer)
    finally:
        writer.stop()


def page(message_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "page",
        "messageId": message_id,
        "anonymousId": "a-1",
        "properties": {"path": "/"},
        **extra,
    }


def test_track_with_basic_auth_is_durable_before_the_answer(service: Service) -> None:
    with service.client() as client:
        answer = client.post(
            "/v1/track",
            json={
                "userId": "u-1",
                "event": "Signed Up",
                "messageId": "m-1",
                "timestamp": "2026-05-01T00:00:00Z",
                "properties": {"plan": "free"},
            },
        )
    assert answer.status_code == 200
    assert answer.json() == {"success": True}
    rows = service.stored()
    assert [(r[0], r[1], r[2]) for r in rows] == [("m-1", "track", "web")]


def test_every_single_event_endpoint_sets_its_type(service: Service) -> None:
    bodies = {
        "identify": {"userId": "u-1", "traits": {"email": "a@shop.jp"}},
        "page": {"anonymousId": "a-1", "name": "Home"},
        "screen": {"anonymousId": "a-1", "name": "Cart"},
        "group": {"userId": "u-1", "groupId": "g-1"},
        "alias": {"userId": "u-1", "previousId": "a-1"},
    }
    with service.client() as client:
        for endpoint, body in bodies.items():
            answer = client.post(f"/v1/{endpoint}", json={**body, "messageId": f"m-{endpoint}"})
            assert answer.status_code == 200, (endpoint, answer.text)
        wrong = client.post("/v1/page", json={**bodies["identify"], "type": "identify"})
    assert wrong.status_code == 400
    assert "does not match the endpoint /v1/page" in wrong.json()["error"]
    assert sorted(r[1] for r in service.stored()) == sorted(bodies)


def test_write_key_in_the_body_unknown_and_revoked_keys(service: Service) -> None:
    body = {"writeKey": service.key, **page("m-1")}
    with httpx.Client(base_url=service.url) as anonymous:
        assert anonymous.post("/v1/page", json=body).status_code == 200
        missing = anonymous.post("/v1/page", json=page("m-2"))
        assert missing.status_code == 401 and "missing write key" in missing.json()["error"]
    with service.client("wk_not-a-key") as client:
        assert client.post("/v1/page", json=page("m-3")).status_code == 401
    SourceRegistry(service.settings.data_dir).revoke("web")
    with service.client() as client:
        revoked = client.post("/v1/page", json=page("m-4"))
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
    assert [r[0] for r in service.stored()] == ["m-1"]  # nothing from unknown callers


def test_batch_merges_context_and_corrects_the_clock(service: Service) -> None:
    batch = {
        "batch": [
            {
                "type": "page",
                "messageId": "b-1",
                "anonymousId": "a-1",
                "originalTimestamp": "2026-05-01T11:00:00Z",
                "context": {"locale": "en-US"},
            },
            {
                "type": "track",
                "event": "Clicked",
                "messageId": "b-2",
                "anonymousId": "a-1",
                "originalTimestamp": "2026-05-01T11:00:01Z",
                "sentAt": "2026-05-01T11:00:01Z",
            },
        ],
        "context": {"locale": "ja-JP", "library": {"name": "analytics.js"}},
        "integrations": {"All": True},
        "sentAt": "2026-05-01T11:00:05Z",
    }
    with service.client() as client:
        answer = client.post("/v1/batch", json=batch)
    assert answer.status_code == 200, answer.text
    rows = {r[0]: r for r in service.stored()}
    first = orjson.loads(rows["b-1"][5])
    assert first["context"] == {"locale": "en-US", "library": {"name": "analytics.js"}}
    assert first["integrations"] == {"All": True}
    # timestamp = receivedAt - (sentAt - originalTimestamp): 5 s and 0 s before receipt
    received_1, stamp_1 = rows["b-1"][4], rows["b-1"][3]
    assert abs((received_1 - stamp_1).total_seconds() - 5) < 0.01
    assert abs((rows["b-2"][4] - rows["b-2"][3]).total_seconds()) < 0.01


def test_a_bad_item_rejects_the_whole_batch_and_is_dead_lettered(service: Service) -> None:
    batch = {
        "batch": [
            page("ok-1"),
            {"type": "page", "messageId": "bad-1"},
            {"type": "track", "messageId": "bad-2", "userId": "u", "event": ""},
        ]
    }
    with service.client() as client:
        answer = client.post("/v1/batch", json=batch)
    assert answer.status_code == 400
    errors = answer.json()["errors"]
    assert {(e["index"], e["field"]) for e in errors} == {(1, ""), (2, "event")}
    assert "batch[1]" in answer.json()["error"]
    assert service.stored() == []  # all or nothing
    letters = service.engine_call(lambda e: deadletters.select(e.con))
    assert len(letters) == 1
    assert letters[0].source == "web" and letters[0].endpoint == "batch"
    assert "needs userId or anonymousId" in letters[0].reason


def test_size_limits_and_bad_bodies(service: Service) -> None:
    big_event = page("big", properties={"text": "x" * 33_000})
    big_batch = {"batch": [page(f"m-{i}", properties={"text": "x" * 20_000}) for i in range(30)]}
    with service.client() as client:
        too_big = client.post("/v1/page", json=big_event)
        assert too_big.status_code == 413 and "32 KB" in too_big.json()["error"]
        huge = client.post("/v1/batch", json=big_batch)
        assert huge.status_code == 413 and "500 KB" in huge.json()["error"]
        item_too_big = client.post("/v1/batch", json={"batch": [big_event]})
        assert item_too_big.status_code == 400
        assert item_too_big.json()["errors"][0]["index"] == 0
        not_json = client.post(
            "/v1/page", content=b"{oops", headers={"content-type": "application/json"}
        )
        assert not_json.status_code == 400 and "not valid JSON" in not_json.json()["error"]
        empty = client.post("/v1/batch", json={"batch": []})
        assert empty.status_code == 400 and empty.json()["errors"][0]["field"] == "batch"
    assert service.stored() == []


def test_gzip_bodies(service: Service) -> None:
    body = gzip.compress(orjson.dumps({"batch": [page("g-1"), page("g-2")]}))
    headers = {"content-encoding": "gzip", "content-type": "application/json"}
    with service.client() as client:
        assert client.post("/v1/batch", content=body, headers=headers).status_code == 200
        broken = client.post("/v1/batch", content=b"\x1f\x8bnot gzip", headers=headers)
        assert broken.status_code == 400 and "gzip" in broken.json()["error"]
        bomb = gzip.compress(b'{"batch": [' + b" " * 2_000_000 + b"]}")
        assert client.post("/v1/batch", content=bomb, headers=headers).status_code == 413
    assert sorted(r[0] for r in service.stored()) == ["g-1", "g-2"]


def test_the_same_batch_three_times_is_stored_once(service: Service) -> None:
    batch = {"batch": [page(f"d-{i}") for i in range(50)]}
    with service.client() as client:
        for _ in range(3):
            assert client.post("/v1/batch", json=batch).status_code == 200
    rows = service.stored()
    assert len(rows) == 50 and len({r[0] for r in rows}) == 50


def test_backpressure_answers_503_with_retry_after(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    key = SourceRegistry(settings.data_dir).add("web")
    writer = GroupCommitWriter(lambda: Engine.open(settings), max_pending=3)
    writer.start()
    gate = threading.Event()
    try:
        for url in serve(settings, writer):
            writer.call(lambda _e: gate.wait(10))  # the writer is busy
            auth = httpx.BasicAuth(key, "")
            with httpx.Client(base_url=url, auth=auth, timeout=10) as client:
                results: list[httpx.Response] = []

                def send_first(
                    client: httpx.Client = client, results: list[httpx.Response] = results
                ) -> None:
                    batch = {"batch": [page("p-1"), page("p-2")]}
                    results.append(client.post("/v1/batch", json=batch))

                first = threading.Thread(target=send_first)
                first.start()
                deadline = time.monotonic() + 5
                while writer.pending < 2 and time.monotonic() < deadline:
                    time.sleep(0.01)
                refused = client.post("/v1/batch", json={"batch": [page("p-3"), page("p-4")]})
                assert refused.status_code == 503
                assert refused.headers["retry-after"] == "1"
                gate.set()
                first.join(10)
                assert results[0].status_code == 200
                retried = client.post("/v1/batch", json={"batch": [page("p-3"), page("p-4")]})
                assert retried.status_code == 200
    finally:
        gate.set()
        writer.stop()
    with Engine.open(settings) as engine:
        assert engine.log.high_water() == 4


def test_openapi_docs_are_served(service: Service) -> None:
    with httpx.Client(base_url=service.url) as client:
        spec = client.get("/openapi.json").json()
        assert {"/v1/track", "/v1/batch", "/v1/identify"} <= set(spec["paths"])
        assert client.get("/docs").status_code == 200
        assert client.get("/health").json()["ok"] is True


def test_concurrent_clients_share_group_commits(service: Service) -> None:
    def send(worker: int) -> None:
        with service.client() as client:
            for n in range(10):
                batch = {"batch": [page(f"c-{worker}-{n}-{i}") for i in range(20)]}
                assert client.post("/v1/batch", json=batch).status_code == 200

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(service.stored()) == 4 * 10 * 20


def test_basic_header_that_is_not_base64_is_401(service: Service) -> None:
    with httpx.Client(base_url=service.url) as client:
        answer = client.post("/v1/page", json=page("m"), headers={"authorization": "Basic ***"})
    assert answer.status_code == 401


def test_bulk_import_keeps_good_lines_reports_bad_ones_and_resumes(service: Service) -> None:
    lines = [orjson.dumps(page(f"bulk-{i}")) for i in range(10)]
    lines.insert(3, b"{broken")
    lines.insert(7, orjson.dumps({"type": "page", "messageId": "no-id"}))
    body = b"\n".join(lines) + b"\n\n"
    headers = {"content-type": "application/x-ndjson"}
    with service.client() as client:
        first = client.post("/v1/bulk", content=body, headers=headers)
        assert first.status_code == 422
        report = first.json()
        assert (report["accepted"], report["rejected"], report["success"]) == (10, 2, False)
        assert [e["location"] for e in report["errors"]] == ["line 4", "line 8"]
        assert "needs userId or anonymousId" in report["errors"][1]["message"]
        again = client.post(
            "/v1/bulk", content=gzip.compress(body), headers={**headers, "content-encoding": "gzip"}
        )
        assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 10
        clean = client.post("/v1/bulk", content=orjson.dumps(page("bulk-x")), headers=headers)
        assert clean.status_code == 200 and clean.json()["success"] is True
    with httpx.Client(base_url=service.url) as anonymous:
        assert anonymous.post("/v1/bulk", content=body).status_code == 401
    assert len(service.stored()) == 11
    letters = service.engine_call(lambda e: deadletters.select(e.con))
    assert sorted(d.reason.split(":")[0] for d in letters) == [
        "line 4",
        "line 4",
        "line 8",
        "line 8",
    ]
    assert {d.endpoint for d in letters} == {"bulk"}


def test_the_server_sets_received_at_even_when_the_client_sends_one(service: Service) -> None:
    event = page("r-1", receivedAt="1999-01-01T00:00:00Z", timestamp="2026-05-01T00:00:00Z")
    with service.client() as client:
        assert client.post("/v1/page", json=event).status_code == 200
    [row] = service.stored()
    assert row[4].year >= 2026  # the server's clock, not the client's claim
    assert row[3].isoformat().startswith("2026-05-01")  # an explicit timestamp is kept
