"""Normalisation and SHA-256 hashing of identifiers, per ad platform.

Each platform matches hashes of *its own* normal form, so a value that is
normalised one way and hashed cannot match a value normalised another way.
The rules below follow each platform's documentation (cited in the format
modules and in docs/destinations.md); where a document is silent or
ambiguous the decision is written next to the function.

Japanese text is never folded to ASCII. Names, cities and prefectures keep
their kanji and kana; the only Unicode transformation is NFKC, which turns
half-width katakana (ﾔﾏﾀﾞ) into full-width (ヤマダ) and full-width Latin or
digits (Ｙａｍａｄａ, ０９０) into ASCII, and leaves normally typed kanji and kana
unchanged (山田 stays 山田). The hash input is the UTF-8 encoding of the result.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Final

from schemas.identifiers import normalise_phone

_GMAIL_DOMAINS: Final = frozenset({"gmail.com", "googlemail.com"})
_SPACES: Final = re.compile(r"\s+")
_DIGITS: Final = re.compile(r"\d")

#: Gender values people type (English and Japanese) → Meta's ``m`` / ``f``.
_GENDERS: Final[dict[str, str]] = {
    "m": "m",
    "male": "m",
    "man": "m",
    "男": "m",
    "男性": "m",
    "f": "f",
    "female": "f",
    "woman": "f",
    "女": "f",
    "女性": "f",
}


def sha256_hex(text: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 bytes of ``text`` (no salt)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hashed(text: str | None) -> str:
    """``sha256_hex(text)``, or ``""`` for a missing value (an empty string is never hashed)."""
    return sha256_hex(text) if text else ""


# ----------------------------------------------------------------------- email
def email(value: str | None) -> str | None:
    """Trimmed and lower-cased (every platform's base rule); ``None`` if empty."""
    if value is None:
        return None
    text = value.strip().lower()
    return text or None


def email_google(value: str | None) -> str | None:
    """Google: trimmed and lower-cased; for gmail.com / googlemail.com addresses
    the dots and a ``+tag`` are removed from the local part
    (``Jane.Doe+shop@Gmail.com`` → ``janedoe@gmail.com``); other domains keep
    both (``user.name+NYC@Example.com`` → ``user.name+nyc@example.com``).

    Google's Data Manager API guide "Format user data" (the successor of the
    Customer Match upload APIs) states exactly these two examples.
    """
    text = email(value)
    if text is None or "@" not in text:
        return text
    local, _, domain = text.rpartition("@")
    if domain in _GMAIL_DOMAINS:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            return None
    return f"{local}@{domain}"


def email_without_tag(value: str | None) -> str | None:
    """TikTok: trimmed, lower-cased, and ``+`` with what follows it up to ``@``
    removed (``jane+shop@example.jp`` → ``jane@example.jp``)."""
    text = email(value)
    if text is None or "@" not in text:
        return text
    local, _, domain = text.rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


# ----------------------------------------------------------------------- phone
def phone_e164(value: str | None) -> str | None:
    """E.164 with the ``+`` (``090-1234-5678`` → ``+819012345678``); Japan is
    assumed when no country code is given. ``None`` if unparseable."""
    if not value:
        return None
    return normalise_phone(unicodedata.normalize("NFKC", value))


def phone_digits(value: str | None) -> str | None:
    """Country code and number as digits only, no ``+`` and no leading zero
    (``090-1234-5678`` → ``819012345678``): Meta, TikTok and LINE Ads."""
    e164 = phone_e164(value)
    return e164[1:] if e164 else None


# ------------------------------------------------------------------ names etc.
def text_nfkc(value: str | None) -> str | None:
    """NFKC, trimmed, lower-cased, inner runs of white space collapsed to one space."""
    if value is None:
        return None
    text = _SPACES.sub(" ", unicodedata.normalize("NFKC", value)).strip().lower()
    return text or None


def name_google(value: str | None) -> str | None:
    """Google first / last name: NFKC, lower-case, no punctuation, white space
    trimmed and inner runs collapsed to one space.

    ``OfflineUserAddressInfo`` says "lower case only and no punctuation" for
    the last name and "lowercase all characters; remove any extra spaces
    before, after, and in between" for the first; the Customer Match file
    template asks the same of both names. So ``O'Brien`` → ``obrien``,
    ``Mary-Ann`` → ``maryann``, ``  Mary   Ann `` → ``mary ann``.

    "No punctuation" removes Unicode punctuation (P*) and symbols (S*) only:
    letters of every script, their combining marks and digits stay, so
    ``山田`` stays ``山田``, ``ヤマダ`` stays ``ヤマダ`` (the long-vowel mark ー and
    the iteration mark 々 are letters), ``Zoë`` → ``zoë``; the katakana middle
    dot between given and family name is punctuation (``ジョン・スミス`` →
    ``ジョンスミス``). A name that is nothing but punctuation gives ``None``.
    """
    text = text_nfkc(value)
    if text is None:
        return None
    kept = "".join(c for c in text if unicodedata.category(c)[0] not in "PSC")
    return _SPACES.sub(" ", kept).strip() or None


def _letters_only(text: str, keep_digits: bool) -> str:
    # Drop punctuation (P*), symbols (S*), separators/white space (Z*) and
    # control characters; keep letters (kanji, kana, Latin with accents), the
    # combining marks and, optionally, digits.
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if category[0] in "LM" or (keep_digits and category[0] == "N"):
            kept.append(char)
    return "".join(kept)


def name_meta(value: str | None) -> str | None:
    """Meta FN / LN: NFKC, lower-case, no punctuation or white space, other
    scripts kept in UTF-8 (``Mary-Ann`` → ``maryann``, ``山田`` → ``山田``)."""
    text = text_nfkc(value)
    if text is None:
        return None
    return _letters_only(text, keep_digits=False) or None


def place_meta(value: str | None) -> str | None:
    """Meta CT / ST: like names, and digits removed too (``New York`` →
    ``newyork``, ``渋谷区`` → ``渋谷区``, ``東京都`` → ``東京都``)."""
    return name_meta(value)


def gender_meta(value: str | None) -> str | None:
    """Meta GEN: ``m`` or ``f``; anything else is left out."""
    text = text_nfkc(value)
    return _GENDERS.get(text) if text else None


def country_code(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 in lower case (``JP`` → ``jp``); ``None`` unless two letters."""
    text = text_nfkc(value)
    if text is None:
        return None
    text = text.replace(" ", "")
    return text if len(text) == 2 and text.isascii() and text.isalpha() else None


def postal_code(value: str | None, country: str | None) -> str | None:
    """Postal code without white space, lower-cased.

    Japan (decision, docs/destinations.md): the seven digits without the
    hyphen (``150-0002`` → ``1500002``). United States: the first five digits
    (Meta's rule). Elsewhere the code is kept as written, minus white space.
    """
    text = text_nfkc(value)
    if text is None:
        return None
    text = text.replace(" ", "")
    code = country_code(country)
    if code == "jp":
        digits = "".join(_DIGITS.findall(text))
        return digits or None
    if code == "us":
        return text.split("-", 1)[0][:5] or None
    return text or None
