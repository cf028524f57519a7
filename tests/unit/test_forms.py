"""Form posts: the forms.toml mapping, body parsing, and the events a post becomes."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from cdp.errors import ConfigError, UnmappableError
from cdp.services.collector import RequestRejected
from cdp.services.ingest import to_record
from connectors.sources.forms import (
    FormMapping,
    FormsConfig,
    is_secret_field,
    load_forms,
    parse_body,
    to_events,
)
from schemas import AnyEvent, ConsentUpdated, FormSubmitted, Identify, decode, stamp

RECEIVED = datetime(2026, 1, 21, 3, 4, 5, 678000, tzinfo=UTC)
SEED = "3f2a9c"
URLENCODED = "application/x-www-form-urlencoded"

# The example in the forms module docstring, without the kana.
EXAMPLE_TOML = """
[forms.newsletter]
email = "email"
phone = "tel"
first_name = "first_name"
last_name = "last_name"
anonymous_id = "ajs_anonymous_id"
user_id = "customer_id"
consents = { email = "agree_newsletter", ads = "agree_ads" }
redirect = "https://shop.example.jp/thanks"

[forms.contact]
name = "full_name"
email = "email"
"""

NEWSLETTER = FormMapping(
    email="email",
    phone="tel",
    first_name="first_name",
    last_name="last_name",
    anonymous_id="ajs_anonymous_id",
    user_id="customer_id",
    consents={"email": "agree_newsletter", "ads": "agree_ads"},
)

POST: dict[str, str | list[str]] = {
    "email": "hanako@example.jp",
    "tel": "090-1234-5678",
    "first_name": "花子",
    "last_name": "山田",
    "ajs_anonymous_id": "anon-7f3e",
    "agree_newsletter": "on",
    "comment": "抹茶の新商品を知りたいです",
}


def decoded(raw: dict[str, Any]) -> AnyEvent:
    return decode(stamp(raw, RECEIVED))


def events_of(
    fields: dict[str, str | list[str]], mapping: FormMapping = NEWSLETTER, seed: str = SEED
) -> list[AnyEvent]:
    """to_events, with every raw dict decoded through the contracts (the way ingest does)."""
    return [decoded(raw) for raw in to_events("newsletter", fields, mapping, RECEIVED, seed)]


def rejected(content_type: str, body: bytes) -> RequestRejected:
    with pytest.raises(RequestRejected) as caught:
        parse_body(content_type, body)
    return caught.value


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "forms.toml"
    path.write_text(text, encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_forms(write(tmp_path, text))
    return str(caught.value)


def multipart(
    parts: list[tuple[str, str | bytes]], boundary: str = "----cdpBoundary7MA4YWxk"
) -> bytes:
    """A multipart/form-data body built by hand: ``(headers, value)`` per part."""
    out = b""
    for headers, value in parts:
        data = value.encode() if isinstance(value, str) else value
        out += f"--{boundary}\r\n{headers}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


def field_part(name: str, value: str | bytes) -> tuple[str, str | bytes]:
    return f'Content-Disposition: form-data; name="{name}"', value


MULTIPART = "multipart/form-data; boundary=----cdpBoundary7MA4YWxk"


# --- configuration ------------------------------------------------------------


def test_the_documented_example_loads(tmp_path: Path) -> None:
    config = load_forms(write(tmp_path, EXAMPLE_TOML))
    assert set(config.forms) == {"newsletter", "contact"}
    newsletter = config.mapping_for("newsletter")
    assert newsletter == NEWSLETTER.model_copy(
        update={"redirect": "https://shop.example.jp/thanks"}
    )
    contact = config.mapping_for("contact")
    assert (contact.name, contact.email, contact.anonymous_id) == (
        "full_name",
        "email",
        "anonymous_id",
    )
    assert contact.consents == {} and contact.redirect is None


def test_a_missing_file_means_no_forms(tmp_path: Path) -> None:
    assert load_forms(tmp_path / "forms.toml") == FormsConfig()
    assert load_forms(write(tmp_path, "")).forms == {}


def test_a_form_that_is_not_configured_is_refused(tmp_path: Path) -> None:
    config = load_forms(write(tmp_path, EXAMPLE_TOML))
    with pytest.raises(UnmappableError, match=r"form 'survey' is not configured"):
        config.mapping_for("survey")
    with pytest.raises(UnmappableError, match=r"form 'newsletter' is not configured"):
        FormsConfig().mapping_for("newsletter")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[forms.newsletter]\nemial = "email"\n',
            "forms.toml: forms.newsletter.emial: unknown key",
        ),
        ('[form.newsletter]\nemail = "email"\n', "forms.toml: form: unknown key"),
        ("[forms.newsletter]\nemail = 3\n", "forms.toml: forms.newsletter.email: must be a string"),
        (
            '[forms.newsletter]\nemail = ""\n',
            "forms.newsletter.email: String should have at least 1",
        ),
        (
            '[forms.newsletter]\nconsents = { newsletter = "agree" }\n',
            "forms.toml: forms.newsletter.consents.newsletter: unknown consent purpose; use one of email, sms",
        ),
        (
            "[forms.newsletter]\nconsents = { ads = true }\n",
            "forms.newsletter.consents.ads: must be a string",
        ),
        (
            '[forms.newsletter]\nredirect = "/thanks"\n',
            "forms.newsletter.redirect: must be an absolute http(s) URL, not '/thanks'",
        ),
        (
            '[forms.newsletter]\nredirect = "javascript:alert(1)"\n',
            "forms.newsletter.redirect: must be an absolute http(s) URL",
        ),
        (
            '[forms."news/letter"]\nemail = "email"\n',
            'forms."news/letter": form id must be letters',
        ),
        ('[forms]\nnewsletter = "email"\n', "forms.newsletter: must be a table"),
        (
            '[forms.newsletter]\nemail = "anonymous_id"\n',
            "forms.newsletter: anonymous_id field 'anonymous_id' is also mapped as email",
        ),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path: Path, text: str, expected: str) -> None:
    message = config_error(tmp_path, text)
    assert str(tmp_path / "forms.toml") in message
    assert expected in message


def test_every_config_error_is_reported_at_once(tmp_path: Path) -> None:
    message = config_error(tmp_path, '[forms.a]\nemial = "e"\n[forms.b]\nfone = "t"\n')
    assert "forms.a.emial: unknown key" in message
    assert "forms.b.fone: unknown key" in message


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    assert "forms.toml: not valid TOML" in config_error(tmp_path, "[forms.newsletter\n")


def test_the_config_is_frozen() -> None:
    with pytest.raises(ValidationError):
        NEWSLETTER.email = "mail"  # type: ignore[misc]  # checking that it is refused


# --- urlencoded ---------------------------------------------------------------


def test_urlencoded_fields_repeats_and_blanks() -> None:
    body = b"email=hanako%40example.jp&name=Hanako+Yamada&tag=tea&tag=cups&comment=&flag"
    assert parse_body(URLENCODED, body) == {
        "email": "hanako@example.jp",
        "name": "Hanako Yamada",
        "tag": ["tea", "cups"],
        "comment": "",
        "flag": "",
    }


def test_urlencoded_japanese_is_utf8() -> None:
    body = urlencode({"お名前": "山田 花子", "comment": "抹茶＋ほうじ茶"}).encode()
    assert parse_body(URLENCODED, body) == {"お名前": "山田 花子", "comment": "抹茶＋ほうじ茶"}
    raw = "last_name=山田".encode()  # unescaped UTF-8 from a careless client
    assert parse_body(f"{URLENCODED}; charset=UTF-8", raw) == {"last_name": "山田"}


def test_urlencoded_bad_utf8_names_the_field() -> None:
    body = b"email=a%40b.jp&last_name=" + quote("山田".encode("shift_jis")).encode()
    error = rejected(URLENCODED, body)
    assert error.status == 400
    assert [(p.field, p.reason) for p in error.problems] == [
        (
            "last_name",
            'the value is not valid utf-8 text; send UTF-8 (accept-charset="UTF-8" on the form)',
        )
    ]


def test_urlencoded_honours_a_declared_charset() -> None:
    body = b"last_name=" + quote("山田".encode("shift_jis")).encode()
    assert parse_body(f"{URLENCODED}; charset=Shift_JIS", body) == {"last_name": "山田"}
    assert rejected(f"{URLENCODED}; charset=klingon", body).status == 415


def test_a_field_without_a_name_is_refused() -> None:
    assert "a field has no name" in str(rejected(URLENCODED, b"=x&a=b"))


def test_at_most_a_thousand_fields() -> None:
    body = "&".join(f"f{i}=x" for i in range(1_000)).encode()
    assert len(parse_body(URLENCODED, body)) == 1_000
    assert "more than 1000 form fields" in str(rejected(URLENCODED, body + b"&one=more"))
    parts = multipart([field_part(f"f{i}", "x") for i in range(1_001)])
    assert "more than 1000 form fields" in str(rejected(MULTIPART, parts))


def test_unsupported_content_types_get_415() -> None:
    for content_type in ("text/plain", "", "application/xml; charset=utf-8", "text/ほげ"):
        error = rejected(content_type, b"a=b")
        assert error.status == 415, content_type


def test_content_type_is_case_insensitive_with_parameters() -> None:
    assert parse_body("Application/X-WWW-Form-URLEncoded ; charset=utf-8", b"a=b") == {"a": "b"}


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        st.text(min_size=1, max_size=10),
        st.one_of(st.text(max_size=20), st.lists(st.text(max_size=10), min_size=2, max_size=3)),
        max_size=6,
    )
)
def test_urlencoded_round_trips(fields: dict[str, str | list[str]]) -> None:
    body = urlencode(fields, doseq=True).encode()
    assert parse_body(URLENCODED, body) == fields


# --- multipart ----------------------------------------------------------------


def test_multipart_text_fields_and_japanese() -> None:
    body = multipart(
        [
            field_part("email", "hanako@example.jp"),
            field_part("お名前", "山田 花子"),
            field_part("tag", "tea"),
            field_part("tag", "cups"),
            field_part("comment", "一行目\r\n二行目"),
            field_part("blank", ""),
            (
                'Content-Disposition: form-data; name="note"\r\nContent-Type: text/plain; charset=UTF-8',
                "ok",
            ),
        ]
    )
    assert parse_body(MULTIPART, body) == {
        "email": "hanako@example.jp",
        "お名前": "山田 花子",
        "tag": ["tea", "cups"],
        "comment": "一行目\r\n二行目",
        "blank": "",
        "note": "ok",
    }


@pytest.mark.parametrize(
    "headers",
    [
        'Content-Disposition: form-data; name="resume"; filename="cv.pdf"\r\nContent-Type: application/pdf',
        'Content-Disposition: form-data; name="resume"; filename=""\r\nContent-Type: application/octet-stream',
        "Content-Disposition: form-data; name=\"resume\"; filename*=UTF-8''%E5%B1%A5%E6%AD%B4.pdf",
        'Content-Disposition: form-data; name="resume"\r\nContent-Type: image/png',
    ],
)
def test_multipart_file_parts_are_refused(headers: str) -> None:
    body = multipart([field_part("email", "hanako@example.jp"), (headers, b"%PDF-1.7\x00\xff")])
    error = rejected(MULTIPART, body)
    assert error.status == 400
    [problem] = error.problems
    assert problem.field == "resume"
    assert "file upload" in problem.reason


def test_multipart_bad_utf8_names_the_field() -> None:
    body = multipart([field_part("last_name", "山田".encode("shift_jis"))])
    [problem] = rejected(MULTIPART, body).problems
    assert problem.field == "last_name"
    assert "not valid utf-8" in problem.reason


@pytest.mark.parametrize(
    ("content_type", "body", "reason"),
    [
        ("multipart/form-data", multipart([field_part("a", "b")]), "needs a boundary"),
        (MULTIPART, multipart([field_part("a", "b")])[:-10], "truncated"),
        (MULTIPART, b"not multipart at all", "not valid multipart/form-data"),
        (MULTIPART, multipart([("Content-Disposition: form-data", "b")]), "part 0 has no"),
        (
            MULTIPART,
            multipart(
                [
                    (
                        'Content-Disposition: form-data; name="a"\r\nContent-Transfer-Encoding: base64',
                        "YQ==",
                    )
                ]
            ),
            "Content-Transfer-Encoding 'base64'",
        ),
    ],
)
def test_malformed_multipart_is_a_400(content_type: str, body: bytes, reason: str) -> None:
    error = rejected(content_type, body)
    assert error.status == 400
    assert reason in str(error)


# --- JSON ---------------------------------------------------------------------


def test_json_scalars_and_lists() -> None:
    body = (
        '{"email": "hanako@example.jp", "お名前": "山田", "age": 34, "ratio": 1.5,'
        ' "agree": true, "ads": false, "memo": null, "tags": ["tea", 2]}'
    ).encode()
    assert parse_body("application/json; charset=utf-8", body) == {
        "email": "hanako@example.jp",
        "お名前": "山田",
        "age": "34",
        "ratio": "1.5",
        "agree": "true",
        "ads": "false",
        "memo": "",
        "tags": ["tea", "2"],
    }


def test_json_nested_values_are_refused_naming_each_field() -> None:
    error = rejected(
        "application/json", b'{"address": {"city": "Kyoto"}, "tags": ["a", ["b"]], "ok": "x"}'
    )
    assert [p.field for p in error.problems] == ["address", "tags[1]"]
    assert "nested object is not a form field value" in error.problems[0].reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"{", "not valid JSON"), (b'["a"]', "must be a JSON object"), (b'{"": "x"}', "no name")],
)
def test_malformed_json_is_a_400(body: bytes, reason: str) -> None:
    error = rejected("application/json", body)
    assert error.status == 400
    assert reason in str(error)


# --- mapping ------------------------------------------------------------------


def test_a_post_becomes_form_submitted_identify_and_consent() -> None:
    submitted, identify, consent = events_of(dict(POST))

    assert isinstance(submitted, FormSubmitted)
    assert submitted.message_id == "form-3f2a9c-submitted"
    assert (submitted.user_id, submitted.anonymous_id) == (None, "anon-7f3e")
    assert submitted.timestamp == RECEIVED
    assert submitted.properties.form_id == "newsletter"
    assert submitted.properties.fields == {
        "email": "hanako@example.jp",
        "tel": "090-1234-5678",
        "first_name": "花子",
        "last_name": "山田",
        "agree_newsletter": "on",
        "comment": "抹茶の新商品を知りたいです",
    }
    traits = submitted.context.traits
    assert traits is not None
    assert (traits.email, traits.phone, traits.first_name, traits.last_name) == (
        "hanako@example.jp",
        "090-1234-5678",
        "花子",
        "山田",
    )

    assert isinstance(identify, Identify)
    assert identify.message_id == "form-3f2a9c-identify"
    assert (identify.user_id, identify.anonymous_id) == (None, "anon-7f3e")
    assert identify.traits.model_dump(exclude_none=True) == {
        "email": "hanako@example.jp",
        "phone": "090-1234-5678",
        "first_name": "花子",
        "last_name": "山田",
    }

    assert isinstance(consent, ConsentUpdated)
    assert consent.message_id == "form-3f2a9c-consent"
    assert consent.anonymous_id == "anon-7f3e"
    assert consent.properties.consents == {"email": True, "ads": False}


def test_the_raw_events_are_segment_format() -> None:
    raws = to_events("newsletter", dict(POST), NEWSLETTER, RECEIVED, SEED)
    assert [(r["type"], r.get("event")) for r in raws] == [
        ("track", "Form Submitted"),
        ("identify", None),
        ("track", "Consent Updated"),
    ]
    for raw in raws:
        assert raw["timestamp"] == "2026-01-21T03:04:05.678Z"
        assert raw["anonymousId"] == "anon-7f3e"
        assert "userId" not in raw and "receivedAt" not in raw
    assert raws[0]["schemaVersion"] == raws[2]["schemaVersion"] == 1


def test_the_events_become_records() -> None:
    for raw in to_events("newsletter", dict(POST), NEWSLETTER, RECEIVED, SEED):
        record = to_record(raw, RECEIVED, "web")
        assert record.event.received_at == RECEIVED


def test_a_logged_in_visitor_is_user_and_browser_at_once() -> None:
    for event in events_of({**POST, "customer_id": "c-881"}):
        assert (event.user_id, event.anonymous_id) == ("c-881", "anon-7f3e")
    for event in events_of({**POST, "customer_id": "c-881", "ajs_anonymous_id": ""}):
        assert (event.user_id, event.anonymous_id) == ("c-881", None)


@pytest.mark.parametrize("anonymous_id", [None, "", "  ", "undefined", "null"])
def test_no_identity_is_unmappable_not_invented(anonymous_id: str | None) -> None:
    fields = {k: v for k, v in POST.items() if k != "ajs_anonymous_id"}
    if anonymous_id is not None:
        fields["ajs_anonymous_id"] = anonymous_id
    with pytest.raises(UnmappableError) as caught:
        to_events("newsletter", fields, NEWSLETTER, RECEIVED, SEED)
    message = str(caught.value)
    assert message.startswith("form 'newsletter': form post has no anonymous id or user id")
    assert "add the hidden field 'ajs_anonymous_id'" in message


def test_an_overlong_id_names_the_field() -> None:
    with pytest.raises(UnmappableError, match=r"field 'ajs_anonymous_id' is longer than 200"):
        to_events("newsletter", {**POST, "ajs_anonymous_id": "a" * 201}, NEWSLETTER, RECEIVED, SEED)


@pytest.mark.parametrize(
    ("value", "granted"),
    [
        ("on", True),
        ("true", True),
        ("1", True),
        ("yes", True),
        (" ON ", True),
        ("TRUE", True),
        ("off", False),
        ("false", False),
        ("0", False),
        ("no", False),
        ("", False),
        (["0", "1"], True),  # Rails/Laravel: hidden "0", then the ticked box
        (["0"], False),
    ],
)
def test_checkbox_values(value: str | list[str], granted: bool) -> None:
    consent = events_of({**POST, "agree_newsletter": value})[-1]
    assert isinstance(consent, ConsentUpdated)
    assert consent.properties.consents["email"] is granted


def test_an_absent_checkbox_is_not_granted() -> None:
    fields = {k: v for k, v in POST.items() if k != "agree_newsletter"}
    consent = events_of({**fields, "agree_ads": "on"})[-1]
    assert isinstance(consent, ConsentUpdated)
    assert consent.properties.consents == {"email": False, "ads": True}


def test_an_unreadable_checkbox_value_is_unmappable_not_false() -> None:
    with pytest.raises(
        UnmappableError, match=r"checkbox field 'agree_newsletter' has the value 'agree'"
    ):
        to_events("newsletter", {**POST, "agree_newsletter": "agree"}, NEWSLETTER, RECEIVED, SEED)


def test_a_form_without_consents_has_no_consent_event() -> None:
    mapping = NEWSLETTER.model_copy(update={"consents": {}})
    assert [type(e) for e in events_of(dict(POST), mapping)] == [FormSubmitted, Identify]


def test_a_form_with_no_traits_implies_no_identify() -> None:
    mapping = FormMapping(anonymous_id="ajs_anonymous_id")
    [submitted] = events_of({"ajs_anonymous_id": "anon-7f3e", "question": "送料は?"}, mapping)
    assert isinstance(submitted, FormSubmitted)
    assert submitted.context.traits is None
    assert submitted.properties.fields == {"question": "送料は?"}
    # a blank email is no trait either
    assert (
        len(
            events_of(
                {"ajs_anonymous_id": "a", "email": " "},
                NEWSLETTER.model_copy(update={"consents": {}}),
            )
        )
        == 1
    )


def test_full_name_and_kana_traits() -> None:
    mapping = FormMapping(name="full_name", first_name_kana="sei", last_name_kana="mei")
    _submitted, identify = events_of(
        {"anonymous_id": "anon-1", "full_name": "山田 花子", "sei": "ヤマダ", "mei": "ハナコ"},
        mapping,
    )
    assert isinstance(identify, Identify)
    assert identify.traits.model_dump(exclude_none=True) == {
        "name": "山田 花子",
        "first_name_kana": "ヤマダ",
        "last_name_kana": "ハナコ",
    }


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("email", "hanako@", "field 'email' is not an email address"),
        ("tel", "12", "field 'tel' is not a phone number"),
    ],
)
def test_an_invalid_email_or_phone_names_the_posted_field(
    field: str, value: str, reason: str
) -> None:
    with pytest.raises(UnmappableError) as caught:
        to_events("newsletter", {**POST, field: value}, NEWSLETTER, RECEIVED, SEED)
    assert str(caught.value).startswith(f"form 'newsletter': {reason}")


def test_placeholder_email_is_absent_and_full_width_phone_is_fine() -> None:
    _submitted, identify, _consent = events_of(
        {**POST, "email": "undefined", "tel": "０９０-１２３４-５６７８"}
    )
    assert isinstance(identify, Identify)
    assert identify.traits.email is None
    assert identify.traits.phone == "０９０-１２３４-５６７８"


def test_a_trait_posted_twice_with_different_values_is_ambiguous() -> None:
    with pytest.raises(
        UnmappableError, match=r"field 'email' was posted 2 times with different values"
    ):
        to_events(
            "newsletter", {**POST, "email": ["a@shop.jp", "b@shop.jp"]}, NEWSLETTER, RECEIVED, SEED
        )
    [_, identify, _] = events_of({**POST, "email": ["a@shop.jp", "a@shop.jp "]})
    assert isinstance(identify, Identify)
    assert identify.traits.email == "a@shop.jp"


# --- redaction ----------------------------------------------------------------

SECRET_NAMES = [
    "password",
    "password_confirmation",
    "userPassword",
    "passwd",
    "pwd",
    "card_number",
    "cardNumber",
    "cc-number",
    "cc-exp",
    "cvc",
    "card_cvv2",
    "security_code",
    "pin",
    "csrf_token",
    "authenticity_token",
    "api_key",
    "my_number",
    "パスワード",
    "カード番号",
    "マイナンバー",
]
KEPT_NAMES = [
    "email",
    "shipping",
    "postcard",
    "company",
    "comment",
    "opt_in",
    "first_name",
    "spinach",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_looking_fields_are_flagged(name: str) -> None:
    assert is_secret_field(name)


@pytest.mark.parametrize("name", KEPT_NAMES)
def test_ordinary_fields_are_not_flagged(name: str) -> None:
    assert not is_secret_field(name)


def test_secret_fields_and_the_anonymous_id_are_not_recorded() -> None:
    secrets = dict.fromkeys(SECRET_NAMES, "hunter2")
    submitted = events_of({**POST, **secrets, "shipping": "express"})[0]
    assert isinstance(submitted, FormSubmitted)
    recorded = submitted.properties.fields
    assert not set(recorded) & set(SECRET_NAMES)
    assert "ajs_anonymous_id" not in recorded
    assert recorded["shipping"] == "express"
    raws = to_events("newsletter", {**POST, **secrets}, NEWSLETTER, RECEIVED, SEED)
    assert "hunter2" not in repr(raws)


# --- determinism --------------------------------------------------------------


def test_message_ids_derive_from_the_seed_alone() -> None:
    # The route draws a fresh seed per post (two posts: two submissions); the
    # mapping itself is a pure function of its seed.
    body = urlencode(POST).encode()
    seed = hashlib.sha256(body).hexdigest()[:32]
    first = to_events("newsletter", parse_body(URLENCODED, body), NEWSLETTER, RECEIVED, seed)
    later = datetime(2026, 1, 21, 3, 4, 9, tzinfo=UTC)  # the second click, four seconds on
    again = to_events("newsletter", parse_body(URLENCODED, body), NEWSLETTER, later, seed)
    assert (
        [r["messageId"] for r in first]
        == [r["messageId"] for r in again]
        == [
            f"form-{seed}-submitted",
            f"form-{seed}-identify",
            f"form-{seed}-consent",
        ]
    )
    assert (
        to_events("newsletter", parse_body(URLENCODED, body), NEWSLETTER, RECEIVED, seed) == first
    )
    other = to_events("newsletter", dict(POST), NEWSLETTER, RECEIVED, "other")
    assert not {r["messageId"] for r in other} & {r["messageId"] for r in first}


def test_bad_arguments_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        to_events("newsletter", dict(POST), NEWSLETTER, datetime(2026, 1, 1), SEED)
    for seed in ("", "x" * 186):
        with pytest.raises(ValueError, match="message_seed"):
            to_events("newsletter", dict(POST), NEWSLETTER, RECEIVED, seed)
    assert to_events("newsletter", dict(POST), NEWSLETTER, RECEIVED, "x" * 185)


@settings(max_examples=200, deadline=None)
@given(
    extra=st.dictionaries(
        st.text(min_size=1, max_size=12),
        st.one_of(st.text(max_size=30), st.lists(st.text(max_size=10), max_size=3)),
        max_size=6,
    ),
    email=st.sampled_from(["hanako@example.jp", "", "undefined", "not-an-email"]),
    checkbox=st.sampled_from(["on", "", "off", "maybe", None]),
)
def test_every_post_either_decodes_or_is_unmappable(
    extra: dict[str, str | list[str]], email: str, checkbox: str | None
) -> None:
    fields: dict[str, str | list[str]] = {**extra, "ajs_anonymous_id": "anon-1", "email": email}
    if checkbox is not None:
        fields["agree_ads"] = checkbox
    try:
        raws = to_events("newsletter", fields, NEWSLETTER, RECEIVED, SEED)
    except UnmappableError as error:
        assert str(error).startswith("form 'newsletter': ")
        return
    for raw in raws:
        decoded(raw)
