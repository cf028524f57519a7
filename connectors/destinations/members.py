"""Audience members as the ad-platform formats see them.

``cdp.services.query.audience`` returns rows of ``AUDIENCE_COLUMNS`` (consenting
members only, email trimmed and lower-cased, phone in E.164). This module
turns them into ``Member`` values, the one input of every destination format
(``google_ads``, ``meta``, ``line``, ``x_ads``, ``tiktok``). Each format then
applies its own platform's normalisation; nothing here is platform-specific.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from cdp.services.query import Audience


@dataclass(frozen=True)
class Member:
    """One consenting customer of an audience, with the identifiers ad platforms match on.

    Text fields are as stored in the profile (Japanese names in kanji, kana
    readings separately); ``email`` is trimmed and lower-cased and ``phone``
    is E.164 (``+819012345678``) or ``None`` when it could not be parsed.
    """

    customer_id: str
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    first_name_kana: str | None = None
    last_name_kana: str | None = None
    gender: str | None = None
    birthday: date | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: str | None = None
    line_user_id: str | None = None
    x_user_id: str | None = None


_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "first_name_kana",
    "last_name_kana",
    "gender",
    "birthday",
    "city",
    "region",
    "postal_code",
    "country",
    "line_user_id",
    "x_user_id",
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def members_from_audience(aud: Audience) -> list[Member]:
    """The audience's rows as ``Member`` values, in the audience's order (by customer id)."""
    index = {name: i for i, name in enumerate(aud.columns)}
    members: list[Member] = []
    for row in aud.rows:
        values: dict[str, Any] = {}
        for name in _FIELDS:
            position = index.get(name)
            raw = row[position] if position is not None else None
            if name == "birthday":
                values[name] = raw if isinstance(raw, date) else None
            else:
                values[name] = _text(raw)
        members.append(Member(customer_id=str(row[index["customer_id"]]), **values))
    return members
