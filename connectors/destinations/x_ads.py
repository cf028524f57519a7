"""X (Twitter) Ads List Custom Audiences: hashed identifier files.

Sources (X's documentation):

- Ads API, "Custom Audiences User Data": e-mail addresses lower-cased with
  leading and trailing spaces removed; X user IDs as plain integers; every
  value SHA-256 hashed without a salt, hex in lower case (the documented
  example: ``adsapi`` → ``49e0be2a...1470d``).
- Business Help Center, "List Custom Audiences": ``.csv`` / ``.txt`` files,
  identifiers separated by new lines; the identifier type is chosen when the
  file is uploaded, so a file holds one type and has no header row.

Decision: phone numbers are not exported to X, because X's user-data
document gives no normalisation rule for them (a hash of the wrong form
never matches). Choose the identifier with ``--option identifier=email|user_id``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from connectors.destinations import normalise as n
from connectors.destinations.members import Member

XIdentifier = Literal["email", "user_id"]
IDENTIFIERS: Final[tuple[str, ...]] = ("email", "user_id")


def value(member: Member, identifier: XIdentifier) -> str | None:
    """The member's e-mail or X user id in X's normal form, before hashing."""
    if identifier == "email":
        return n.email(member.email)
    user_id = (member.x_user_id or "").strip()
    return user_id if user_id.isdigit() else None


def exclusion(member: Member, identifier: XIdentifier) -> str | None:
    """Why the member has no line in a file of ``identifier``, or None."""
    if value(member, identifier) is not None:
        return None
    if identifier == "email":
        return "no_email"
    # An X user id that is not an integer (a @handle, a URL) never matches.
    return "invalid_x_user_id" if (member.x_user_id or "").strip() else "no_x_user_id"


def file_rows(members: Iterable[Member], identifier: XIdentifier = "email") -> list[list[str]]:
    """One ``[sha256]`` row per member with that identifier, duplicates removed."""
    seen: set[str] = set()
    rows: list[list[str]] = []
    for member in members:
        normal = value(member, identifier)
        if normal is None:
            continue
        digest = n.sha256_hex(normal)
        if digest not in seen:
            seen.add(digest)
            rows.append([digest])
    return rows
