"""LINE: Messaging API audiences of LINE user ids, and hashed files for LINE Ads.

Sources (LINE's documentation):

- Messaging API reference, "Create audience for uploading user IDs (by JSON)"
  (``POST /v2/bot/audienceGroup/upload``) and "Add user IDs ... (by JSON)"
  (``PUT /v2/bot/audienceGroup/upload``): ``audiences`` is an array of
  ``{"id": "U..."}`` objects, at most 10,000 per request; "by file" takes a
  text file with one user ID per line (at most 1,500,000).
- Messaging API docs, "Get user IDs": a user ID is ``U[0-9a-f]{32}``
  (``U8189cf6745fc0d808977bdb0b9f22995``); ``user_id`` keeps only that form.
- LINE Ads manual (LINE for Business), "メールアドレスアップロード" and the phone
  upload: one value per line, no header row, CSV or TXT; hashed files must be
  SHA-256. E-mail is trimmed and lower-cased before hashing. The phone is the
  country code and number as digits (``090-1234-5678`` → ``819012345678``),
  the form LINE's other Japanese ad products (and Meta) use; LINE does not
  print a hashed phone example, so this is our documented decision.

Consent: a Messaging API audience is used to *message* people on LINE, so it
is exported from ``consent_line``; LINE Ads audiences are ads and use
``consent_ads`` (``registry.py`` sets each default).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, Final, Literal

from connectors.destinations import normalise as n
from connectors.destinations.members import Member

MAX_IDS_PER_REQUEST: Final = 10_000
"""Messaging API limit on ``audiences`` in one JSON request."""

USER_ID: Final = re.compile(r"U[0-9a-f]{32}")
"""A LINE user id as the platform issues it ("Get user IDs": ``U[0-9a-f]{32}``)."""

AdsIdentifier = Literal["email", "phone"]


def user_id(member: Member) -> str | None:
    """The member's LINE user id if it has LINE's form (``U`` + 32 hex digits), else None.

    Anything else (a display name, a LINE ID typed by a person, a truncated
    value) would make LINE refuse the whole upload request, so it is left out
    and counted (``exclusion``).
    """
    value = (member.line_user_id or "").strip()
    return value if USER_ID.fullmatch(value) else None


def exclusion(member: Member) -> str | None:
    """Why the member cannot be in a Messaging API audience, or None if it can."""
    if not (member.line_user_id or "").strip():
        return "no_line_user_id"
    return None if user_id(member) else "invalid_line_user_id"


def messaging_audience(members: Iterable[Member]) -> list[dict[str, Any]]:
    """``[{"id": "U..."}, ...]`` for members with a valid LINE user id, without duplicates."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for member in members:
        valid = user_id(member)
        if valid and valid not in seen:
            seen.add(valid)
            out.append({"id": valid})
    return out


def messaging_batches(
    members: Iterable[Member], batch_size: int = MAX_IDS_PER_REQUEST
) -> Iterator[list[dict[str, Any]]]:
    """``messaging_audience`` cut into ``audiences`` arrays of at most ``batch_size`` ids."""
    if not 1 <= batch_size <= MAX_IDS_PER_REQUEST:
        raise ValueError(
            f"batch_size must be between 1 and {MAX_IDS_PER_REQUEST}, not {batch_size}"
        )
    ids = messaging_audience(members)
    for start in range(0, len(ids), batch_size):
        yield ids[start : start + batch_size]


def ads_value(member: Member, identifier: AdsIdentifier) -> str | None:
    """The member's e-mail or phone in LINE Ads' normal form, before hashing."""
    if identifier == "email":
        return n.email(member.email)
    return n.phone_digits(member.phone)


def ads_exclusion(member: Member, identifier: AdsIdentifier) -> str | None:
    """Why the member has no line in a LINE Ads file of ``identifier``, or None."""
    return None if ads_value(member, identifier) else f"no_{identifier}"


def ads_rows(members: Iterable[Member], identifier: AdsIdentifier = "email") -> list[list[str]]:
    """One ``[sha256]`` row per member with that identifier, duplicates removed."""
    seen: set[str] = set()
    rows: list[list[str]] = []
    for member in members:
        value = ads_value(member, identifier)
        if value is None:
            continue
        digest = n.sha256_hex(value)
        if digest not in seen:
            seen.add(digest)
            rows.append([digest])
    return rows
