"""Suppression at every door of ``cdp serve`` (real app on loopback) and of file ingest.

A person suppressed by email sends through the collector, ``/v1/bulk``, a
Shopify webhook, a form and a Snowplow tracker: every request is answered as
accepted, nothing of theirs is stored (nor the anonymous id that came with
the email), ``cdp_suppressed_events_total`` counts the refusals, other
people's events are stored; after an unsuppress the same person's events are
stored again. The list itself is checked on disk: tokens only, private,
seen by a reader after another process changes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from cdp.cli import app as cli_app
from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from cdp.services.privacy import files, suppressions
from cdp.services.privacy.suppressions import SuppressionGate, SuppressionList
from cdp.services.sources import SourceRegistry
from connectors.sources.files import read_items
from tests.integration.test_collector import Service, served
from tests.unit import test_webhooks_shopify as shopify_samples

pytestmark = pytest.mark.integration

EMAIL = "hanako@shop.jp"
KEY = f"email:{EMAIL}"
APP_ID = "shop-web"
FORMS_TOML = """
[forms.newsletter]
email = "email"
anonymous_id = "ajs_anonymous_id"
consents = { email = "agree_mail" }
"""
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"


@pytest.fixture
def door(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    """Every door on one app: collector and bulk (``web``, also a Snowplow app id),
    Shopify webhooks and a newsletter form. The server's list looks at the file
    on every request here, so a test needs no wait after changing it."""
    monkeypatch.setattr(suppressions, "RECHECK_SECONDS", 0.0)
    settings = Settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "webhooks.toml").write_text(
        f'[shopify]\nsecret = "{shopify_samples.SECRET}"\n', encoding="utf-8"
    )
    (settings.data_dir / "forms.toml").write_text(FORMS_TOML, encoding="utf-8")
    yield from served(
        settings, SourceRegistry(settings.data_dir).add("web", snowplow_app_ids=[APP_ID])
    )


def suppress(data_dir: Path, *keys: str) -> int:
    return SuppressionList.load(data_dir).add(keys, "req-1")


def unsuppress(data_dir: Path, *keys: str) -> int:
    return SuppressionList.load(data_dir).remove(keys)


def suppressed_total(service: Service) -> float:
    text = httpx.get(f"{service.url}/metrics").text
    found = re.search(r"^cdp_suppressed_events_total (\S+)$", text, re.MULTILINE)
    assert found is not None, text
    return float(found.group(1))


def stored_ids(service: Service) -> list[str]:
    return [row[0] for row in service.stored()]


def person(tag: str) -> list[dict[str, Any]]:
    """The suppressed person: an identify linking the email to a new anonymous id,
    then a track by that anonymous id alone, then a track by email in context."""
    return [
        {
            "type": "identify",
            "messageId": f"{tag}-identify",
            "anonymousId": f"anon-{tag}",
            "traits": {"email": "Hanako@Shop.JP", "first_name": "花子"},
        },
        {"type": "track", "messageId": f"{tag}-track", "anonymousId": f"anon-{tag}", "event": "X"},
        {
            "type": "track",
            "messageId": f"{tag}-ctx",
            "userId": "u-hanako",
            "event": "Y",
            "context": {"traits": {"email": EMAIL}},
        },
    ]


def other(tag: str) -> dict[str, Any]:
    return {"type": "page", "messageId": f"{tag}-other", "anonymousId": "anon-taro"}


def test_collector_drops_a_suppressed_person_and_unsuppress_lets_them_back(door: Service) -> None:
    assert suppress(door.settings.data_dir, KEY) == 1
    with door.client() as client:
        batch = client.post("/v1/batch", json={"batch": [*person("b"), other("b")]})
        single = client.post(
            "/v1/identify", json={"userId": "u-hanako", "traits": {"email": EMAIL}}
        )
        tracked = client.post("/v1/track", json={"userId": "u-taro", "event": "Z"})
    assert [a.status_code for a in (batch, single, tracked)] == [200, 200, 200]
    assert batch.json() == single.json() == {"success": True}
    stored = door.stored()
    assert [(r[0], r[1]) for r in stored][:1] == [("b-other", "page")] and len(stored) == 2
    assert '"u-taro"' in stored[1][5]
    assert not any(EMAIL in r[5] or "anon-b" in r[5] for r in stored)
    assert suppressed_total(door) == 4  # three of the batch, the single identify

    assert unsuppress(door.settings.data_dir, "email:HANAKO@shop.jp") == 1
    with door.client() as client:
        again = client.post("/v1/batch", json={"batch": person("c")})
    assert again.status_code == 200
    assert {"c-identify", "c-track", "c-ctx"} <= set(stored_ids(door))
    assert suppressed_total(door) == 4


def test_bulk_counts_the_suppressed_lines_and_stores_the_rest(door: Service) -> None:
    suppress(door.settings.data_dir, KEY)
    body = b"\n".join(orjson.dumps(e) for e in [*person("k"), other("k")])
    with door.client() as client:
        answer = client.post("/v1/bulk", content=body)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["read"], report["accepted"], report["suppressed"]) == (4, 1, 3)
    assert stored_ids(door) == ["k-other"]
    assert suppressed_total(door) == 3


def test_a_shopify_order_of_a_suppressed_customer_is_acknowledged_not_stored(
    door: Service,
) -> None:
    order = orjson.dumps(shopify_samples.ORDER)
    signed = base64.b64encode(
        hmac.new(shopify_samples.SECRET.encode(), order, hashlib.sha256).digest()
    ).decode()
    headers = {"x-shopify-hmac-sha256": signed, "x-shopify-topic": "orders/create"}
    suppress(door.settings.data_dir, "email:hanako@example.jp")  # the sample's customer
    with httpx.Client(base_url=door.url) as client:
        refused = client.post("/v1/webhooks/shopify", content=order, headers=headers)
        assert refused.status_code == 200, refused.text
        assert door.stored() == []
        assert suppressed_total(door) >= 1
        unsuppress(door.settings.data_dir, "email:hanako@example.jp")
        accepted = client.post("/v1/webhooks/shopify", content=order, headers=headers)
    assert accepted.status_code == 200
    assert door.stored() != []


def test_a_form_post_of_a_suppressed_email_stores_nothing_not_even_its_consent(
    door: Service,
) -> None:
    suppress(door.settings.data_dir, KEY)
    fields = {"email": "hanako@SHOP.jp", "ajs_anonymous_id": "anon-f", "agree_mail": "on"}
    with httpx.Client(base_url=door.url) as client:
        answer = client.post("/v1/forms/newsletter", data=fields)
        assert answer.status_code == 200, answer.text
        assert door.stored() == []
        refused = suppressed_total(door)
        assert refused >= 2  # Form Submitted and identify carry the email
        # The consent event carries only the anonymous id; it came with the email.
        unsuppress(door.settings.data_dir, KEY)
        client.post("/v1/forms/newsletter", data=fields)
    assert len(door.stored()) == refused


def test_snowplow_events_of_a_suppressed_user_id_are_dropped(door: Service) -> None:
    suppress(door.settings.data_dir, "user_id:U-100")

    def page_view(eid: str, **extra: str) -> dict[str, str]:
        return {"e": "pv", "eid": eid, "aid": APP_ID, "url": "https://s.jp/", **extra}

    body = orjson.dumps(
        {
            "schema": PAYLOAD_DATA,
            "data": [page_view("e-1", uid="U-100", duid="d-1"), page_view("e-2", duid="d-2")],
        }
    )
    with httpx.Client(base_url=door.url) as client:
        answer = client.post(
            "/com.snowplowanalytics.snowplow/tp2",
            content=body,
            headers={"content-type": "application/json"},
        )
        pixel = client.get("/i", params={"e": "pv", "aid": APP_ID, "uid": "U-100", "eid": "e-3"})
    assert answer.status_code == 200 and pixel.status_code == 200
    payloads = [orjson.loads(r[5]) for r in door.stored()]
    assert [p.get("anonymousId") for p in payloads] == ["d-2"]
    assert suppressed_total(door) == 2


def test_file_ingest_and_the_cli_report_suppressed(settings: Settings, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps(e) for e in [*person("f"), other("f")]) + b"\n")
    suppress(settings.data_dir, KEY)
    gate = SuppressionGate.load(settings.data_dir)
    with Engine.open(settings) as engine:
        report = ingest(read_items(path), engine, batch_size=1, suppressions=gate)
        ids = [s.event.message_id for b in engine.log.read() for s in b]
    # batch_size=1: the anonymous id refused with the email stays refused in later batches.
    assert (report.read, report.accepted, report.suppressed) == (4, 1, 3)
    assert ids == ["f-other"] and gate.refused == 3

    cli = ["--data-dir", str(settings.data_dir), "--json", "ingest", str(path)]
    again = CliRunner().invoke(cli_app, cli)
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["suppressed"] == 3
    unsuppress(settings.data_dir, KEY)
    after = CliRunner().invoke(cli_app, cli)
    assert json.loads(after.output)["accepted"] == 3


def test_the_list_holds_tokens_only_privately_and_durably(settings: Settings) -> None:
    data_dir = settings.data_dir
    listing = SuppressionList.load(data_dir)
    assert not listing.suppressed([KEY]) and not (data_dir / "privacy").exists()
    assert listing.add(["email:Hanako@Shop.JP", "phone:090-1234-5678"], "req-9") == 2
    assert listing.add([KEY], "req-10") == 0  # already suppressed
    path = data_dir / "privacy" / suppressions.SUPPRESSIONS_FILE
    raw = path.read_bytes()
    assert b"hanako" not in raw.lower() and b"1234" not in raw
    assert files.mode_of(path) == 0o600
    token = files.token(files.pepper(data_dir), KEY)
    assert orjson.loads(raw)["tokens"][token]["request"] == "req-9"
    assert listing.suppressed(["user_id:u-1", "phone:+819012345678"])
    assert SuppressionList.load(data_dir).tokens.keys() == listing.tokens.keys()
    with pytest.raises(ValueError, match="not a usable identifier"):
        listing.add(["email:null"], "req-11")


def test_a_reader_sees_another_process_change_the_list(settings: Settings) -> None:
    reader = SuppressionList.load(settings.data_dir)
    reader.recheck_seconds = 0.0  # look at every call (the server looks once a second)
    assert not reader.suppressed([KEY])
    script = (
        "import sys; from pathlib import Path; "
        "from cdp.services.privacy.suppressions import SuppressionList as S; "
        "S.load(Path(sys.argv[1])).add([sys.argv[2]], 'req-cli')"
    )
    subprocess.run([sys.executable, "-c", script, str(settings.data_dir), KEY], check=True)
    assert reader.suppressed([KEY])
    assert SuppressionList.load(settings.data_dir).remove([KEY]) == 1
    assert not reader.suppressed([KEY])


def test_a_hand_broken_list_keeps_the_last_one_read(settings: Settings) -> None:
    reader = SuppressionList.load(settings.data_dir)
    reader.recheck_seconds = 0.0
    reader.add([KEY], "req-1")
    reader.path.write_text("{not json", encoding="utf-8")
    assert reader.suppressed([KEY])
    with pytest.raises(ValueError, match="not a suppression list"):
        SuppressionList.load(settings.data_dir)
