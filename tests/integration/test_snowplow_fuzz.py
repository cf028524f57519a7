"""Fuzzing the Snowplow routes of ``cdp serve`` over real HTTP: never a 5xx.

The style of ``test_collector_fuzz``: one uvicorn server for the module, and
hypothesis-generated ``POST /com.snowplowanalytics.snowplow/tp2`` bodies
(valid tracker payloads with junk anywhere, non-string values, bad base64 and
schemas, random bytes, lying gzip) and ``GET /i`` querystrings. An oracle runs
the same pure steps in-process (``snowplow.payload_items``/``to_events``,
``collector.to_records``) and the registry's app ids, and every exchange is
judged:

- never a 5xx; a 4xx has a JSON body with a non-empty ``error``;
- a 2xx only for what the oracle accepts, a 4xx for what it refuses;
- the log grows by at most the accepted events, and not at all on a 4xx;
- unknown app ids leave no dead letter; a known one's bad payload leaves one;
- afterwards the projections still fold and checkpoint.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cdp.config import Settings
from cdp.http.app import create_app
from cdp.http.snowplow import POST_PATH
from cdp.runtime.writer import GroupCommitWriter
from cdp.services import collector
from cdp.services.sources import SourceRegistry
from connectors.sources import snowplow
from tests.integration.test_collector_fuzz import (
    ENCODINGS,
    FUZZ,
    TIMEOUT,
    RestartableWriter,
    dumps,
    encode,
    json_values,
    mutated,
)
from tests.loopback import serve_app

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning"),
]

KNOWN, REVOKED = "shop", "old-shop"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"


def b64(value: Any) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


CLICK = {"schema": "iglu:com.acme/click/jsonschema/1-0-0", "data": {"x": 1}}
ENTITIES = {"schema": CONTEXTS, "data": [{"schema": "iglu:com.acme/page/jsonschema/1-0-0", "data": {}}]}  # fmt: skip
COMMON = {"aid": KNOWN, "duid": "d-1", "dtm": "1764928800000", "stm": "1764928801000", "tv": "js-4.10.1"}  # fmt: skip
SAMPLES: dict[str, dict[str, Any]] = {
    "pv": {**COMMON, "e": "pv", "url": "https://s.jp/a?utm_source=n", "page": "A", "res": "1x1"},
    "pp": {**COMMON, "e": "pp", "url": "https://s.jp/", "pp_mix": "0", "pp_max": "5"},
    "se": {**COMMON, "e": "se", "uid": "U", "se_ca": "c", "se_ac": "a", "se_va": "1.5"},
    "ue": {
        **COMMON,
        "e": "ue",
        "ue_px": b64({"schema": UNSTRUCT, "data": CLICK}),
        "cx": b64(ENTITIES),
    },
    "ue_pr": {
        **COMMON,
        "e": "ue",
        "ue_pr": orjson.dumps({"schema": UNSTRUCT, "data": CLICK}).decode(),
        "co": orjson.dumps(ENTITIES).decode(),
    },
    "tr": {**COMMON, "e": "tr", "uid": "U", "tr_id": "o-1", "tr_tt": "10.5", "tr_cu": "JPY"},
    "ti": {
        **COMMON,
        "e": "ti",
        "uid": "U",
        "ti_id": "o-1",
        "ti_sk": "s",
        "ti_pr": "1",
        "ti_qu": "2",
    },
}
ODD_STRINGS = st.sampled_from(
    ["", "x", "\x00", "-1", "1e400", "NaN", "99999999999999999", "%%%", "e30", "eyJ9", "😀", "x" * 300]
)  # fmt: skip


@dataclass
class Harness:
    url: str
    writer: RestartableWriter
    registry: SourceRegistry
    client: httpx.Client

    def counts(self) -> tuple[int, int]:
        return cast(
            tuple[int, int],
            self.writer.call(
                lambda e: (
                    e.log.high_water(),
                    e.con.execute("SELECT count(*) FROM dead_letters").fetchone()[0],
                )
            ).result(timeout=TIMEOUT),
        )

    def known(self, app_ids: list[str]) -> bool:
        try:
            for app_id in app_ids or [""]:
                self.registry.source_for_app_id(app_id)
        except Exception:
            return False
        return True

    def oracle(self, items: list[Any] | None, app_ids: list[str]) -> tuple[bool | None, bool, int]:
        """(authenticated, accepted, events) for a body's items (None: not payload_data).

        ``authenticated`` None: refused before any app id is looked at (any 4xx)."""
        if not self.known(app_ids):
            return False, False, 0
        if items is None:
            return True, False, 0
        try:
            events = snowplow.to_events(items)
            records = collector.to_records(events, datetime.now(UTC), "o", server_received_at=True)
        except Exception:
            return True, False, 0
        return True, True, len(records)

    def exchange(
        self, method: str, path: str, verdict: tuple[bool | None, bool, int], **request: Any
    ) -> httpx.Response:
        authenticated, accepted, events = verdict
        events_before, letters_before = self.counts()
        response = self.client.request(method, path, **request)
        status = response.status_code
        context = f"{method} {path} {request!r} → {status} {response.text[:300]!r} {verdict}"
        assert status < 500, f"server error: {context}"
        if 200 <= status < 300:
            assert accepted, f"accepted an invalid request: {context}"
        else:
            assert 400 <= status < 500, context
            error = response.json().get("error")
            assert isinstance(error, str) and error.strip(), f"no error message: {context}"
            assert not accepted, f"refused a valid request: {context}"
            if authenticated is not None:
                assert status == (400 if authenticated else 401), context
        events_after, letters_after = self.counts()
        assert 0 <= events_after - events_before <= (events if accepted else 0), context
        if not authenticated:
            assert letters_after == letters_before, f"dead-lettered an unknown app id: {context}"
        try:
            self.writer.call(lambda e: e.checkpoint()).result(timeout=TIMEOUT)
        except Exception as error:
            self.writer.replace()
            raise AssertionError(f"the projections broke after {context}: {error!r}") from error
        return response


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    root = tmp_path_factory.mktemp("snowplow-fuzz")
    settings = Settings(root / "app")
    registry = SourceRegistry(settings.data_dir)
    registry.add("web", snowplow_app_ids=[KNOWN])
    registry.add("gone", snowplow_app_ids=[REVOKED])
    registry.revoke("gone")
    writer = RestartableWriter(root)
    try:
        app = create_app(settings, cast(GroupCommitWriter, writer))
        for url in serve_app(app, log_level="critical"):
            limits = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(base_url=url, timeout=TIMEOUT, limits=limits) as client:
                yield Harness(url, writer, registry, client)
    finally:
        writer.stop()


APP_IDS = st.sampled_from([*[KNOWN] * 8, REVOKED, "stranger", ""])


@st.composite
def tracker_items(draw: st.DrawFn, aid: str | None = None, clean: bool = False) -> Any:
    """A sample tracker event; unless ``clean``, values replaced by junk or dropped."""
    item = dict(draw(st.sampled_from(list(SAMPLES.values()))))
    item["eid"] = f"f-{time.monotonic_ns()}-{draw(st.integers(0, 10**6))}"
    item["aid"] = draw(APP_IDS) if aid is None else aid
    if clean:
        return item
    for name in draw(st.lists(st.sampled_from(sorted(item)), max_size=3, unique=True)):
        action = draw(st.sampled_from(["odd", "json", "drop"]))
        if action == "drop":
            del item[name]
        else:
            item[name] = draw(ODD_STRINGS if action == "odd" else json_values)
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)  # not an object at all
    return item


@st.composite
def tp2_bodies(draw: st.DrawFn) -> bytes:
    """Bodies as trackers send them (one app id, clean or with junk), and worse."""
    kind = draw(
        st.sampled_from(["clean", "clean", "junk", "junk", "mixed-aid", "document", "bytes"])
    )
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    aid = None if kind == "mixed-aid" else draw(APP_IDS)
    items = st.lists(tracker_items(aid, clean=kind == "clean"), min_size=1, max_size=4)
    document: dict[str, Any] = {"schema": PAYLOAD_DATA, "data": draw(items)}
    if kind == "document":
        document = draw(mutated(document, changes=2))
    return dumps(document)


def items_of(raw: bytes) -> tuple[list[Any] | None, list[str]]:
    try:
        items = snowplow.payload_items(raw)
    except snowplow.PayloadRejected:
        return None, snowplow.loose_app_ids(raw)
    return items, snowplow.app_ids(items)


@FUZZ
@given(body=tp2_bodies(), encoding=st.sampled_from([None, None, *ENCODINGS]))
def test_tp2_posts_of_anything(harness: Harness, body: bytes, encoding: str | None) -> None:
    wire, coding = encode(body, encoding)
    headers = {"content-type": "application/json; charset=UTF-8"}
    if coding is not None:
        headers["content-encoding"] = coding.decode()
    try:
        plain = collector.decompress(wire, headers.get("content-encoding"))
    except collector.RequestRejected:  # refused before the app id is looked for
        verdict: tuple[bool | None, bool, int] = (None, False, 0)
    else:
        verdict = harness.oracle(*items_of(plain))
    response = harness.exchange("POST", POST_PATH, verdict, content=wire, headers=headers)
    if verdict[1]:
        assert response.status_code == 200


@FUZZ
@given(item=st.one_of(tracker_items(clean=True), tracker_items()), extra=st.lists(st.tuples(st.sampled_from(["e", "aid", "x"]), st.text(max_size=5)), max_size=2))  # fmt: skip
def test_pixel_querystrings_of_anything(
    harness: Harness, item: Any, extra: list[tuple[str, str]]
) -> None:
    if not isinstance(item, dict):
        item = {"e": "pv", "aid": KNOWN}
    # A querystring carries text only: junk values arrive as their JSON text.
    params = [(k, v if isinstance(v, str) else dumps(v).decode()) for k, v in item.items()]
    params += extra
    app_id = next((v for k, v in params if k == "aid"), "")
    try:
        event = snowplow.query_event(params)
        collector.to_records([event], datetime.now(UTC), "o", server_received_at=True)
        valid = True
    except Exception:
        valid = False
    authenticated = harness.known([app_id])
    verdict = (authenticated, authenticated and valid, 1)
    response = harness.exchange("GET", "/i", verdict, params=params)
    if verdict[1]:
        assert response.headers["content-type"] == "image/gif"
