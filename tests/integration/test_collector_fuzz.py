"""Fuzzing ``cdp serve`` over real HTTP on loopback: never a 5xx, never a silent store.

One uvicorn server for the module (the thread approach of ``test_collector``,
with webhooks and a form configured) takes hypothesis-generated requests on
every route and on unknown ones: random bytes, truncated and invalid JSON,
JSON of every shape, valid events with fields anywhere replaced by junk, bad
and extreme times, NaN/Infinity tokens, deep nesting, bodies at the size
limits, lying gzip, odd ``Content-Encoding``/``Content-Type``, Authorization
headers that are not Basic or not base64, forged webhook signatures.

Every exchange is judged the same way (``Harness.exchange``):

- the answer is never a 5xx;
- whether it may be a 2xx is decided by an oracle that runs the service's own
  steps in-process (``decompress``, ``parse``, ``to_records``, the form
  parser) or recomputes the webhook signature independently; an exchange the
  oracle rejects must get a 4xx whose JSON body has a non-empty ``error``;
- the log grows by at most what the oracle accepted (nothing for a refusal),
  and nothing reaches the dead-letter store from unauthenticated callers;
- afterwards the server still serves: a fresh valid event is acknowledged
  and the projections fold and checkpoint what the log took in.

A request can leave the engine unusable (an event accepted but impossible to
fold). The writer is then swapped for one on a fresh data directory, so the
examples after it are judged on their own rather than all failing with it.
"""

from __future__ import annotations

import base64
import copy
import gzip
import hashlib
import hmac
import itertools
import json
import string
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cdp.config import Settings
from cdp.http.app import create_app
from cdp.http.forms import MAX_FORM_BYTES
from cdp.http.intake import basic_username
from cdp.http.webhook_intake import MAX_WEBHOOK_BYTES
from cdp.ports.log import AppendResult, Record
from cdp.runtime.engine import Engine
from cdp.runtime.writer import GroupCommitWriter
from cdp.services import collector
from cdp.services.ingest import to_record
from cdp.services.sources import SourceRegistry
from connectors.sources import forms
from schemas import MAX_EVENT_BYTES
from tests.loopback import serve_app
from tests.unit import test_webhooks_line as line_samples
from tests.unit import test_webhooks_meta as meta_samples
from tests.unit import test_webhooks_orders as order_samples
from tests.unit import test_webhooks_shopify as shopify_samples
from tests.unit import test_webhooks_x as x_samples

pytestmark = [
    pytest.mark.integration,
    # When a poison event broke the engine, stopping its writer raises on the
    # writer thread; the example that caused it has already failed clearly.
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
TIMEOUT = 10.0
COLLECTOR_PATHS = tuple(f"/v1/{e}" for e in (*collector.SINGLE_TYPES, *collector.BATCH_ENDPOINTS))
READ_ONLY_PATHS = ("/health", "/openapi.json", "/docs", "/redoc", "/v1/webhooks/meta", "/v1/webhooks/x")  # fmt: skip
FORM_ID = "newsletter"
FORMS_TOML = f"""
[forms.{FORM_ID}]
email = "email"
last_name = "sei"
first_name = "mei"
anonymous_id = "ajs_anonymous_id"
consents = {{ email = "agree_mail", ads = "agree_ads" }}
"""
WEBHOOK_SECRETS = {
    "shopify": shopify_samples.SECRET,
    "line": line_samples.SECRET,
    "meta": meta_samples.APP_SECRET,
    "x": x_samples.CONSUMER_SECRET,
}
WEBHOOKS_TOML = (
    f'[shopify]\nsecret = "{shopify_samples.SECRET}"\n'
    f'[line]\nchannel_secret = "{line_samples.SECRET}"\n'
    f'[meta]\napp_secret = "{meta_samples.APP_SECRET}"\nverify_token = "fuzz-token"\n'
    f'[x]\nconsumer_secret = "{x_samples.CONSUMER_SECRET}"\n'
)
SIGNATURE_HEADERS = {
    "shopify": "x-shopify-hmac-sha256",
    "line": "x-line-signature",
    "meta": "x-hub-signature-256",
    "x": "x-twitter-webhooks-signature",
}


def expected_signature(platform: str, body: bytes) -> str:
    """The signature header each platform documents, computed here independently."""
    digest = hmac.new(WEBHOOK_SECRETS[platform].encode(), body, hashlib.sha256).digest()
    if platform == "meta":
        return "sha256=" + digest.hex()
    encoded = base64.b64encode(digest).decode()
    return "sha256=" + encoded if platform == "x" else encoded


# ------------------------------------------------------------------ harness
class RestartableWriter:
    """Stands in for the app's ``GroupCommitWriter``; replaced after a poison event.

    The app keeps the object it was given, so the harness hands it this one and
    swaps the real writer behind it (onto a fresh data directory) when a
    request broke the engine.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0
        self.current = self._fresh()

    def _fresh(self) -> GroupCommitWriter:
        self.generation += 1
        data = Settings(self.root / f"log-{self.generation}")
        # No periodic checkpoint: the harness checkpoints after every example,
        # so a fold that fails is reported by the example that caused it.
        writer = GroupCommitWriter(lambda: Engine.open(data), checkpoint_every=3600)
        writer.start()
        return writer

    def replace(self) -> None:
        broken, self.current = self.current, self._fresh()
        broken.stop()

    def submit(self, records: list[Record]) -> Future[AppendResult]:
        return self.current.submit(records)

    def call(self, fn: Callable[[Engine], Any]) -> Future[Any]:
        return self.current.call(fn)

    @property
    def pending(self) -> int:
        return self.current.pending

    @property
    def groups(self) -> int:
        return self.current.groups

    @property
    def checkpoint_error(self) -> str | None:
        return self.current.checkpoint_error

    @property
    def last_error(self) -> str | None:
        return self.current.last_error

    def stop(self) -> None:
        self.current.stop()


@dataclass(frozen=True)
class Request:
    """One HTTP request as the fuzzer built it (header values as raw bytes, possibly odd)."""

    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    chunked: bool = False

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.decode("latin-1").lower() == name:
                return value.decode("latin-1")
        return None

    def __repr__(self) -> str:
        body = self.body if len(self.body) <= 300 else self.body[:300] + b"..."
        chunked = " chunked" if self.chunked else ""
        return (
            f"Request({self.method} {self.path}, headers={list(self.headers)!r}, "
            f"{len(self.body)} bytes{chunked}: {body!r})"
        )


@dataclass(frozen=True)
class Verdict:
    """What the contract says about a request, from the oracle.

    ``accept``: True must be a 2xx, False must be a 4xx, None may be either
    (read-only routes). ``max_events``: how many events the log may take in.
    ``authenticated``: False means nothing may reach the dead-letter store.
    """

    accept: bool | None
    max_events: int = 0
    authenticated: bool = True
    why: str = ""


REFUSED_UNAUTHENTICATED = Verdict(False, authenticated=False, why="not authenticated")


@dataclass
class Harness:
    """The live server, the oracles, and the checks every fuzzed exchange goes through."""

    url: str
    key: str
    revoked_key: str
    writer: RestartableWriter
    client: httpx.Client
    form_mapping: forms.FormMapping
    probes: Iterator[int] = field(default_factory=itertools.count)

    # ------------------------------------------------------------- transport
    def send(self, request: Request) -> httpx.Response:
        content: bytes | Iterator[bytes] = request.body
        if request.chunked:
            half = len(request.body) // 2
            content = iter([request.body[:half], request.body[half:]])
        # An absolute URL: httpx merges a relative one into its base URL and drops the
        # path's leading slashes there (``//`` would be sent as ``/``, the console's root).
        return self.client.request(
            request.method, self.url + request.path, content=content, headers=list(request.headers)
        )

    def engine_call(self, fn: Callable[[Engine], Any]) -> Any:
        return self.writer.call(fn).result(timeout=TIMEOUT)

    def counts(self) -> tuple[int, int]:
        """(events in the log, dead letters)."""
        return self.engine_call(
            lambda e: (
                e.log.high_water(),
                e.con.execute("SELECT count(*) FROM dead_letters").fetchone()[0],
            )
        )

    # --------------------------------------------------------------- oracles
    def oracle(self, request: Request) -> Verdict:
        """Dispatch on the route, as the app does."""
        path, method = request.path, request.method
        if method == "GET" and path in READ_ONLY_PATHS:
            return Verdict(None, why="read-only route")
        if method != "POST":
            return Verdict(False, authenticated=False, why="no such method")
        if path in COLLECTOR_PATHS:
            return self.collector_oracle(request, path.removeprefix("/v1/"))
        if path == "/v1/bulk":
            return self.bulk_oracle(request)
        if path.startswith("/v1/webhooks/"):
            return self.webhook_oracle(request, path.removeprefix("/v1/webhooks/"))
        if path.startswith("/v1/forms/"):
            return self.form_oracle(request, path.removeprefix("/v1/forms/"))
        return Verdict(False, authenticated=False, why="no such route")

    def collector_oracle(self, request: Request, endpoint: str) -> Verdict:
        try:
            header_key = basic_username(request.header("authorization"))
            if len(request.body) > collector.MAX_REQUEST_BYTES:
                return REFUSED_UNAUTHENTICATED
            body = collector.decompress(request.body, request.header("content-encoding"))
        except Exception:  # refused before the key is looked at
            return REFUSED_UNAUTHENTICATED
        try:
            items, body_key = collector.parse(endpoint, body)
        except Exception as error:
            authenticated = header_key == self.key
            return Verdict(False, authenticated=authenticated, why=f"parse: {error!r}")
        if (header_key or body_key) != self.key:
            return REFUSED_UNAUTHENTICATED
        try:
            records = collector.to_records(
                items,
                datetime.now(UTC),
                "fuzz",
                single=endpoint in collector.SINGLE_TYPES,
                server_received_at=True,
            )
        except Exception as error:  # the oracle only classifies; the server must not crash
            return Verdict(False, why=f"validation: {error!r}")
        return Verdict(True, len(records))

    def bulk_oracle(self, request: Request) -> Verdict:
        try:
            if basic_username(request.header("authorization")) != self.key:
                return REFUSED_UNAUTHENTICATED
            body = collector.decompress(request.body, request.header("content-encoding"))
        except Exception:
            return REFUSED_UNAUTHENTICATED
        valid = invalid = 0
        for line in filter(None, (line.strip() for line in body.split(b"\n"))):
            try:
                to_record(line, datetime.now(UTC), "fuzz")
                valid += 1
            except Exception:
                invalid += 1
        # 200 when every line passed; else 422 with the good lines stored anyway.
        return Verdict(invalid == 0, valid, why=f"{valid} good lines, {invalid} bad")

    def webhook_oracle(self, request: Request, platform: str) -> Verdict:
        if platform == "orders":
            try:
                key = basic_username(request.header("authorization"))
            except Exception:
                return REFUSED_UNAUTHENTICATED
            verified = key == self.key
        elif platform in SIGNATURE_HEADERS:
            given = request.header(SIGNATURE_HEADERS[platform])
            verified = given == expected_signature(platform, request.body)
        else:
            return REFUSED_UNAUTHENTICATED
        if not verified:
            return REFUSED_UNAUTHENTICATED
        if len(request.body) > MAX_WEBHOOK_BYTES:
            return Verdict(False, why="over the webhook limit")
        # Verified input is always acknowledged: mapped, or kept as a dead letter.
        return Verdict(True, max_events=10_000)

    def form_oracle(self, request: Request, form_id: str) -> Verdict:
        if form_id != FORM_ID:
            return REFUSED_UNAUTHENTICATED
        if len(request.body) > MAX_FORM_BYTES:
            return Verdict(False, why="over the form limit")
        now = datetime.now(UTC)
        try:
            fields = forms.parse_body(request.header("content-type") or "", request.body)
            events = forms.to_events(form_id, fields, self.form_mapping, now, "oracle")
            records = collector.to_records(events, now, f"form:{form_id}")
        except Exception as error:
            return Verdict(False, why=f"{error!r}")
        return Verdict(True, len(records))

    # ---------------------------------------------------------------- checks
    def exchange(self, request: Request) -> httpx.Response:
        """Send one request and check everything the module docstring promises."""
        # Judged by the path httpx sends: it removes dot segments (``/.`` is ``/``).
        request = replace(request, path=httpx.URL(self.url + request.path).raw_path.decode())
        verdict = self.oracle(request)
        events_before, letters_before = self.counts()
        response = self.send(request)
        status = response.status_code
        context = f"{request!r} → {status} {response.text[:300]!r} ({verdict})"
        assert status < 500, f"server error: {context}"
        if request.path == "/" or request.path.startswith("/console"):
            # The console answers in HTML (a redirect to its sign-in page, its own
            # 403 page); its doors are tested in tests/integration/console. It never
            # stores an event.
            assert status in (303, 403, 404, 405), f"console: {context}"
            assert self.counts() == (events_before, letters_before), f"console stored: {context}"
            return response
        assert 200 <= status < 300 or 400 <= status < 500, f"unexpected status: {context}"
        if 200 <= status < 300:
            assert verdict.accept is not False, f"accepted an invalid request: {context}"
            if request.method == "POST":
                assert response.json().get("success") is True, context
        else:
            try:
                answer = response.json()
            except ValueError:
                pytest.fail(f"a {status} without a JSON body: {context}")
            error = answer.get("error") if isinstance(answer, dict) else None
            assert isinstance(error, str) and error.strip(), f"no 'error' message: {context}"
            assert verdict.accept is not True, f"refused a valid request: {context}"
        events_after, letters_after = self.counts()
        stored = events_after - events_before
        limit = verdict.max_events if verdict.accept is not None else 0
        assert 0 <= stored <= limit, f"stored {stored} events (at most {limit}): {context}"
        if not verdict.authenticated:
            assert letters_after == letters_before, f"dead-lettered an unknown caller: {context}"
        self.assert_still_serving(request)
        return response

    def assert_still_serving(self, request: Request) -> None:
        """A valid event is acknowledged and the projections fold and checkpoint."""
        probe = {"type": "page", "anonymousId": "probe", "messageId": f"probe-{next(self.probes)}"}
        try:
            answer = self.client.post("/v1/page", json=probe, auth=(self.key, ""))
            assert answer.status_code == 200, f"probe answered {answer.status_code}"
            self.engine_call(lambda e: e.checkpoint())
        except Exception as error:
            self.writer.replace()
            raise AssertionError(
                f"the server stopped serving after {request!r}: {type(error).__name__}: {error}"
            ) from error


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    root = tmp_path_factory.mktemp("fuzz")
    app_settings = Settings(root / "app")  # sources and settings; events go to the writer's
    app_settings.data_dir.mkdir()
    (app_settings.data_dir / "webhooks.toml").write_text(WEBHOOKS_TOML, encoding="utf-8")
    (app_settings.data_dir / "forms.toml").write_text(FORMS_TOML, encoding="utf-8")
    registry = SourceRegistry(app_settings.data_dir)
    key = registry.add("fuzz")
    revoked_key = registry.add("gone")
    registry.revoke("gone")
    mapping = forms.load_forms(app_settings.data_dir / "forms.toml").mapping_for(FORM_ID)
    writer = RestartableWriter(root)
    try:
        app = create_app(app_settings, cast(GroupCommitWriter, writer))  # duck-typed stand-in
        for url in serve_app(app, log_level="critical"):
            # No keep-alive: after a 5xx uvicorn may close the connection, and
            # reusing it would turn the next request into a client-side error.
            no_keep_alive = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(base_url=url, timeout=TIMEOUT, limits=no_keep_alive) as client:
                yield Harness(url, key, revoked_key, writer, client, mapping)
    finally:
        writer.stop()


# --------------------------------------------------------------- strategies
def basic(username: str, password: str = "") -> bytes:
    return b"Basic " + base64.b64encode(f"{username}:{password}".encode())


VALID_EVENTS: dict[str, dict[str, Any]] = {
    "track": {"type": "track", "event": "Clicked", "userId": "u-1", "properties": {"k": 1}},
    "identify": {
        "type": "identify",
        "userId": "u-1",
        "traits": {"email": "a@shop.jp", "phone": "090-1234-5678"},
        "context": {"traits": {"first_name": "Hanako"}, "page": {"path": "/"}},
    },
    "page": {"type": "page", "anonymousId": "a-1", "name": "Home", "properties": {"path": "/"}},
    "screen": {"type": "screen", "anonymousId": "a-1", "name": "Cart"},
    "group": {"type": "group", "userId": "u-1", "groupId": "g-1", "traits": {"name": "Co"}},
    "alias": {"type": "alias", "userId": "u-1", "previousId": "a-1"},
    "order": {
        "type": "track",
        "event": "Order Completed",
        "userId": "u-1",
        "properties": {"order_id": "o-1", "revenue": 10, "products": [{"product_id": "p-1"}]},
    },
    "order_v1": {
        "type": "track",
        "event": "Order Completed",
        "userId": "u-1",
        "schemaVersion": 1,
        "properties": {"orderId": "o-1", "total": 10, "products": [{"id": "p-1"}]},
    },
}
TIME_FIELDS = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),  # past 64 bits, which orjson refuses
    st.floats(allow_nan=True, allow_infinity=True),  # NaN/Infinity tokens via json.dumps
    st.text(max_size=40),
    st.sampled_from(["", " ", "null", "undefined", "0", "\x00", "😀", "x" * 201, "é" * 150]),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
offsets = st.timedeltas(
    min_value=timedelta(hours=-23, minutes=-59), max_value=timedelta(hours=23, minutes=59)
)
times = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00+05:00",  # before year 1 once in UTC
            "9999-12-31T23:59:59-05:00",  # after year 9999 once in UTC
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "2026-02-30T00:00:00Z",
            "2026-05-01T25:00:00Z",
            "2026-05-01",
            "2026-05-01T00:00:00",
            "2026-05-01T00:00:00+24:00",
            "yesterday",
            "",
        ]
    ),
    st.datetimes(timezones=st.builds(timezone, offsets)).map(datetime.isoformat),
    st.datetimes().map(datetime.isoformat),  # naive
    st.sampled_from([0, -1, 1e10, 1e20, 253_402_300_800, -62_135_596_801, "1768446000000"]),
)


def paths_in(document: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value inside nested dicts and lists."""
    children = document.items() if isinstance(document, dict) else enumerate(document)
    for key, value in children:
        yield (*prefix, key)
        if isinstance(value, dict | list):
            yield from paths_in(value, (*prefix, key))


@st.composite
def mutated(draw: st.DrawFn, document: dict[str, Any], changes: int = 3) -> dict[str, Any]:
    """``document`` with up to ``changes`` values anywhere replaced by junk or a time, or dropped."""
    result = copy.deepcopy(document)
    for _ in range(draw(st.integers(0, changes))):
        paths = list(paths_in(result))
        if not paths:
            break
        *parent_path, key = draw(st.sampled_from(paths))
        parent = result
        for step in parent_path:
            parent = parent[step]
        action = draw(st.sampled_from(["junk", "time", "drop"]))
        if action == "drop" and isinstance(parent, dict):
            del parent[key]
        else:
            parent[key] = draw(times if action == "time" else json_values)
    return result


@st.composite
def fuzzed_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event, with odd times on its envelope and junk anywhere in it."""
    event = draw(mutated(draw(st.sampled_from(list(VALID_EVENTS.values())))))
    event["messageId"] = f"m-{draw(st.uuids())}"
    for name in draw(st.lists(st.sampled_from(TIME_FIELDS), max_size=2, unique=True)):
        event[name] = draw(times)
    return event


def dumps(value: Any) -> bytes:
    """JSON the way a sloppy producer writes it: NaN/Infinity tokens and big integers pass."""
    return json.dumps(value, allow_nan=True).encode()


@st.composite
def event_requests(draw: st.DrawFn) -> tuple[str, bytes]:
    """(path, body): a fuzzed event on its endpoint, or a batch of them with junk batch fields."""
    if draw(st.booleans()):
        event = draw(fuzzed_events())
        kind = event.get("type")
        if kind not in collector.SINGLE_TYPES:
            kind = draw(st.sampled_from(collector.SINGLE_TYPES))
        return f"/v1/{kind}", dumps(event)
    document: dict[str, Any] = {"batch": draw(st.lists(fuzzed_events(), min_size=1, max_size=4))}
    for name in ("context", "integrations", "sentAt", "writeKey"):
        if draw(st.booleans()):
            document[name] = draw(times if name == "sentAt" else json_values)
    if draw(st.integers(0, 9)) == 0:
        document["batch"] = draw(json_values)
    return draw(st.sampled_from(["/v1/batch", "/v1/import"])), dumps(document)


def nested(depth: int, container: str) -> bytes:
    """``depth`` levels of objects or arrays around a 1."""
    if container == "object":
        return b'{"x":' * depth + b"1" + b"}" * depth
    return b"[" * depth + b"1" + b"]" * depth


ODD_TOKENS = (b"NaN", b"Infinity", b"-Infinity", b"1e400", b"99999999999999999999999", b'"\\ud800"', b"'x'", b"undefined")  # fmt: skip


@st.composite
def malformed_bodies(draw: st.DrawFn) -> bytes:
    """Bytes that are not a valid event: random, truncated, spliced, odd tokens, deep nesting."""
    valid = orjson.dumps(draw(st.sampled_from(list(VALID_EVENTS.values()))))
    kind = draw(st.sampled_from(["random", "truncated", "spliced", "shape", "token", "deep"]))
    if kind == "random":
        return draw(st.binary(max_size=2048))
    if kind == "truncated":
        return valid[: draw(st.integers(0, len(valid) - 1))]
    if kind == "spliced":
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(st.binary(min_size=1, max_size=8)) + valid[at:]
    if kind == "shape":  # JSON of every shape
        return dumps(draw(json_values))
    if kind == "token":
        return (
            b'{"type":"page","anonymousId":"a","properties":{"v":'
            + draw(st.sampled_from(ODD_TOKENS))
            + b"}}"
        )
    depth = draw(st.sampled_from([64, 253, 254, 255, 256, 300, 1023, 1024, 1025, 4000]))
    inner = nested(depth, draw(st.sampled_from(["object", "array"])))
    return b'{"type":"page","anonymousId":"a","properties":{"deep":' + inner + b"}}"


AUTH_VALUES = (
    b"Basic " + base64.b64encode(b"wk_unknown:"),
    b"Basic " + base64.b64encode(b":"),
    b"Basic " + base64.b64encode(b"\xff\xfe:"),  # not UTF-8
    b"Basic ***",
    b"Basic",
    b"Bearer wk_abc",
    b"Digest username=x",
    b"wk_abc",
    b"Basic \xe9\xe9",  # latin-1, not ASCII
)
auth_headers = st.one_of(
    st.sampled_from(["valid", "revoked", None]),
    st.sampled_from(AUTH_VALUES),
    st.text(alphabet=string.printable.strip(), min_size=1, max_size=40).map(
        lambda t: b"Basic " + t.encode()
    ),
)
ENCODINGS = (None, "gzip", "gzip-lie", "gzip-truncated", "gzip-bad-crc", "GZIP", "x-gzip", "deflate", "br", "identity", "gzip, gzip")  # fmt: skip
CONTENT_TYPES = (None, "application/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "application/json; charset=latin-1", "ü/ü")  # fmt: skip


def encode(body: bytes, encoding: str | None) -> tuple[bytes, bytes | None]:
    """The body on the wire and its Content-Encoding header, honest or lying."""
    if encoding in ("gzip", "GZIP", "x-gzip"):
        return gzip.compress(body), encoding.encode()
    if encoding == "gzip-lie":
        return body, b"gzip"
    if encoding == "gzip-truncated":
        packed = gzip.compress(body)
        return packed[: max(1, len(packed) // 2)], b"gzip"
    if encoding == "gzip-bad-crc":
        packed = bytearray(gzip.compress(body))
        packed[-8] ^= 0xFF
        return bytes(packed), b"gzip"
    if encoding == "deflate":
        return zlib.compress(body), b"deflate"
    return body, None if encoding is None else encoding.encode()


def build(
    harness: Harness,
    method: str,
    path: str,
    body: bytes,
    *,
    auth: bytes | str | None = "valid",
    encoding: str | None = None,
    content_type: str | None = "application/json",
    chunked: bool = False,
    extra: dict[str, str] | None = None,
) -> Request:
    """A request with the headers asked for; ``auth`` "valid"/"revoked" means that source's key."""
    wire, coding = encode(body, encoding)
    keys = {"valid": basic(harness.key), "revoked": basic(harness.revoked_key)}
    authorization = keys.get(auth, auth) if isinstance(auth, str) else auth
    headers = [
        (b"authorization", authorization),
        (b"content-encoding", coding),
        (b"content-type", None if content_type is None else content_type.encode()),
        *((name.encode(), value.encode()) for name, value in (extra or {}).items()),
    ]
    sent = tuple((name, value) for name, value in headers if value is not None)
    return Request(method, path, wire, sent, chunked)


# -------------------------------------------------------- collector routes
@FUZZ
@given(path=st.sampled_from(COLLECTOR_PATHS), body=malformed_bodies())
def test_malformed_bodies_get_a_clear_4xx(harness: Harness, path: str, body: bytes) -> None:
    harness.exchange(build(harness, "POST", path, body))


@FUZZ
@given(target=event_requests())
def test_events_with_junk_in_any_field_and_odd_times(harness: Harness, target: Any) -> None:
    path, body = target
    harness.exchange(build(harness, "POST", path, body))


BODY_KEYS = (None, "valid", "revoked", "wk_unknown", 5, ["x"])


@FUZZ
@given(kind=st.sampled_from(list(VALID_EVENTS)), chunked=st.booleans(), data=st.data())
def test_headers_encodings_and_keys(
    harness: Harness, kind: str, chunked: bool, data: st.DataObject
) -> None:
    event = {**VALID_EVENTS[kind], "messageId": f"h-{time.monotonic_ns()}"}
    body_key = data.draw(st.sampled_from(BODY_KEYS), label="writeKey in the body")
    if body_key is not None:
        keys = {"valid": harness.key, "revoked": harness.revoked_key}
        event["writeKey"] = keys.get(body_key, body_key) if isinstance(body_key, str) else body_key
    request = build(
        harness, "POST", f"/v1/{event['type']}", orjson.dumps(event), chunked=chunked,
        auth=data.draw(auth_headers, label="Authorization"),
        encoding=data.draw(st.sampled_from(ENCODINGS), label="Content-Encoding"),
        content_type=data.draw(st.sampled_from(CONTENT_TYPES), label="Content-Type"),
    )  # fmt: skip
    harness.exchange(request)


def sized_event(size: int) -> dict[str, Any]:
    """A valid page event whose compact JSON (as sent) is exactly ``size`` bytes."""
    event = {"type": "page", "anonymousId": "a", "messageId": f"s-{time.monotonic_ns()}"}
    event["name"] = "x" * (size - len(orjson.dumps({**event, "name": ""})))
    return event


@settings(FUZZ, max_examples=30)
@given(delta=st.integers(-300, 300), batch=st.booleans(), gzipped=st.booleans())
def test_bodies_at_the_size_limits(
    harness: Harness, delta: int, batch: bool, gzipped: bool
) -> None:
    if batch:  # 17 events of about 30 KB: the request, not any event, is at its limit
        items = [sized_event(30_000) for _ in range(17)]
        overhead = len(orjson.dumps({"batch": items}))
        items[-1] = sized_event(30_000 + collector.MAX_REQUEST_BYTES + delta - overhead)
        path, body = "/v1/batch", orjson.dumps({"batch": items})
    else:
        path, body = "/v1/page", orjson.dumps(sized_event(MAX_EVENT_BYTES + delta))
    harness.exchange(build(harness, "POST", path, body, encoding="gzip" if gzipped else None))


# ------------------------------------------------------------ other routes
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
ODD_PATHS = (
    "/",
    "/v1",
    "/v2/track",
    "/v1/track/x",
    "/v1/TRACK",
    "/v1/forms/",
    "/v1/webhooks/tiktok",
)
PATH_CHARACTERS = string.ascii_letters + string.digits + "-._~/%"
any_path = st.one_of(
    st.sampled_from((*COLLECTOR_PATHS, *READ_ONLY_PATHS, *ODD_PATHS)),
    st.text(alphabet=PATH_CHARACTERS, max_size=30).map(lambda path: "/" + path),
)


@settings(FUZZ, max_examples=60)
@given(
    method=st.sampled_from(METHODS),
    path=any_path,
    body=st.sampled_from([b"", b"{}", orjson.dumps(VALID_EVENTS["page"]), b"\xff"]),
)
def test_unknown_routes_and_methods_answer_json_errors(
    harness: Harness, method: str, path: str, body: bytes
) -> None:
    harness.exchange(build(harness, method, path, body))


bulk_lines = st.one_of(
    fuzzed_events().map(dumps), malformed_bodies(), st.just(orjson.dumps(VALID_EVENTS["page"]))
)


@settings(FUZZ, max_examples=100)
@given(
    lines=st.lists(bulk_lines, max_size=4),
    auth=st.sampled_from(["valid", "revoked", None, b"Basic ***"]),
    gzipped=st.booleans(),
)
def test_bulk_import_lines_of_anything(
    harness: Harness, lines: list[bytes], auth: Any, gzipped: bool
) -> None:
    body = b"\n".join(line.replace(b"\n", b" ") for line in lines)
    encoding = "gzip" if gzipped else None
    ndjson = "application/x-ndjson"
    harness.exchange(
        build(harness, "POST", "/v1/bulk", body, auth=auth, encoding=encoding, content_type=ndjson)
    )


X_ACTIVITY = {"for_user_id": x_samples.SHOP, "direct_message_events": [x_samples.RECEIVED_DM]}
WEBHOOK_SAMPLES: dict[str, list[dict[str, Any]]] = {
    "shopify": [shopify_samples.ORDER, shopify_samples.REFUND],
    "line": [line_samples.body(line_samples.FOLLOW, line_samples.TEXT, line_samples.POSTBACK)],
    "meta": [meta_samples.body(meta_samples.TEXT, meta_samples.IMAGE)],
    "x": [{**X_ACTIVITY, "users": x_samples.USERS}],
    "orders": [order_samples.ORDER],
}
SIGNINGS = ("right", "right", "right", "wrong-secret", "other-body", "none", "garbage")
SHOPIFY_TOPICS = ("orders/create", "orders/paid", "refunds/create", "products/update", "")


def signature_for(platform: str, signing: str, body: bytes) -> str | None:
    """The signature header value to send: right, forged in some way, or none."""
    forged = base64.b64encode(hmac.new(b"wrong", body, hashlib.sha256).digest()).decode()
    return {
        "right": expected_signature(platform, body),
        "wrong-secret": forged,
        "other-body": expected_signature(platform, body + b" "),
        "garbage": "sha256=not-a-digest",
    }.get(signing)


@FUZZ
@given(
    platform=st.sampled_from(list(WEBHOOK_SAMPLES)),
    signing=st.sampled_from(SIGNINGS),
    data=st.data(),
)
def test_webhooks_signed_forged_and_junk(
    harness: Harness, platform: str, signing: str, data: st.DataObject
) -> None:
    sample = data.draw(st.sampled_from(WEBHOOK_SAMPLES[platform]), label="sample")
    bodies = st.one_of(mutated(sample, changes=4).map(dumps), malformed_bodies())
    body = data.draw(bodies, label="body")
    headers: dict[str, str] = {}
    if platform == "shopify":
        headers["x-shopify-topic"] = data.draw(st.sampled_from(SHOPIFY_TOPICS), label="topic")
    if platform != "orders" and (signature := signature_for(platform, signing, body)):
        headers[SIGNATURE_HEADERS[platform]] = signature
    auth = "valid" if platform == "orders" and signing == "right" else None
    path = f"/v1/webhooks/{platform}"
    harness.exchange(build(harness, "POST", path, body, auth=auth, extra=headers))


FORM_FIELDS = {
    "email": "hanako@example.jp",
    "sei": "山田",
    "mei": "花子",
    "ajs_anonymous_id": "anon-42",
    "agree_mail": "on",
}
FORM_IDS = (FORM_ID, FORM_ID, "unknown-form", "x" * 101, "..", "%00")
URLENCODED, BOUNDARY = "application/x-www-form-urlencoded", "fuzzboundary"
FORM_CONTENT_TYPES = ("match", "match", "text/plain", "multipart/form-data", f"{URLENCODED}; charset=x-unknown", None)  # fmt: skip


def form_body(fields: dict[str, Any], encoding: str, junk: bytes) -> tuple[bytes, str]:
    """A form post's body and the Content-Type that matches it."""
    if encoding == "urlencoded":
        return urlencode(fields, doseq=True).encode(), URLENCODED
    if encoding == "multipart":
        parts = "".join(
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in fields.items()
        )
        return f"{parts}--{BOUNDARY}--\r\n".encode(), f"multipart/form-data; boundary={BOUNDARY}"
    if encoding == "json":
        return dumps(fields), "application/json"
    return junk, URLENCODED


@settings(FUZZ, max_examples=100)
@given(
    form_id=st.sampled_from(FORM_IDS),
    fields=mutated(FORM_FIELDS).map(
        lambda f: {k: v for k, v in f.items() if not isinstance(v, dict)}
    ),
    encoding=st.sampled_from(["urlencoded", "multipart", "json", "random"]),
    content_type=st.sampled_from(FORM_CONTENT_TYPES),
    junk=st.binary(max_size=200),
)
def test_form_posts_of_any_encoding(
    harness: Harness, form_id: str, fields: Any, encoding: str, content_type: Any, junk: bytes
) -> None:
    body, matching = form_body(fields, encoding, junk)
    sent_type = matching if content_type == "match" else content_type
    path = f"/v1/forms/{form_id}"
    harness.exchange(build(harness, "POST", path, body, auth=None, content_type=sent_type))


# ------------------------------------------------------- found by fuzzing
# Requests the fuzzer found breaking the contract (a 5xx, an engine poisoned by an
# accepted event, an error answer without a message), with the answer it asks for.
DEEP_PROPERTIES = b'{"anonymousId":"a","properties":' + nested(300, "object") + b"}"
FOUND_BY_FUZZING = {
    "json-nested-past-orjson-dumps-limit": ("/v1/page", DEEP_PROPERTIES, "valid", 400),
    "json-nested-past-orjson-dumps-limit-in-a-batch": (
        "/v1/batch", b'{"batch":[{"type":"page",' + DEEP_PROPERTIES[1:] + b"]}", "valid", 400,
    ),
    "clock-correction-overflows": (
        "/v1/page",
        b'{"anonymousId":"a","sentAt":"9999-12-31T00:00:00Z","originalTimestamp":"0001-01-01T00:00:00Z"}',
        "valid", 400,
    ),
    "event-time-before-year-1-in-utc-poisons-the-fold": (
        "/v1/page", b'{"anonymousId":"a","originalTimestamp":"0001-01-01T00:00:00+05:00"}', "valid", 400,
    ),
    "event-time-after-year-9999-in-utc-poisons-the-fold": (
        "/v1/identify", b'{"userId":"u","timestamp":"9999-12-31T23:59:59-05:00"}', "valid", 400,
    ),
    "v1-order-upcaster-on-string-properties": (
        "/v1/track", b'{"userId":"u","event":"Order Completed","schemaVersion":1,"properties":"abc"}',
        "valid", 400,
    ),
    "v1-order-upcaster-on-non-list-products": (
        "/v1/track",
        b'{"userId":"u","event":"Order Completed","schemaVersion":1,"properties":{"products":5}}',
        "valid", 400,
    ),
    "basic-auth-not-ascii": ("/v1/page", b'{"anonymousId":"a"}', b"Basic \xe9\xe9", 401),
    "unknown-route-has-an-error-message": ("/v1/nope", b"{}", "valid", 404),
    "bulk-422-has-an-error-message": ("/v1/bulk", b'{"type":"page"}', "valid", 422),
}  # fmt: skip


@pytest.mark.parametrize(
    ("path", "body", "auth", "status"), FOUND_BY_FUZZING.values(), ids=FOUND_BY_FUZZING.keys()
)
def test_requests_found_by_fuzzing_get_their_4xx(
    harness: Harness, path: str, body: bytes, auth: bytes | str, status: int
) -> None:
    assert harness.exchange(build(harness, "POST", path, body, auth=auth)).status_code == status


def test_a_wrong_method_on_a_collector_route_has_an_error_message(harness: Harness) -> None:
    assert harness.exchange(build(harness, "GET", "/v1/track", b"")).status_code == 405


# ------------------------------------------------------------ schemathesis
def test_schemathesis_finds_no_server_error(harness: Harness) -> None:
    """Schemathesis over ``/openapi.json`` (positive and negative cases), when installed."""
    schemathesis = pytest.importorskip("schemathesis")
    not_a_server_error = pytest.importorskip("schemathesis.checks").not_a_server_error
    modes = list(pytest.importorskip("schemathesis.generation").GenerationMode)
    schema = schemathesis.openapi.from_url(f"{harness.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # Schemathesis has no serializer for /v1/bulk's application/x-ndjson; fuzzed above.
    fuzzable = [op for op in operations if op.path != "/v1/bulk"]
    assert len(fuzzable) > len(COLLECTOR_PATHS)
    cases = st.one_of([op.as_strategy(generation_mode=mode) for op in fuzzable for mode in modes])
    auth = {"Authorization": basic(harness.key).decode()}

    @settings(FUZZ, max_examples=60)
    @given(case=cases)
    def run(case: Any) -> None:
        response = case.call(base_url=harness.url, headers=auth, timeout=TIMEOUT)
        case.validate_response(response, checks=[not_a_server_error], headers=auth)
        if response.status_code >= 400:
            assert isinstance(response.json().get("error"), str), response.text[:300]
        harness.assert_still_serving(Request(case.method, case.formatted_path))

    run()
