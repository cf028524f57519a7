"""Every 4xx/5xx of every route of ``cdp serve`` has the shape docs/api.md promises.

``{"success": false, "error": "<what is wrong>", "status": <code>}`` (extra keys
allowed), served as JSON. The walk below takes the routes from the app itself
(``app.routes``, included routers and mounts too), so a route added later is
walked without anyone editing this file, and provokes errors on each: bad
credentials with a junk body, a wrong method, a path below it that does not
exist. Only the public pages in ``PUBLIC_PAGES`` may answer such a request
with a 2xx. The errors a walk cannot reach (413, 415, a 400 naming items, the
bulk 422, 503 under backpressure, /health when a checkpoint failed, FastAPI's
own validation and an unexpected exception) are provoked one by one after it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from cdp.config import Settings
from cdp.errors import ForbiddenError, LogUnavailableError
from cdp.http import errors as http_errors
from cdp.http.app import create_app
from cdp.runtime.engine import Engine
from cdp.runtime.writer import GroupCommitWriter
from cdp.services.sources import SourceRegistry
from tests.loopback import serve_app

try:  # FastAPI >= 0.16x keeps included routers nested; this expands them
    from fastapi.routing import iter_route_contexts
except ImportError:  # older FastAPI copies included routes into app.routes
    iter_route_contexts = None

pytestmark = pytest.mark.integration

FORM_ID = "newsletter"
WEBHOOKS_TOML = (
    '[shopify]\nsecret = "shopify-secret"\n'
    '[line]\nchannel_secret = "line-secret"\n'
    '[meta]\napp_secret = "meta-secret"\nverify_token = "meta-token"\n'
    '[x]\nconsumer_secret = "x-secret"\n'
)
FORMS_TOML = f'[forms.{FORM_ID}]\nemail = "email"\n'
# Values for path parameters, by name; any other parameter gets "x".
PATH_VALUES = {"form_id": FORM_ID, "identifier": "email:nobody%40shop.example"}
# Pages anyone may read: a junk request with bad credentials still gets them.
PUBLIC_PAGES = {
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/redoc"),
}
# Refused callers: credentials of every kind that are wrong, and a page of an
# origin no source allows (the CORS layer answers before any route).
REFUSED = (
    {"authorization": "Basic !!!not-base64"},
    {"authorization": "Basic d3Jvbmcta2V5Og=="},  # "wrong-key:"
    {"authorization": "Bearer rt_not-a-token"},
    {"origin": "https://not-allowed.example"},
)
JUNK = b"\x00{not json"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def assert_error_shape(answer: httpx.Response, context: str) -> dict[str, Any]:
    """The promised body, or an assertion that names the request."""
    where = f"{context} -> {answer.status_code} {answer.text[:300]!r}"
    assert answer.status_code >= 400, where
    assert answer.headers.get("content-type", "").startswith("application/json"), where
    body = answer.json()
    assert isinstance(body, dict), where
    assert body.get("success") is False, where
    assert isinstance(body.get("error"), str) and body["error"].strip(), where
    assert body.get("status") == answer.status_code, where
    return body


def route_table(app: FastAPI) -> list[tuple[str, frozenset[str] | None]]:
    """(path template, methods) of every route, ``None`` for a mount, routers expanded."""
    flat = list(app.routes if iter_route_contexts is None else iter_route_contexts(app.routes))
    table = []
    for route in flat:
        path = route.path
        assert isinstance(path, str), route
        methods = route.methods
        table.append((path, frozenset(methods) if methods is not None else None))
    return table


def concrete(template: str) -> str:
    return re.sub(r"\{([^}:]+)(?::[^}]*)?\}", lambda m: PATH_VALUES.get(m.group(1), "x"), template)


def configure(data_dir: Path) -> str:
    """Webhooks and a form configured, one source; its write key."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "webhooks.toml").write_text(WEBHOOKS_TOML, encoding="utf-8")
    (data_dir / "forms.toml").write_text(FORMS_TOML, encoding="utf-8")
    return SourceRegistry(data_dir).add("web")


class Served:
    def __init__(self, app: FastAPI, url: str, writer: GroupCommitWriter[Any]) -> None:
        self.app, self.url, self.writer = app, url, writer

    def client(self) -> httpx.Client:
        # No keep-alive: a refused request may close the connection.
        limits = httpx.Limits(max_keepalive_connections=0)
        return httpx.Client(base_url=self.url, timeout=10, limits=limits)


def served(settings: Settings, **writer_options: Any) -> Iterator[Served]:
    writer: GroupCommitWriter[Any] = GroupCommitWriter(
        lambda: Engine.open(settings), **writer_options
    )
    writer.start()
    try:
        app = create_app(settings, writer)
        for url in serve_app(app, log_level="critical"):
            yield Served(app, url, writer)
    finally:
        writer.stop()


@pytest.fixture(params=["configured", "unconfigured"])
def service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    settings = Settings(tmp_path / "data")
    if request.param == "configured":
        configure(settings.data_dir)
    yield from served(settings)


# ------------------------------------------------------------------ the walk
def test_every_route_answers_errors_in_the_promised_shape(service: Served) -> None:
    table = route_table(service.app)
    paths = {path for path, _ in table}
    # The walk must see the included read router and the docs assets mount.
    assert {"/v1/profiles/{identifier:path}", "/v1/segments", "/v1/track"} <= paths, paths
    assert any(methods is None for _, methods in table), "no mount was walked"
    allowed: dict[str, set[str]] = {}
    for path, methods in table:
        allowed.setdefault(path, set()).update(methods or ())
    provoked = 0
    with service.client() as client:
        for template, methods in table:
            if template == "/" or template.startswith("/console"):
                continue  # HTML pages behind a sign-in: tests/integration/console/test_console_auth.py
            path = concrete(template)
            if methods is None:  # a mount (static files): a file that is not there
                for method in ("GET", "DELETE"):
                    answer = client.request(method, f"{path}/no-such-asset.js")
                    assert_error_shape(answer, f"{method} {path}/no-such-asset.js")
                    provoked += 1
                continue
            for method in sorted(methods - {"HEAD"}):  # a HEAD answer has no body
                for caller in REFUSED:
                    answer = client.request(
                        method,
                        path,
                        params={"events": "junk", "limit": "junk"},
                        content=JUNK,
                        headers={**caller, "content-type": "application/json"},
                    )
                    context = f"{method} {path} with {caller} and a junk body"
                    if (method, template) in PUBLIC_PAGES:
                        assert answer.status_code < 400, context
                        continue
                    assert_error_shape(answer, context)
                    provoked += 1
            for wrong in (m for m in METHODS if m not in allowed[template]):
                answer = client.request(wrong, path, content=JUNK)
                assert_error_shape(answer, f"{wrong} {path}")
                assert answer.status_code == 405, (wrong, path)
                provoked += 1
            # A browser's preflight from a page no source allows.
            preflight = client.options(
                path,
                headers={**REFUSED[3], "access-control-request-method": "POST"},
            )
            assert_error_shape(preflight, f"OPTIONS {path} from a page not allowed")
            provoked += 1
            below = f"{path.rstrip('/')}/no/such/thing"
            answer = client.get(below, headers=REFUSED[0])
            assert_error_shape(answer, f"GET {below}")
            provoked += 1
        assert_error_shape(client.get("/no/such/route"), "GET /no/such/route")
    assert provoked > 3 * len(table)


def test_an_unconfigured_webhook_names_no_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(tmp_path / "data")
    caplog.set_level(logging.WARNING, logger="cdp.api")
    for service in served(settings):
        with service.client() as client:
            for platform in ("shopify", "line", "meta", "x"):
                answer = client.post(f"/v1/webhooks/{platform}", content=b"{}")
                body = assert_error_shape(answer, platform)
                assert answer.status_code == 404
                assert body["error"] == f"the {platform} webhook is not configured"
                assert "/" not in answer.text and "toml" not in answer.text
            form = client.post("/v1/forms/survey", data={"email": "a@shop.example"})
            body = assert_error_shape(form, "unconfigured form")
            assert body["error"] == "the form 'survey' is not configured"
            assert "toml" not in form.text
    # The operator still learns where to configure it: in the server's log.
    assert str(settings.data_dir / "webhooks.toml") in caplog.text


# ------------------------------------------------------- errors a walk can't reach
def test_collector_request_errors(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    key = configure(settings.data_dir)
    for service in served(settings):
        with service.client() as client:
            auth = httpx.BasicAuth(key, "")
            too_big = client.post("/v1/batch", content=b"x" * 600_000, auth=auth)
            assert too_big.status_code == 413
            assert_error_shape(too_big, "413")
            encoded = client.post(
                "/v1/batch", content=b"{}", auth=auth, headers={"content-encoding": "br"}
            )
            assert encoded.status_code == 415
            assert_error_shape(encoded, "415")
            batch = {"batch": [{"type": "track", "userId": "u1"}]}  # no event name
            bad_item = client.post("/v1/batch", json=batch, auth=auth)
            body = assert_error_shape(bad_item, "bad item")
            assert bad_item.status_code == 400 and body["errors"][0]["index"] == 0
            lines = b'{"type": "track", "userId": "u1", "event": "Signed Up"}\nnot json\n'
            bulk = client.post("/v1/bulk", content=lines, auth=auth)
            body = assert_error_shape(bulk, "bulk with a bad line")
            assert bulk.status_code == 422
            assert (body["accepted"], body["rejected"]) == (1, 1)
            webhook_too_big = client.post("/v1/webhooks/line", content=b"x" * (1024 * 1024 + 1))
            assert webhook_too_big.status_code == 413
            assert_error_shape(webhook_too_big, "webhook 413")


def test_backpressure_503_has_the_shape(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    key = SourceRegistry(settings.data_dir).add("web")
    gate = threading.Event()
    try:
        for service in served(settings, max_pending=3):
            service.writer.call(lambda _engine: gate.wait(10))  # the writer is busy
            auth = httpx.BasicAuth(key, "")
            first_batch = {
                "batch": [{"type": "track", "userId": "u1", "event": f"E{n}"} for n in range(2)]
            }
            with service.client() as client:
                first = threading.Thread(
                    target=client.post,
                    args=("/v1/batch",),
                    kwargs={"json": first_batch, "auth": auth},
                )
                first.start()
                deadline = time.monotonic() + 5
                while service.writer.pending < 2 and time.monotonic() < deadline:
                    time.sleep(0.01)
                refused = client.post("/v1/batch", json=first_batch, auth=auth)
                assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
                assert_error_shape(refused, "backpressure")
                gate.set()
                first.join(10)
    finally:
        gate.set()


def test_health_503_has_the_shape_and_the_details(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    key = SourceRegistry(settings.data_dir).add("web")
    for service in served(settings, checkpoint_every=0.05):
        with service.client() as client:
            assert client.get("/health").status_code == 200
            # A real checkpoint failure: the table it writes is gone.
            service.writer.call(lambda engine: engine.con.execute("DROP TABLE customers")).result()
            event = {"type": "track", "userId": "u1", "event": "Signed Up"}
            assert client.post("/v1/track", json=event, auth=(key, "")).status_code == 200
            deadline = time.monotonic() + 20
            while (health := client.get("/health")).status_code == 200:
                assert time.monotonic() < deadline, "the checkpoint never failed"
                time.sleep(0.05)
            body = assert_error_shape(health, "/health")
            assert health.status_code == 503
            assert body["ok"] is False and body["checkpoint_error"]
            assert "checkpoint failed" in body["error"]


def test_framework_errors_of_a_new_route_have_the_shape() -> None:
    """What a route added later may raise: FastAPI's validation (422), a platform
    error, an exception nobody expected (500)."""
    app = FastAPI()
    http_errors.install(app)

    @app.get("/typed/{number}")
    async def typed(number: int, flag: bool = False) -> dict[str, Any]:
        return {"number": number, "flag": flag}

    @app.get("/forbidden")
    async def forbidden() -> None:
        raise ForbiddenError("token 'bi' lacks scope profiles:read")

    @app.get("/busy")
    async def busy() -> None:
        raise LogUnavailableError("the log is busy")

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    for url in serve_app(app, log_level="critical"):
        with httpx.Client(base_url=url, timeout=10) as client:
            invalid = client.get("/typed/seven", params={"flag": "maybe"})
            body = assert_error_shape(invalid, "422")
            assert invalid.status_code == 422
            assert {e["field"] for e in body["errors"]} == {"path.number", "query.flag"}
            assert body["error"].startswith("path.number: ") and "(and 1 more)" in body["error"]
            assert client.get("/forbidden").status_code == 403
            assert_error_shape(client.get("/forbidden"), "403")
            busy_answer = client.get("/busy")
            assert busy_answer.status_code == 503 and busy_answer.headers["retry-after"] == "1"
            assert_error_shape(busy_answer, "503")
            crash = client.get("/broken")
            body = assert_error_shape(crash, "500")
            assert crash.status_code == 500 and "a bug" not in crash.text


def test_extra_keys_cannot_replace_the_promised_ones() -> None:
    assert http_errors.error_body(400, "bad", errors=[]) == {
        "success": False,
        "error": "bad",
        "status": 400,
        "errors": [],
    }
    with pytest.raises(ValueError, match=r"\['error', 'success'\]"):
        http_errors.error_body(400, "bad", success=True, error="fine")
