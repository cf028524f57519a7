"""``/v1/privacy/requests`` on a live ``cdp serve`` app over loopback HTTP (issue 16):
a ``privacy:write`` token files requests, suppression applies at once to every
identifier of the person, the erasure waits for the data directory and runs with
``cdp privacy process``; answers never carry the identifier."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app as cli
from cdp.config import Settings
from cdp.http.app import create_app
from cdp.runtime.engine import Engine
from cdp.runtime.writer import GroupCommitWriter
from cdp.services.privacy.suppressions import SuppressionList
from cdp.services.tokens import TokenRegistry
from tests.integration.test_lookup import build_shop, owners
from tests.loopback import serve_app

pytestmark = pytest.mark.integration


@dataclass
class Service:
    url: str
    settings: Settings
    writer: GroupCommitWriter[Any]
    tokens: dict[str, str]

    def call(self, method: str, path: str, token: str | None, body: Any = None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        with httpx.Client(base_url=self.url, timeout=30) as client:
            content = None if body is None else orjson.dumps(body)
            return client.request(method, path, headers=headers, content=content)


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_shop(tmp_path_factory.mktemp("privacy-api") / "data", 30).data_dir


@pytest.fixture
def service(shop: Path, tmp_path: Path) -> Iterator[Service]:
    settings = Settings(tmp_path / "data")
    shutil.copytree(shop, settings.data_dir)
    registry = TokenRegistry(settings.data_dir)
    tokens = {
        "dpo": registry.add("dpo", ["privacy:write"]),
        "reader": registry.add("reader", ["profiles:read"]),
    }
    writer: GroupCommitWriter[Any] = GroupCommitWriter(
        lambda: Engine.open(settings), checkpoint_every=0.2
    )
    writer.start()
    try:
        for url in serve_app(create_app(settings, writer)):
            yield Service(url, settings, writer, tokens)
    finally:
        writer.stop()


def a_person(service: Service) -> tuple[str, list[str]]:
    """An email key and every identifier of its customer."""
    pairs = service.writer.call(lambda e: owners(e.con)).result(timeout=60)
    by_customer: dict[str, list[str]] = {}
    for key, customer in pairs:
        by_customer.setdefault(customer, []).append(key)
    keys = max((k for k in by_customer.values() if any(x.startswith("email:") for x in k)), key=len)
    return next(k for k in keys if k.startswith("email:")), sorted(keys)


def test_only_a_privacy_write_token_files_requests(service: Service) -> None:
    email, _ = a_person(service)
    body = {"type": "suppress", "identifier": email}
    assert service.call("POST", "/v1/privacy/requests", None, body).status_code == 401
    assert service.call("POST", "/v1/privacy/requests", "rt_nope", body).status_code == 401
    refused = service.call("POST", "/v1/privacy/requests", service.tokens["reader"], body)
    assert refused.status_code == 403 and "privacy:write" in refused.json()["error"]
    assert service.call("GET", "/v1/privacy/requests", service.tokens["reader"]).status_code == 403


def test_bad_requests_say_what_is_wrong(service: Service) -> None:
    token = service.tokens["dpo"]
    for body, words in (
        ({"type": "forget", "identifier": "email:a@b.jp"}, "`type`"),
        ({"type": "delete"}, "`identifier`"),
        ({"type": "delete", "identifier": "shoe:9"}, "shoe"),
        ([1, 2], "JSON object"),
    ):
        answer = service.call("POST", "/v1/privacy/requests", token, body)
        assert answer.status_code == 400, answer.text
        assert words in answer.json()["error"]


def test_suppression_applies_at_once_and_the_erasure_waits(service: Service) -> None:
    email, keys = a_person(service)
    token = service.tokens["dpo"]
    filed = service.call(
        "POST", "/v1/privacy/requests", token, {"type": "suppress-with-delete", "identifier": email}
    )
    assert filed.status_code == 202, filed.text
    request = filed.json()
    assert request["status"] == "received" and request["steps"] == {"suppress": "done"}
    assert email not in filed.text and email.partition(":")[2] not in filed.text
    suppressed = SuppressionList.load(service.settings.data_dir)
    assert all(suppressed.suppressed([k]) for k in keys)  # every id of theirs, not just the email

    listed = service.call("GET", "/v1/privacy/requests", token).json()
    assert [r["id"] for r in listed] == [request["id"]]
    one = service.call("GET", f"/v1/privacy/requests/{request['id']}", token)
    assert one.json()["status"] == "received"
    assert service.call("GET", "/v1/privacy/requests/pr_nope", token).status_code == 404

    service.writer.stop()  # the server stops; the erasure runs on the free directory
    done = CliRunner().invoke(
        cli, ["--data-dir", str(service.settings.data_dir), "--json", "privacy", "process"]
    )
    assert done.exit_code == 0, done.output
    [result] = orjson.loads(done.stdout)
    assert result["id"] == request["id"] and result["status"] == "finished"
    assert result["counts"]["event_log"] > 0
    database = (service.settings.data_dir / "cdp.duckdb").read_bytes()
    assert email.partition(":")[2].encode() not in database


def test_unsuppress_over_the_api(service: Service) -> None:
    email, keys = a_person(service)
    token = service.tokens["dpo"]
    for kind in ("suppress", "unsuppress"):
        answer = service.call(
            "POST", "/v1/privacy/requests", token, {"type": kind, "identifier": email}
        )
        assert answer.status_code == 200 and answer.json()["status"] == "finished"
    assert not any(SuppressionList.load(service.settings.data_dir).suppressed([k]) for k in keys)


def test_a_server_runs_the_erasures_filed_over_the_api_when_it_starts(
    shop: Path, tmp_path: Path
) -> None:
    """Filed while a server ran (received), carried out by the next start before the
    port opens: the request is finished and the server answers."""
    from cdp.services.privacy.requests import Requests  # noqa: PLC0415
    from tests.loopback import cdp_serve  # noqa: PLC0415

    data = tmp_path / "data"
    shutil.copytree(shop, data)
    registry = Requests(data)
    email = "email:" + next(
        k.partition(":")[2] for k, _ in owners_of(data) if k.startswith("email:")
    )
    filed = registry.file("delete", email, "token:dpo")
    log = tmp_path / "serve.log"
    with cdp_serve(data, log_path=log) as server:
        assert httpx.get(f"{server.url}/health/live", timeout=30).status_code == 200
        done = registry.get(filed.id)
        assert done.status == "finished" and done.subject is None
        assert done.counts["event_log"] > 0
    assert f"privacy request {filed.id} (delete): finished" in log.read_text()


def test_an_erasure_filed_to_a_kafka_server_is_never_called_finished(tmp_path: Path) -> None:
    """Erasure of the Kafka topics is not built: such a request stays open, saying so."""
    from cdp.services.privacy import erase  # noqa: PLC0415
    from cdp.services.privacy.requests import Requests  # noqa: PLC0415

    settings = Settings(tmp_path / "api")  # a Kafka API's data directory: no event log
    filed = Requests(settings.data_dir).file("delete", "email:a@example.jp", "t", "kafka")
    [result] = erase.process(settings)
    assert result.id == filed.id and result.status == "received"
    assert result.error is not None and "cdp privacy process --bootstrap" in result.error
    assert result.subject == "email:a@example.jp"  # kept: the work is not done


def owners_of(data: Path) -> list[tuple[str, str]]:
    import duckdb  # noqa: PLC0415

    con = duckdb.connect(str(data / "cdp.duckdb"), read_only=True)
    try:
        return [
            (str(k), str(c))
            for k, c in con.execute("SELECT identifier, customer_id FROM identities").fetchall()
        ]
    finally:
        con.close()
