"""Meta (Facebook / Instagram) Custom Audiences from a customer file.

Sources (Meta's documentation):

- Marketing API, "Customer File Custom Audiences" and the reference of
  ``/{custom-audience-id}/users``: add members with ``POST`` and remove them
  with ``DELETE`` on ``/{custom-audience-id}/users``, each with a ``payload``
  ``{"schema": [...], "data": [[...], ...]}``; at most 10,000 records per call.
- Same guide, "Hashing and normalization for multi-key": EMAIL trim and
  lower-case; PHONE digits only with the country code (no ``+``, no leading
  zero); GEN ``m``/``f``; DOBY ``YYYY``; FN/LN lower-case, no punctuation,
  special characters in UTF-8; CT lower-case without punctuation, digits or
  spaces; ST the same for states outside the US; ZIP lower-case without
  spaces (first five digits in the US); COUNTRY ISO 3166-1 alpha-2 in lower
  case. All of these are SHA-256 hashed; EXTERN_ID is not hashed.
- Business Help Center, "How to format a customer list": file headers
  ``email, phone, fn, ln, gen, doby, ct, st, zip, country``; leave out
  internal-only codes, so the CSV file carries no EXTERN_ID.

Decisions: FN/LN/CT/ST keep Japanese script (NFKC, then letters only:
山田 → ``山田``, O'Brien → ``obrien``, 東京都 → ``東京都``). For CT/ST this
follows Meta's Python Business SDK normaliser (digits, spaces, ``.``, ``-``
and brackets removed, other letters kept) over the table's "no special
characters", which would leave nothing of a Japanese city (docs/destinations.md).
Japanese postal codes are the seven digits (``150-0002`` → ``1500002``);
EXTERN_ID is our ``customer_id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Final

from connectors.destinations import normalise as n
from connectors.destinations.members import Member

SCHEMA: Final[tuple[str, ...]] = (
    "EMAIL",
    "PHONE",
    "FN",
    "LN",
    "GEN",
    "DOBY",
    "CT",
    "ST",
    "ZIP",
    "COUNTRY",
    "EXTERN_ID",
)
"""Multi-key schema of every payload, in column order."""

MAX_BATCH: Final = 10_000
"""Meta accepts at most this many records per call."""

ADD_METHOD: Final = "POST"
"""HTTP method on ``/{custom-audience-id}/users`` that adds the payload's members."""

REMOVE_METHOD: Final = "DELETE"
"""HTTP method on ``/{custom-audience-id}/users`` that removes them."""

CSV_HEADERS: Final[tuple[str, ...]] = tuple(key.lower() for key in SCHEMA[:-1])
"""Customer-list file headers (no ``extern_id``: Meta asks for no internal codes)."""


def normalised(member: Member) -> dict[str, str | None]:
    """The member's values in Meta's normal form, before hashing, keyed by ``SCHEMA``."""
    return {
        "EMAIL": n.email(member.email),
        "PHONE": n.phone_digits(member.phone),
        "FN": n.name_meta(member.first_name),
        "LN": n.name_meta(member.last_name),
        "GEN": n.gender_meta(member.gender),
        "DOBY": f"{member.birthday.year:04d}" if member.birthday else None,
        "CT": n.place_meta(member.city),
        "ST": n.place_meta(member.region),
        "ZIP": n.postal_code(member.postal_code, member.country),
        "COUNTRY": n.country_code(member.country),
        "EXTERN_ID": member.customer_id,
    }


def row(member: Member) -> list[str]:
    """One ``data`` row in ``SCHEMA`` order: SHA-256 hex, EXTERN_ID in clear, ``""`` if absent."""
    values = normalised(member)
    return [values[key] or "" if key == "EXTERN_ID" else n.hashed(values[key]) for key in SCHEMA]


def matchable(member: Member) -> bool:
    """True when the member has an e-mail, a phone, or both names (Meta can match on them)."""
    values = normalised(member)
    return bool(values["EMAIL"] or values["PHONE"] or (values["FN"] and values["LN"]))


def exclusion(member: Member) -> str | None:
    """Why the member is not sent to Meta (``matchable`` is false), or None."""
    return None if matchable(member) else "no_email_phone_or_name"


def payloads(members: Iterable[Member], batch_size: int = MAX_BATCH) -> Iterator[dict[str, Any]]:
    """``{"schema": [...], "data": [[...]]}`` payloads of at most ``batch_size`` rows.

    The same payloads serve an add (``ADD_METHOD``) and a remove
    (``REMOVE_METHOD``). Members Meta cannot match are skipped.
    """
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_BATCH}, not {batch_size}")
    data: list[list[str]] = []
    for member in members:
        if not matchable(member):
            continue
        data.append(row(member))
        if len(data) == batch_size:
            yield {"schema": list(SCHEMA), "data": data}
            data = []
    if data:
        yield {"schema": list(SCHEMA), "data": data}


def csv_rows(members: Iterable[Member]) -> list[list[str]]:
    """Rows of a customer-list file under ``CSV_HEADERS`` (hashed, no EXTERN_ID)."""
    return [row(member)[:-1] for member in members if matchable(member)]
