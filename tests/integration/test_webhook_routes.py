"""Webhook routes over real HTTP: signatures refused or accepted, events stored,
unmappable input dead-lettered and acknowledged. Payloads are the ones the
mapping unit tests model on each platform's documented samples."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from cdp.config import Settings
from cdp.errors import ConfigError
from cdp.services import deadletters, webhook_settings
from cdp.services.sources import SourceRegistry
from tests.integration.test_collector import Service, served
from tests.unit import test_webhooks_line as line_samples
from tests.unit import test_webhooks_meta as meta_samples
from tests.unit import test_webhooks_orders as order_samples
from tests.unit import test_webhooks_shopify as shopify_samples

pytestmark = pytest.mark.integration
X_SECRET = "x-consumer-secret-for-tests"


@pytest.fixture
def hooks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Service]:
    settings = Settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    monkeypatch.setenv("TEST_LINE_SECRET", line_samples.SECRET)
    (settings.data_dir / "webhooks.toml").write_text(
        f'[shopify]\nsecret = "{shopify_samples.SECRET}"\n'
        '[line]\nchannel_secret = "env:TEST_LINE_SECRET"\n'
        f'[meta]\napp_secret = "{meta_samples.APP_SECRET}"\nverify_token = "meatyhamhock"\n'
        f'[x]\nconsumer_secret = "{X_SECRET}"\n',
        encoding="utf-8",
    )
    yield from served(settings, SourceRegistry(settings.data_dir).add("erp"))


def b64_hmac(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def letters(service: Service) -> list[deadletters.DeadLetter]:
    return service.engine_call(lambda e: deadletters.select(e.con))  # type: ignore[no-any-return]


def test_line_signed_events_are_stored_and_forgeries_refused(hooks: Service) -> None:
    body = orjson.dumps(
        line_samples.body(line_samples.FOLLOW, line_samples.TEXT, line_samples.GROUP_ONLY)
    )
    with httpx.Client(base_url=hooks.url) as client:
        forged = client.post(
            "/v1/webhooks/line", content=body, headers={"x-line-signature": b64_hmac("wrong", body)}
        )
        assert forged.status_code == 401
        signed = client.post(
            "/v1/webhooks/line",
            content=body,
            headers={"x-line-signature": b64_hmac(line_samples.SECRET, body)},
        )
    assert signed.status_code == 200
    assert signed.json() == {"success": True, "events": 2, "dead_lettered": 1}
    rows = hooks.stored()
    assert sorted(orjson.loads(r[5])["event"] for r in rows) == [
        "Consent Updated",
        "Message Received",
    ]
    assert {r[2] for r in rows} == {"line"}
    assert [d.endpoint for d in letters(hooks)] == ["webhook:line"]


def test_shopify_orders_and_unmappable_topics(hooks: Service) -> None:
    order = orjson.dumps(shopify_samples.ORDER)
    sign = {"x-shopify-hmac-sha256": b64_hmac(shopify_samples.SECRET, order)}
    with httpx.Client(base_url=hooks.url) as client:
        created = client.post(
            "/v1/webhooks/shopify",
            content=order,
            headers={**sign, "x-shopify-topic": "orders/create"},
        )
        paid = client.post(
            "/v1/webhooks/shopify",
            content=order,
            headers={**sign, "x-shopify-topic": "orders/paid"},
        )
        odd = client.post(
            "/v1/webhooks/shopify",
            content=order,
            headers={**sign, "x-shopify-topic": "products/update"},
        )
        unsigned = client.post(
            "/v1/webhooks/shopify", content=order, headers={"x-shopify-topic": "orders/create"}
        )
    assert created.status_code == paid.status_code == odd.status_code == 200
    assert unsigned.status_code == 401
    assert odd.json()["dead_lettered"] == 1
    assert [r[1] for r in hooks.stored()] == ["track"]  # create + paid: one order
    assert [d.endpoint for d in letters(hooks)] == ["webhook:shopify:products/update"]


def test_meta_challenge_and_signed_instagram_message(hooks: Service) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": "meatyhamhock",
    }
    body = orjson.dumps(meta_samples.body(meta_samples.TEXT))
    digest = hmac.new(meta_samples.APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    with httpx.Client(base_url=hooks.url) as client:
        challenge = client.get("/v1/webhooks/meta", params=params)
        assert challenge.status_code == 200 and challenge.text == "1158201444"
        wrong = client.get("/v1/webhooks/meta", params={**params, "hub.verify_token": "x"})
        assert wrong.status_code == 403
        posted = client.post(
            "/v1/webhooks/meta", content=body, headers={"x-hub-signature-256": f"sha256={digest}"}
        )
    assert posted.status_code == 200 and posted.json()["events"] == 1


def test_x_crc_and_signed_direct_message(hooks: Service) -> None:
    payload = {
        "for_user_id": "3001",
        "direct_message_events": [
            {
                "type": "message_create",
                "id": "1700000000000000001",
                "created_timestamp": "1768446000000",
                "message_create": {
                    "sender_id": "4002",
                    "target": {"recipient_id": "3001"},
                    "message_data": {"text": "在庫はありますか？"},
                },
            }
        ],
    }
    body = orjson.dumps(payload)
    with httpx.Client(base_url=hooks.url) as client:
        crc = client.get("/v1/webhooks/x", params={"crc_token": "challenge_string"})
        assert crc.json() == {"response_token": "sha256=" + b64_hmac(X_SECRET, b"challenge_string")}
        posted = client.post(
            "/v1/webhooks/x",
            content=body,
            headers={"x-twitter-webhooks-signature": "sha256=" + b64_hmac(X_SECRET, body)},
        )
    assert posted.status_code == 200 and posted.json()["events"] == 1


def test_generic_orders_need_a_write_key(hooks: Service) -> None:
    body = orjson.dumps(order_samples.ORDER)
    with httpx.Client(base_url=hooks.url) as client:
        assert client.post("/v1/webhooks/orders", content=body).status_code == 401
    with hooks.client() as client:
        answer = client.post("/v1/webhooks/orders", content=body)
    assert answer.status_code == 200 and answer.json()["events"] >= 1
    assert {r[2] for r in hooks.stored()} == {"erp"}


def test_unconfigured_platforms_are_404(tmp_path: Path) -> None:
    for service in served(Settings(tmp_path / "data")):
        with httpx.Client(base_url=service.url) as client:
            answer = client.post("/v1/webhooks/line", content=b"{}")
            assert answer.status_code == 404
            assert "not configured" in answer.json()["error"]


def test_a_broken_settings_file_names_the_key(tmp_path: Path) -> None:
    (tmp_path / "webhooks.toml").write_text('[line]\nchanel_secret = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line.chanel_secret: Extra inputs are not permitted"):
        webhook_settings.load(tmp_path)
    (tmp_path / "webhooks.toml").write_text('[x]\nconsumer_secret = "env:NOPE_NOT_SET"\n')
    with pytest.raises(ConfigError, match="NOPE_NOT_SET is not set"):
        webhook_settings.load(tmp_path)


FORMS_TOML = """
[forms.newsletter]
email = "email"
last_name = "sei"
first_name = "mei"
anonymous_id = "ajs_anonymous_id"
consents = { email = "agree_mail", ads = "agree_ads" }
redirect = "https://shop.example.jp/thanks"

[forms.contact]
email = "email"
"""


@pytest.fixture
def forms_service(tmp_path: Path) -> Iterator[Service]:
    settings = Settings(tmp_path / "data")
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "forms.toml").write_text(FORMS_TOML, encoding="utf-8")
    yield from served(settings)


def test_an_html_form_post_becomes_form_identify_and_consent(forms_service: Service) -> None:
    fields = {
        "email": "Hanako@Example.jp",
        "sei": "山田",
        "mei": "花子",
        "ajs_anonymous_id": "anon-42",
        "agree_mail": "on",
        "password": "hunter2",
    }
    with httpx.Client(base_url=forms_service.url) as client:
        answer = client.post("/v1/forms/newsletter", data=fields, follow_redirects=False)
        again = client.post("/v1/forms/newsletter", data=fields, follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "https://shop.example.jp/thanks"
    assert again.status_code == 303
    rows = forms_service.stored()
    # Two posts are two submissions (each message gets its own id, as in Segment).
    assert len(rows) == 6 and len({r[0] for r in rows}) == 6
    payloads = {orjson.loads(r[5]).get("event") or r[1]: orjson.loads(r[5]) for r in rows}
    assert set(payloads) == {"Form Submitted", "identify", "Consent Updated"}
    assert payloads["identify"]["anonymousId"] == "anon-42"
    assert payloads["identify"]["traits"]["last_name"] == "山田"
    assert payloads["Consent Updated"]["properties"]["consents"] == {"email": True, "ads": False}
    assert "password" not in payloads["Form Submitted"]["properties"]["fields"]
    assert {r[2] for r in rows} == {"form:newsletter"}


def test_form_errors_are_named_and_dead_lettered(forms_service: Service) -> None:
    with httpx.Client(base_url=forms_service.url) as client:
        unknown = client.post("/v1/forms/nope", data={"email": "a@b.jp"})
        assert unknown.status_code == 404
        no_identity = client.post("/v1/forms/contact", json={"email": "a@shop.jp"})
        assert no_identity.status_code == 400 and "anonymous" in no_identity.json()["error"]
        upload = client.post(
            "/v1/forms/contact", files={"cv": ("cv.pdf", b"%PDF")}, data={"anonymous_id": "a-1"}
        )
        assert upload.status_code == 400
    assert forms_service.stored() == []
    assert [d.endpoint for d in letters(forms_service)] == ["form:contact", "form:contact"]
