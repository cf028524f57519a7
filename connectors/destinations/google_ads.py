"""Google Ads Customer Match: the CSV upload template and the API's UserIdentifier JSON.

Sources (Google's documentation):

- Help Center, "Format your customer data file" (support.google.com/google-ads/answer/7659867)
  and "Formatting guidelines for uploading hashed data" (answer/7476159): CSV in UTF-8,
  English headers ``Email``, ``Phone``, ``First Name``, ``Last Name``, ``Country``,
  ``Zip``; mailing-address matching needs all four of First Name, Last Name,
  Country and Zip; hashed files: lower-case, no extra spaces, phones in E.164
  before SHA-256. The hashed template uses the same header names.
- Google Ads API, Customer Match "get started" and ``UserIdentifier`` reference:
  each identifier is its own ``UserIdentifier`` (a oneof of ``hashedEmail``,
  ``hashedPhoneNumber``, ``addressInfo``...); e-mail, phone, first and last
  name are SHA-256 of the normalised value (trim, lower-case, E.164 for the
  phone); ``countryCode`` and ``postalCode`` are sent in clear.
- ``OfflineUserAddressInfo`` reference: ``hashed_last_name`` "lower case only
  and no punctuation"; ``hashed_first_name`` "lowercase all characters; remove
  any extra spaces before, after, and in between" (``normalise.name_google``
  applies both to both names: ``O'Brien`` → ``obrien``).
- Data Manager API, "Format user data" (the successor of the Customer Match
  upload APIs): for gmail.com / googlemail.com addresses remove the dots and
  a ``+`` suffix before the ``@``; keep both for every other domain
  (``normalise.email_google``). Phones E.164 with the ``+``.

Japanese names: NFKC, lower-cased, punctuation removed, and otherwise kept as
typed (山田 → the SHA-256 of the UTF-8 bytes of ``山田``). Google documents no
reading or romanisation rule, so the kana readings are not sent.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from connectors.destinations import normalise as n
from connectors.destinations.members import Member

CSV_HEADERS_PLAIN: Final[tuple[str, ...]] = (
    "Email",
    "Phone",
    "First Name",
    "Last Name",
    "Country",
    "Zip",
)
"""Header row of the plain-text (unhashed) upload template."""

CSV_HEADERS_HASHED: Final[tuple[str, ...]] = CSV_HEADERS_PLAIN
"""Header row of the hashed template: Google uses the same English names."""


def _address(member: Member) -> tuple[str, str, str, str] | None:
    # Google matches an address only with all four parts; a partial one is dropped.
    first = n.name_google(member.first_name)
    last = n.name_google(member.last_name)
    country = n.country_code(member.country)
    postal = n.postal_code(member.postal_code, member.country)
    if first and last and country and postal:
        return first, last, country.upper(), postal
    return None


def normalised(member: Member) -> dict[str, str | None]:
    """The member's values in Google's normal form, before hashing (None: absent)."""
    address = _address(member)
    return {
        "email": n.email_google(member.email),
        "phone": n.phone_e164(member.phone),
        "first_name": address[0] if address else None,
        "last_name": address[1] if address else None,
        "country": address[2] if address else None,
        "zip": address[3] if address else None,
    }


def exclusion(member: Member) -> str | None:
    """Why Google can match nothing of the member, or None when it can.

    The same test decides the CSV rows and the API operations, so a member is
    in both files or in neither.
    """
    values = normalised(member)
    if values["email"] or values["phone"] or values["first_name"]:
        return None
    return "no_email_phone_or_address"


def csv_rows(members: Iterable[Member], hashed: bool = True) -> list[list[str]]:
    """Rows for ``CSV_HEADERS_HASHED`` (or ``_PLAIN``): one per member with something to match.

    Hashed: Email, Phone, First Name and Last Name are SHA-256 hex; Country and
    Zip stay in clear, as the template requires. Members with no e-mail, no
    phone and no complete address are left out.
    """
    rows: list[list[str]] = []
    for member in members:
        if exclusion(member) is not None:
            continue
        values = normalised(member)
        secret = ("email", "phone", "first_name", "last_name")
        row = [
            (n.hashed(values[key]) if hashed else values[key] or "")
            if key in secret
            else values[key] or ""
            for key in ("email", "phone", "first_name", "last_name", "country", "zip")
        ]
        rows.append(row)
    return rows


def user_identifiers(member: Member) -> list[dict[str, Any]]:
    """The member's ``UserData.userIdentifiers`` for the REST API (camelCase JSON).

    One ``UserIdentifier`` per kind of identifier (the field is a oneof), in
    the order e-mail, phone, address. Empty when nothing can be matched.
    """
    values = normalised(member)
    identifiers: list[dict[str, Any]] = []
    if values["email"]:
        identifiers.append({"hashedEmail": n.sha256_hex(values["email"])})
    if values["phone"]:
        identifiers.append({"hashedPhoneNumber": n.sha256_hex(values["phone"])})
    if values["first_name"] and values["last_name"]:
        identifiers.append(
            {
                "addressInfo": {
                    "hashedFirstName": n.sha256_hex(values["first_name"]),
                    "hashedLastName": n.sha256_hex(values["last_name"]),
                    "countryCode": values["country"],
                    "postalCode": values["zip"],
                }
            }
        )
    return identifiers
