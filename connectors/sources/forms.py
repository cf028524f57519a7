"""HTML form posts → Form Submitted, the identify it implies, and Consent Updated.

A shop's own forms (newsletter sign-up, contact, catalogue request) post to
``/v1/forms/{form_id}``. The HTTP route owns the I/O; this module is pure
apart from reading the configuration file:

- ``load_forms(path)`` reads the per-form field mapping from
  ``<data dir>/forms.toml`` (``FormsConfig`` of ``FormMapping``);
- ``parse_body(content_type, body)`` turns an urlencoded, multipart or JSON
  body into ``{field: value}`` (a repeated field becomes a list);
- ``to_events(form_id, fields, mapping, received_at, message_seed)`` maps the
  fields to raw Segment-format events for ``cdp.ingest.to_record``.

The configuration::

    [forms.newsletter]
    email = "email"                     # the posted field holding the email
    phone = "tel"
    first_name = "first_name"           # and/or name = "full_name"
    last_name = "last_name"
    first_name_kana = "sei_kana"        # optional furigana fields
    last_name_kana = "mei_kana"
    anonymous_id = "ajs_anonymous_id"   # hidden field; default "anonymous_id"
    user_id = "customer_id"             # optional: the shop's own customer id
    consents = { email = "agree_newsletter", ads = "agree_ads" }
    redirect = "https://shop.example.jp/thanks"   # optional, see FormMapping

Every key is checked: a typo is a ``ConfigError`` naming the file and the key
path (``forms.toml: forms.newsletter.emial: unknown key``). A missing file
means no form is configured, and a post to a form that is not configured is
refused (``FormsConfig.mapping_for`` raises ``UnmappableError``) so that junk
posts to made-up form ids are dead-lettered, not stored as customer data.

Errors: ``parse_body`` raises ``cdp.collector.RequestRejected`` (the client
sent something malformed: HTTP 400, or 415 for an unsupported content type,
naming the field); ``to_events`` raises ``cdp.errors.UnmappableError`` when a
well-formed post cannot become events (no identity, an invalid email or
phone, an unreadable checkbox); its message names the form and the posted
field, and the route dead-letters the post with it.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Final, get_args
from urllib.parse import unquote_to_bytes, urlsplit

import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

from cdp.collector import Problem, RequestRejected
from cdp.errors import ConfigError, UnmappableError
from schemas.crm import ConsentPurpose
from schemas.envelope import MAX_ID_LENGTH
from schemas.identifiers import JUNK_VALUES, looks_like_email, normalise_phone

Fields = dict[str, str | list[str]]
"""Posted form fields: one value, or a list when the field was posted more than once."""

RawEvent = dict[str, Any]
"""A raw Segment-format event dict, before ``schemas.stamp``."""

# --- configuration ------------------------------------------------------------

FORM_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,99}$"
"""Form ids appear in the URL path and in key paths: a slug, no dots or slashes."""

FieldName = Annotated[str, Field(min_length=1, max_length=200)]
FormId = Annotated[str, Field(pattern=FORM_ID_PATTERN)]
CONSENT_PURPOSES: Final[tuple[str, ...]] = get_args(ConsentPurpose)
TRAIT_KEYS: Final = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "first_name_kana",
    "last_name_kana",
    "name",
)
"""Mapping keys that name a posted field holding a trait of the same name."""


class FormMapping(BaseModel):
    """Which posted field means what, for one form (``[forms.<form_id>]``).

    Every key names a posted field. ``email``, ``phone`` and the name keys
    become traits (``name`` is a full name in one field; it may be used with or
    instead of ``first_name``/``last_name``). ``anonymous_id`` is the hidden
    field the page fills with the browser's Segment ``anonymousId``;
    ``user_id`` the shop's own customer id when the visitor is logged in.
    ``consents`` maps a consent purpose (email, sms, line, ads, analytics,
    phone) to the checkbox field that grants it. ``redirect`` (an absolute
    http(s) URL) is where the route answers ``303 See Other`` for HTML form
    posts (urlencoded or multipart); JSON posts, and forms without a
    ``redirect``, get the JSON answer.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    email: FieldName | None = None
    phone: FieldName | None = None
    first_name: FieldName | None = None
    last_name: FieldName | None = None
    first_name_kana: FieldName | None = None
    last_name_kana: FieldName | None = None
    name: FieldName | None = None
    anonymous_id: FieldName = "anonymous_id"
    user_id: FieldName | None = None
    consents: Mapping[ConsentPurpose, FieldName] = Field(default_factory=dict)
    redirect: str | None = None

    @field_validator("redirect")
    @classmethod
    def _absolute_http_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"must be an absolute http(s) URL, not {value!r}")
        return value

    @model_validator(mode="after")
    def _anonymous_id_field_is_its_own(self) -> FormMapping:
        # The hidden field is left out of the recorded fields and its value
        # becomes an identity: it must not double as a visible field.
        for key, posted in self.mapped_fields().items():
            if key != "anonymous_id" and posted == self.anonymous_id:
                raise ValueError(
                    f"anonymous_id field {posted!r} is also mapped as {key}; "
                    "the browser's anonymous id needs a hidden field of its own"
                )
        return self

    def trait_fields(self) -> dict[str, str]:
        """Trait name → posted field name, for the traits this form maps."""
        mapped = {key: getattr(self, key) for key in TRAIT_KEYS}
        return {key: posted for key, posted in mapped.items() if posted is not None}

    def mapped_fields(self) -> dict[str, str]:
        """Mapping key (``email``, ``consents.ads``, ...) → posted field name."""
        out = self.trait_fields()
        out["anonymous_id"] = self.anonymous_id
        if self.user_id is not None:
            out["user_id"] = self.user_id
        out.update({f"consents.{purpose}": posted for purpose, posted in self.consents.items()})
        return out


class FormsConfig(BaseModel):
    """Every configured form (``forms.toml``), by form id."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    forms: Mapping[FormId, FormMapping] = Field(default_factory=dict)

    def mapping_for(self, form_id: str) -> FormMapping:
        """The mapping of ``form_id``; ``UnmappableError`` if it is not configured.

        Refusing (rather than recording the post as an unmapped Form Submitted)
        keeps spam to made-up form ids out of customer data; the route
        dead-letters the post, and after the form is configured ``cdp
        deadletter retry`` brings it in.
        """
        mapping = self.forms.get(form_id)
        if mapping is None:
            raise UnmappableError(
                f"form {form_id!r} is not configured: add [forms.{form_id}] to forms.toml"
            )
        return mapping


def load_forms(path: Path) -> FormsConfig:
    """The forms configured in ``path``; an empty config if the file does not exist.

    ``ConfigError`` names the file and each offending key path.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return FormsConfig()
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    try:
        return FormsConfig.model_validate(data)
    except ValidationError as error:
        detail = "; ".join(_config_problem(problem) for problem in error.errors())
        raise ConfigError(f"{path}: {detail}") from None


def _config_problem(error: ErrorDetails) -> str:
    loc = [str(part) for part in error["loc"]]
    if loc and loc[-1] == "[key]":  # the key of a table, not its value, is wrong
        loc.pop()
        if len(loc) == 2 and loc[0] == "forms":
            reason = "form id must be letters, digits, '-' or '_' (at most 100)"
        else:
            reason = f"unknown consent purpose; use one of {', '.join(CONSENT_PURPOSES)}"
    elif error["type"] == "extra_forbidden":
        reason = "unknown key"
    elif error["type"] == "string_type":
        reason = "must be a string (the name of a posted field)"
    elif error["type"] in ("model_type", "dict_type", "mapping_type"):
        reason = "must be a table"
    else:
        reason = error["msg"].removeprefix("Value error, ")
    return f"{'.'.join(_toml_key(part) for part in loc) or '<file>'}: {reason}"


def _toml_key(part: str) -> str:
    # Written as in the file, so that forms."a.b" is not read as three keys.
    return part if re.fullmatch(r"[A-Za-z0-9_-]+", part) else orjson.dumps(part).decode()


# --- request bodies -----------------------------------------------------------

MAX_FIELDS: Final = 1_000
URLENCODED: Final = "application/x-www-form-urlencoded"
MULTIPART: Final = "multipart/form-data"
JSON: Final = "application/json"
_ALLOWED_TRANSFER_ENCODINGS: Final = (b"7bit", b"8bit", b"binary")
_FILENAME_PARAM: Final = re.compile(rb";\s*filename\*?\s*=", re.IGNORECASE)


def parse_body(content_type: str, body: bytes) -> Fields:
    """The posted fields of a form body; ``RequestRejected`` naming the field if malformed.

    - ``application/x-www-form-urlencoded``: ``+`` and ``%XX`` decoded, blank
      values kept; text is UTF-8 unless the Content-Type gives a ``charset``
      (a Shift_JIS site may say so). Bytes that do not decode are an error
      naming the field, never replaced with mojibake.
    - ``multipart/form-data``: text parts only. A file part (any ``filename``
      parameter, or a part whose Content-Type is not text/plain) is refused:
      a CDP must not receive uploads, and customer files are no profile data.
    - ``application/json``: an object of strings, numbers, booleans, nulls or
      lists of them; numbers become their JSON text, booleans ``"true"`` /
      ``"false"``, null ``""``. A nested object is an error naming its field.

    A field posted more than once becomes a list in posting order. At most
    ``MAX_FIELDS`` fields; the route bounds the body size.
    """
    if not content_type.isascii():
        raise RequestRejected([Problem(None, "", "the Content-Type header is not ASCII")], 415)
    media, params = parse_options_header(content_type)
    media_type = media.decode("latin-1")
    charset = params.get(b"charset", b"utf-8").decode("latin-1")
    if media_type == URLENCODED:
        pairs = _urlencoded(body, _codec(charset))
    elif media_type == MULTIPART:
        pairs = _multipart(body, params.get(b"boundary"))
    elif media_type == JSON:
        return _json(body)
    else:
        shown = media_type or "(none)"
        raise RequestRejected(
            [
                Problem(
                    None,
                    "",
                    f"Content-Type {shown} is not supported; use {URLENCODED}, {MULTIPART} or {JSON}",
                )
            ],
            415,
        )
    return _collect(pairs)


def _codec(charset: str) -> str:
    try:
        return codecs.lookup(charset).name
    except LookupError:
        raise RequestRejected(
            [Problem(None, "", f"charset {charset!r} is not supported; send UTF-8")], 415
        ) from None


def _decode(data: bytes, codec: str, name: str | None) -> str:
    """``data`` as text; ``RequestRejected`` naming the field (or its name) if it does not decode."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        if name is None:
            shown = data.decode(codec, errors="replace")
            where, what = shown, "the field name"
        else:
            where, what = name, "the value"
        raise RequestRejected(
            [
                Problem(
                    None,
                    where,
                    f"{what} is not valid {codec} text; send UTF-8 "
                    '(accept-charset="UTF-8" on the form)',
                )
            ]
        ) from None


def _too_many() -> RequestRejected:
    return RequestRejected([Problem(None, "", f"more than {MAX_FIELDS} form fields")])


def _urlencoded(body: bytes, codec: str) -> list[tuple[str, str]]:
    # By hand rather than parse_qs: it decodes with one encoding for the whole
    # body, so an undecodable byte could not be reported with its field name.
    pairs: list[tuple[str, str]] = []
    for piece in body.split(b"&"):
        if not piece:
            continue
        if len(pairs) == MAX_FIELDS:
            raise _too_many()
        raw_name, _, raw_value = piece.partition(b"=")
        name = _decode(unquote_to_bytes(raw_name.replace(b"+", b" ")), codec, None)
        value = _decode(unquote_to_bytes(raw_value.replace(b"+", b" ")), codec, name)
        pairs.append((name, value))
    return pairs


@dataclass(slots=True)
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    data: list[bytes] = field(default_factory=list)


def _multipart(body: bytes, boundary: bytes | None) -> list[tuple[str, str]]:
    if not boundary:
        raise RequestRejected([Problem(None, "", f"{MULTIPART} needs a boundary parameter")])
    parts: list[_Part] = []
    header_name: list[bytes] = []
    header_value: list[bytes] = []

    def on_part_begin() -> None:
        if len(parts) == MAX_FIELDS:
            raise _too_many()
        parts.append(_Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.append(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.append(data[start:end])

    def on_header_end() -> None:
        parts[-1].headers[b"".join(header_name).strip().lower()] = b"".join(header_value)
        header_name.clear()
        header_value.clear()

    def on_part_data(data: bytes, start: int, end: int) -> None:
        parts[-1].data.append(data[start:end])

    try:
        parser = MultipartParser(
            boundary,
            {
                "on_part_begin": on_part_begin,
                "on_header_field": on_header_field,
                "on_header_value": on_header_value,
                "on_header_end": on_header_end,
                "on_part_data": on_part_data,
            },
        )
        parser.write(body)
    except FormParserError as error:
        raise RequestRejected(
            [Problem(None, "", f"body is not valid {MULTIPART} ({error})")]
        ) from None
    if parser.state != MultipartState.END:
        raise RequestRejected(
            [Problem(None, "", f"{MULTIPART} body is truncated: no closing boundary")]
        )
    return [_part_field(part, index) for index, part in enumerate(parts)]


def _part_field(part: _Part, index: int) -> tuple[str, str]:
    disposition = part.headers.get(b"content-disposition", b"")
    kind, options = parse_options_header(disposition)
    raw_name = options.get(b"name")
    if kind != b"form-data" or not raw_name:
        raise RequestRejected(
            [Problem(None, "", f"part {index} has no Content-Disposition: form-data name")]
        )
    name = _decode(raw_name, "utf-8", None)
    media, params = parse_options_header(part.headers.get(b"content-type"))
    if _FILENAME_PARAM.search(disposition) or media not in (b"", b"text/plain"):
        raise RequestRejected(
            [
                Problem(
                    None,
                    name,
                    "is a file upload; forms may post text fields only "
                    "(remove the file input from the form)",
                )
            ]
        )
    encoding = part.headers.get(b"content-transfer-encoding", b"binary").strip().lower()
    if encoding not in _ALLOWED_TRANSFER_ENCODINGS:
        raise RequestRejected(
            [
                Problem(
                    None, name, f"Content-Transfer-Encoding {encoding.decode()!r} is not supported"
                )
            ]
        )
    codec = _codec(params.get(b"charset", b"utf-8").decode("latin-1"))
    return name, _decode(b"".join(part.data), codec, name)


def _json(body: bytes) -> Fields:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise RequestRejected([Problem(None, "", f"body is not valid JSON ({error})")]) from None
    if not isinstance(document, dict):
        raise RequestRejected([Problem(None, "", "body must be a JSON object of form fields")])
    if len(document) > MAX_FIELDS:
        raise _too_many()
    out: Fields = {}
    problems: list[Problem] = []
    for name, value in document.items():
        if not name:
            problems.append(Problem(None, "", "a field has no name"))
        elif isinstance(value, list):
            out[name] = [
                _json_scalar(item, f"{name}[{i}]", problems) for i, item in enumerate(value)
            ]
        else:
            out[name] = _json_scalar(value, name, problems)
    if problems:
        raise RequestRejected(problems)
    return out


def _json_scalar(value: Any, where: str, problems: list[Problem]) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return orjson.dumps(value).decode()
    problems.append(
        Problem(
            None,
            where,
            f"a {'list' if isinstance(value, list) else 'nested object'} is not a form field "
            "value; send strings, numbers, booleans or lists of them",
        )
    )
    return ""


def _collect(pairs: list[tuple[str, str]]) -> Fields:
    out: Fields = {}
    for name, value in pairs:
        if not name:
            raise RequestRejected([Problem(None, "", "a field has no name")])
        seen = out.get(name)
        if seen is None:
            out[name] = value
        elif isinstance(seen, list):
            seen.append(value)
        else:
            out[name] = [seen, value]
    return out


# --- mapping ------------------------------------------------------------------

CHECKED: Final = frozenset({"on", "true", "1", "yes"})
UNCHECKED: Final = frozenset({"", "off", "false", "0", "no"})
MAX_SEED_LENGTH: Final = MAX_ID_LENGTH - len("form--submitted")

WRITTEN_VERSIONS: Final[dict[str, int]] = {"Form Submitted": 1, "Consent Updated": 1}
"""Contract version of the shape written here, so a later version upcasts these events."""

SECRET_WORDS: Final = frozenset(
    {"pass", "pwd", "pin", "card", "cc", "ccv", "csc", "cvc", "cvv", "cvv2", "ssn", "otp", "iban"}
)
SECRET_PARTS: Final = (
    "password",
    "passwd",
    "passphrase",
    "passcode",
    "secret",
    "token",
    "creditcard",
    "cardnumber",
    "cardno",
    "securitycode",
    "cvc",
    "cvv",
    "mynumber",
    "apikey",
    "privatekey",
    "accountnumber",
    "パスワード",
    "暗証番号",
    "カード番号",
    "セキュリティコード",
    "マイナンバー",
    "個人番号",
    "口座番号",
)
_WORDS: Final = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])|[^\W_]+")


def is_secret_field(name: str) -> bool:
    """True when a field's name suggests a secret; such fields are never recorded.

    A word of the name (split at punctuation and camelCase) is a secret word
    (``pin``, ``card``, ``cvc``, ``cc``...), or the name without separators
    contains a secret part (``password``, ``token``, ``cardnumber``,
    ``mynumber``, ``パスワード``, ``カード番号``...). Whole words for the short
    ones, so ``shipping``, ``postcard`` and ``company`` are kept. When in
    doubt a field is dropped: a CDP must not hold passwords, card data or
    Japan's My Number, and a stray form field is no loss.
    """
    squashed = re.sub(r"[\W_]+", "", name).lower()
    if any(part in squashed for part in SECRET_PARTS):
        return True
    return any(word.lower() in SECRET_WORDS for word in _WORDS.findall(name))


def to_events(
    form_id: str,
    fields: Mapping[str, str | list[str]],
    mapping: FormMapping,
    received_at: datetime,
    message_seed: str,
) -> list[RawEvent]:
    """Raw events for one form post: Form Submitted, identify, Consent Updated.

    - **Form Submitted** (``form-{seed}-submitted``): ``form_id`` and the
      posted ``fields`` except the hidden anonymous-id field (it is identity,
      not an answer) and every field ``is_secret_field`` flags (left out
      entirely, not masked). ``context.traits`` carries the mapped traits so
      identity links the submission to the person.
    - **identify** (``form-{seed}-identify``): the mapped traits (email, phone,
      first_name, last_name, the kana and ``name``). Left out when the form
      maps no trait and there is no user id to tie to the anonymous id: it
      would say nothing.
    - **Consent Updated** (``form-{seed}-consent``), when the form maps
      consent checkboxes: every mapped purpose gets a value. A checkbox is
      granted when its value is ``on`` (the browser default), ``true``, ``1``
      or ``yes``; it is *not granted* (false) when it is ``off``/``false``/
      ``0``/``no``/blank **or absent**, because a browser posts nothing for an
      unchecked box. So map only checkboxes the form always shows: the post
      withdraws every mapped purpose it does not tick. A field posted twice
      (a hidden "0" before the checkbox, the Rails/Laravel idiom) is read by
      its last value. Any other value is an error, not a silent "false".

    Identity: ``userId`` is the mapped user-id field and ``anonymousId`` the
    hidden field; both are set when both were posted (that is what links the
    browser's history to the customer). Blank or placeholder values
    (``undefined``, ``null``...: the page's script did not run) count as
    absent. With neither, ``UnmappableError``: identity is never invented from
    the email or the request, because a made-up id would either split the
    person from their browsing history or, shared between posts, merge
    strangers.

    An email or phone that the trait contract would refuse is an
    ``UnmappableError`` naming the posted field (rather than a validation
    error on ``context.traits.email``, which the shop cannot relate to its
    form); so is a mapped field posted several times with different values.

    ``messageId``s derive from ``message_seed`` (e.g. a hash of the raw body),
    so a double-submitted form is stored once. All events are timestamped
    ``received_at`` (a form has no client clock worth trusting).
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    if not message_seed or len(message_seed) > MAX_SEED_LENGTH:
        raise ValueError(f"message_seed must be 1 to {MAX_SEED_LENGTH} characters")
    where = f"form {form_id!r}"
    user_id = _identity(fields, mapping.user_id, where)
    anonymous_id = _identity(fields, mapping.anonymous_id, where)
    if user_id is None and anonymous_id is None:
        raise UnmappableError(
            f"{where}: form post has no anonymous id or user id: add the hidden field "
            f"{mapping.anonymous_id!r} filled with the browser's anonymousId "
            "(analytics.user().anonymousId())"
        )
    traits = _traits(fields, mapping, where)
    envelope: RawEvent = {"timestamp": _iso(received_at)}
    if user_id is not None:
        envelope["userId"] = user_id
    if anonymous_id is not None:
        envelope["anonymousId"] = anonymous_id

    recorded = {
        name: list(value) if isinstance(value, list) else value
        for name, value in fields.items()
        if name != mapping.anonymous_id and not is_secret_field(name)
    }
    submitted = _track(
        "Form Submitted",
        f"form-{message_seed}-submitted",
        envelope,
        {"form_id": form_id, "fields": recorded},
    )
    if traits:
        submitted["context"] = {"traits": dict(traits)}
    events = [submitted]
    if traits or (user_id is not None and anonymous_id is not None):
        events.append(
            {
                "type": "identify",
                "messageId": f"form-{message_seed}-identify",
                **envelope,
                "traits": traits,
            }
        )
    if mapping.consents:
        consents = {
            purpose: _checked(fields.get(posted), posted, where)
            for purpose, posted in mapping.consents.items()
        }
        events.append(
            _track(
                "Consent Updated",
                f"form-{message_seed}-consent",
                envelope,
                {"consents": consents},
            )
        )
    return events


def _iso(moment: datetime) -> str:
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _track(event: str, message_id: str, envelope: RawEvent, properties: RawEvent) -> RawEvent:
    return {
        "type": "track",
        "event": event,
        "messageId": message_id,
        **envelope,
        "properties": properties,
        "schemaVersion": WRITTEN_VERSIONS[event],
    }


def _single(fields: Mapping[str, str | list[str]], posted: str, where: str) -> str | None:
    """The one trimmed, non-blank value of a posted field, or ``None`` if absent or blank."""
    value = fields.get(posted)
    if isinstance(value, list):
        distinct = {item.strip() for item in value} - {""}
        if len(distinct) > 1:
            raise UnmappableError(
                f"{where}: field {posted!r} was posted {len(value)} times with different "
                "values; expected one"
            )
        return distinct.pop() if distinct else None
    if value is None or not value.strip():
        return None
    return value.strip()


def _identity(fields: Mapping[str, str | list[str]], posted: str | None, where: str) -> str | None:
    value = None if posted is None else _single(fields, posted, where)
    if value is None or value.lower() in JUNK_VALUES:
        return None
    if len(value) > MAX_ID_LENGTH:
        raise UnmappableError(
            f"{where}: field {posted!r} is longer than {MAX_ID_LENGTH} characters; it is not an id"
        )
    return value


def _traits(fields: Mapping[str, str | list[str]], mapping: FormMapping, where: str) -> RawEvent:
    traits: RawEvent = {}
    for trait, posted in mapping.trait_fields().items():
        value = _single(fields, posted, where)
        if value is None:
            continue
        if trait in ("email", "phone") and value.lower() in JUNK_VALUES:
            continue  # a placeholder, not a wrong value: the contract drops it too
        if trait == "email" and not looks_like_email(value):
            raise UnmappableError(f"{where}: field {posted!r} is not an email address")
        if trait == "phone" and normalise_phone(value) is None:
            raise UnmappableError(
                f"{where}: field {posted!r} is not a phone number "
                "(give it with a country code, or a Japanese number)"
            )
        traits[trait] = value
    return traits


def _checked(value: str | list[str] | None, posted: str, where: str) -> bool:
    if isinstance(value, list):
        value = value[-1] if value else None
    if value is None:
        return False
    token = value.strip().lower()
    if token in CHECKED:
        return True
    if token in UNCHECKED:
        return False
    raise UnmappableError(
        f"{where}: checkbox field {posted!r} has the value {value[:50]!r}, neither checked "
        f'({", ".join(sorted(CHECKED))}) nor unchecked; give the checkbox value="on" '
        "or no value attribute"
    )


__all__ = [
    "CHECKED",
    "MAX_FIELDS",
    "UNCHECKED",
    "Fields",
    "FormMapping",
    "FormsConfig",
    "RawEvent",
    "is_secret_field",
    "load_forms",
    "parse_body",
    "to_events",
]
