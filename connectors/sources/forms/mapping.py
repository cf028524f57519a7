"""Posted form fields → raw events: ``to_events``, ``is_secret_field`` and checkbox semantics."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from cdp.errors import UnmappableError
from connectors.sources.forms.config import FormMapping
from schemas.envelope import MAX_ID_LENGTH
from schemas.identifiers import JUNK_VALUES, looks_like_email, normalise_phone

RawEvent = dict[str, Any]
"""A raw Segment-format event dict, before ``schemas.stamp``."""

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

    ``messageId``s derive from ``message_seed``: the same seed gives the same
    ids. The HTTP route draws a fresh seed per post (``cdp.services.message_ids``), so
    two posts are two submissions even when their bodies are identical, as
    Segment gives every message its own id. All events are timestamped
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
    "MAX_SEED_LENGTH",
    "SECRET_PARTS",
    "SECRET_WORDS",
    "UNCHECKED",
    "WRITTEN_VERSIONS",
    "RawEvent",
    "is_secret_field",
    "to_events",
]
