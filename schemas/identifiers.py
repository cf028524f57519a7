"""Customer identifiers: their kinds, normalisation and the junk blocklist.

An identifier is written ``kind:value`` (``email:hanako@example.jp``,
``phone:+819012345678``, ``line:U4af4980629...``). Normalisation is pure and
deterministic so that the same person typed two ways becomes one key:

- email: trimmed and lower-cased (provider-specific rules such as Gmail dots
  belong to export destinations, not to identity);
- phone: E.164 via libphonenumber, Japanese numbers assumed when no country
  code is given (this platform's home market);
- everything else: trimmed.

``normalise`` returns ``None`` for values that must never link customers:
empty strings, placeholders such as ``"null"``/``"undefined"``/``"0"``, test
addresses, unparseable phones.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final, Literal, get_args

IdentifierKind = Literal["user_id", "anonymous_id", "email", "phone", "line", "x", "instagram"]
IDENTIFIER_KINDS: Final[tuple[str, ...]] = get_args(IdentifierKind)

#: Kinds a person can type into an API or the CLI, with friendly aliases.
KIND_ALIASES: Final[dict[str, str]] = {
    "user": "user_id",
    "userid": "user_id",
    "user_id": "user_id",
    "customer_id": "user_id",
    "anon": "anonymous_id",
    "anonymous": "anonymous_id",
    "anonymous_id": "anonymous_id",
    "anonymousid": "anonymous_id",
    "email": "email",
    "phone": "phone",
    "tel": "phone",
    "line": "line",
    "line_user_id": "line",
    "x": "x",
    "twitter": "x",
    "instagram": "instagram",
    "ig": "instagram",
}

JUNK_VALUES: Final[frozenset[str]] = frozenset(
    {
        "",
        "0",
        "-1",
        "null",
        "none",
        "nil",
        "undefined",
        "nan",
        "unknown",
        "anonymous",
        "n/a",
        "na",
        "test",
        "[object object]",
        "00000000-0000-0000-0000-000000000000",
    }
)
JUNK_EMAIL_DOMAINS: Final[frozenset[str]] = frozenset(
    {"example.com", "example.org", "example.net", "test.com", "test.invalid", "mailinator.com"}
)
JUNK_EMAIL_LOCALS: Final[frozenset[str]] = frozenset({"test", "noreply", "no-reply", "dummy"})
_EMAIL_RE: Final = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_PHONE_REGION: Final = "JP"


def looks_like_email(value: str) -> bool:
    """True when ``value`` has the shape local@domain.tld (no deliverability check)."""
    return bool(_EMAIL_RE.match(value.strip()))


def normalise_email(value: str) -> str | None:
    """Trim and lower-case an email; ``None`` if it is not one or is a test address."""
    email = value.strip().lower()
    if not _EMAIL_RE.match(email):
        return None
    local, _, domain = email.partition("@")
    if domain in JUNK_EMAIL_DOMAINS or local in JUNK_EMAIL_LOCALS:
        return None
    return email


@lru_cache(maxsize=262_144)
def normalise_phone(value: str, region: str = DEFAULT_PHONE_REGION) -> str | None:
    """E.164 form (``+819012345678``) of a phone number, ``None`` if unparseable."""
    # Imported on first use: loading its metadata costs ~20 ms, which every CLI
    # command that only reads (``cdp status``, ``cdp sql``) would pay at start-up.
    import phonenumbers  # noqa: PLC0415

    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalise(kind: str, value: object) -> str | None:
    """The normalised value of an identifier of ``kind``, or ``None`` if it is junk."""
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    if text.lower() in JUNK_VALUES:
        return None
    if kind == "email":
        return normalise_email(text)
    if kind == "phone":
        return normalise_phone(text)
    return text


def key(kind: str, value: str) -> str:
    """The ``kind:value`` key of an already-normalised identifier."""
    return f"{kind}:{value}"


def parse_key(text: str) -> tuple[str, str]:
    """Parse ``kind:value`` typed by a person; normalise the value.

    Raises ``ValueError`` naming the problem: unknown kind, missing value, or a
    value that normalises to nothing.
    """
    kind_text, sep, value = text.partition(":")
    if not sep or not value.strip():
        raise ValueError(
            f"identifier {text!r} must be written kind:value, e.g. email:hanako@example.jp"
        )
    kind = KIND_ALIASES.get(kind_text.strip().lower())
    if kind is None:
        raise ValueError(
            f"unknown identifier kind {kind_text!r}; use one of {', '.join(IDENTIFIER_KINDS)}"
        )
    normal = normalise(kind, value)
    if normal is None:
        raise ValueError(
            f"{kind} value {value!r} is not a usable identifier: {junk_reason(kind, value)}"
        )
    return kind, normal


def junk_reason(kind: str, value: object) -> str | None:
    """Why ``normalise(kind, value)`` refuses a value, in words; ``None`` if it does not.

    Every rule of ``normalise`` has its reason here, so a person who typed a
    test address learns that its domain is a placeholder rather than guessing.
    """
    if value is None or isinstance(value, bool):
        return "no value was given"
    text = str(value).strip()
    if text.lower() in JUNK_VALUES:
        if not text:
            return "the value is empty"
        return (
            f"{text!r} is a placeholder (like null, undefined, unknown, 0 or test) "
            "that trackers send when they know nothing, so it never identifies anyone"
        )
    if kind == "email":
        email = text.lower()
        if not _EMAIL_RE.match(email):
            return "it is not an email address (local@domain.tld)"
        local, _, domain = email.partition("@")
        if domain in JUNK_EMAIL_DOMAINS:
            return (
                f"{domain} is a placeholder domain for examples, tests or throwaway inboxes "
                f"({', '.join(sorted(JUNK_EMAIL_DOMAINS))}), so addresses there never "
                "identify a person"
            )
        if local in JUNK_EMAIL_LOCALS:
            return (
                f"{local}@ is a test or no-reply mailbox "
                f"({', '.join(sorted(JUNK_EMAIL_LOCALS))}), shared by many, so it never "
                "identifies a person"
            )
    if kind == "phone" and normalise_phone(text) is None:
        return (
            "it is not a phone number that can be read (digits, optionally +country code; "
            f"numbers without one are read as {DEFAULT_PHONE_REGION})"
        )
    return None
