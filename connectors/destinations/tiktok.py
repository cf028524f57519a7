"""TikTok Ads Customer File audiences.

Sources (TikTok Ads Manager help):

- "List of supported IDs and formats for a customer file" (updated August
  2025): headers ``Email`` / ``Email_SHA256`` and ``Phone`` / ``Phone_SHA256``;
  a file may hold several ID types, each header at most three times. E-mail:
  lower-case, and remove ``+`` and what follows it up to ``@``. Phone: remove
  symbols including the ``+``, remove leading zeros, keep the country code
  (``(657)777-0000`` → ``16577770000``; ``374-93-828222`` → ``37493828222``).
- "How to create a Custom Audience with a customer file": CSV or TXT, a header
  row naming the ID, at least 1,000 entries, under 1 GB.

The documented hash example of the phone, ``65b7e6dc...a422d4``, is the SHA-256
of ``37493828222`` (no ``+``), which settles an older version of the page that
showed E.164 with ``+``. We always upload hashed values.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from connectors.destinations import normalise as n
from connectors.destinations.members import Member

CSV_HEADERS: Final[tuple[str, ...]] = ("Email_SHA256", "Phone_SHA256")


def normalised(member: Member) -> tuple[str | None, str | None]:
    """(e-mail, phone) in TikTok's normal form, before hashing."""
    return n.email_without_tag(member.email), n.phone_digits(member.phone)


def exclusion(member: Member) -> str | None:
    """Why the member has no row (neither e-mail nor phone), or None."""
    email, phone = normalised(member)
    return None if email or phone else "no_email_or_phone"


def file_rows(members: Iterable[Member]) -> list[list[str]]:
    """Rows under ``CSV_HEADERS``; members with neither e-mail nor phone are left out."""
    rows: list[list[str]] = []
    for member in members:
        email, phone = normalised(member)
        if email or phone:
            rows.append([n.hashed(email), n.hashed(phone)])
    return rows
