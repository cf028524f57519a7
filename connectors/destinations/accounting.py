"""Where every member of an exported segment went: into the file, or left out and why.

An export summary must add up: the segment's members are the members
exported plus the members left out for each reason. ``cdp.services.query.audience``
removes the members without the destination's consent; each format then
leaves out the consenting members it has no usable identifier for
(``exclusion`` in the format modules). ``tally`` splits the consenting
members accordingly, and ``Written`` is what a file writer reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from connectors.destinations.members import Member

NO_CONSENT: Final = "no_consent"
"""Reason key of members left out by the consent filter."""

REASONS: Final[dict[str, str]] = {
    NO_CONSENT: "no {consent} consent",
    "suppressed": "suppressed by a privacy request",
    "no_line_user_id": "consenting but no LINE user id",
    "invalid_line_user_id": "LINE user id not in LINE's form (U + 32 hex digits)",
    "no_email": "consenting but no e-mail",
    "no_phone": "consenting but no phone",
    "no_x_user_id": "consenting but no X user id",
    "invalid_x_user_id": "X user id not a number",
    "no_email_phone_or_address": "consenting but no e-mail, phone or complete address",
    "no_email_phone_or_name": "consenting but no e-mail, phone or both names",
    "no_email_or_phone": "consenting but no e-mail or phone",
    "no_usable_identifier": "consenting but nothing the platform can match",
}
"""Every reason a member can be left out, with the words the CLI prints."""


@dataclass(frozen=True)
class Written:
    """What a file writer did with the consenting members it was given.

    ``exported + sum(excluded.values())`` is the number of consenting members.
    ``records`` (rows, lines or operations) can be fewer than ``exported``
    when two members share an identifier: the file holds it once.
    """

    records: int
    exported: int
    excluded: Mapping[str, int] = field(default_factory=dict)
    people: tuple[str, ...] = ()
    """Customer ids of the members in the file (for the APPI provision record)."""
    items: tuple[str, ...] = ()
    """The data items the file holds (its columns, in the format's words)."""


def tally(
    members: Iterable[Member], exclusion: Callable[[Member], str | None]
) -> tuple[list[Member], dict[str, int]]:
    """(members kept, count of members left out per reason), in the members' order."""
    kept: list[Member] = []
    left_out: Counter[str] = Counter()
    for member in members:
        reason = exclusion(member)
        if reason is None:
            kept.append(member)
        else:
            left_out[reason] += 1
    return kept, dict(sorted(left_out.items()))


def describe(excluded: Mapping[str, int], consent: str) -> str:
    """``"12 no ads consent, 3 consenting but no e-mail"`` (reasons with a count only)."""
    parts = [
        f"{count:,} {REASONS.get(reason, reason).format(consent=consent)}"
        for reason, count in excluded.items()
        if count
    ]
    return ", ".join(parts) or "none"
