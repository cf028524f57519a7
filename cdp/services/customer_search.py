"""Finding customers by what a person types: an identifier or a name.

Two kinds of match, both used by the console's customer search:

- **identifiers** (:func:`identifier_candidates`): ``kind:value`` or a
  ``cus_`` id as typed, else every kind the text could be (an email, a phone
  number, a user id, an anonymous id, a LINE / X / Instagram id), each
  normalised as identity resolution does (``schemas.identifiers``). The caller
  resolves them with the profile lookups (indexed point reads, every mode);
- **names** (:func:`search_names`): a substring of the customer's name in
  kanji, of the kana reading (フリガナ) or of the email, over the ``customers``
  table. The text is folded (:func:`fold`: Unicode NFKC, so half-width ｻﾄｳ is
  サトウ and full-width Ｌａｔｉｎ is latin; katakana as hiragana; lower case;
  no spaces) and turned into a pattern (:func:`pattern`) that accepts every
  spelling of each folded character and white space between them: サトウ,
  さとう and ｻﾄｳ find each other, ``佐藤花子`` finds ``佐藤 花子``, and a
  reading is found in either order (family name first or given name first).
  Results are paged by keyset on ``customer_id``.

Cost: an identifier is a handful of point lookups; a name search runs one
regular expression over the name, kana and email columns of every customer
(no index answers a substring): see docs/console.md for the figures.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Final

import duckdb

from schemas.identifiers import IDENTIFIER_KINDS, KIND_ALIASES, key, normalise, parse_key

CUSTOMER_PREFIX: Final = "cus_"
PAGE: Final = 25

_KATAKANA: Final = "".join(chr(c) for c in range(0x30A1, 0x30F7))
_HIRAGANA: Final = "".join(chr(c - 0x60) for c in range(0x30A1, 0x30F7))
_FULLWIDTH: Final = "".join(chr(c) for c in range(0xFF01, 0xFF5F))  # ！ .. ～, Ａ .. ｚ


def fold(text: str) -> str:
    """``text`` as the search compares it: NFKC, lower case, no white space,
    katakana as hiragana."""
    folded = unicodedata.normalize("NFKC", text).lower()
    folded = "".join(ch for ch in folded if not ch.isspace() and ch != "|")
    return folded.translate(str.maketrans(_KATAKANA, _HIRAGANA))


def _spellings() -> dict[str, tuple[str, ...]]:
    """Folded character → every spelling that folds to it (itself, katakana,
    half-width kana with or without a sound mark, full-width latin), longest
    first: what a pattern must accept for it in raw text."""
    raws = [chr(c) for c in range(0x30A1, 0x30F7)]  # katakana
    raws += [chr(c) for c in range(0xFF66, 0xFF9E)]  # half-width kana
    raws += [chr(c) + mark for c in range(0xFF66, 0xFF9E) for mark in ("\uff9e", "\uff9f")]
    raws += list(_FULLWIDTH)
    found: dict[str, set[str]] = {}
    for raw in raws:
        folded = fold(raw)
        if len(folded) == 1 and len(unicodedata.normalize("NFKC", raw)) == 1:
            found.setdefault(folded, {folded}).add(raw)
    return {k: tuple(sorted(v, key=lambda x: (-len(x), x))) for k, v in found.items()}


_SPELLINGS: Final = _spellings()
_GAP: Final = "[\\s\u3000]*"


def pattern(text: str) -> str | None:
    """An RE2 pattern matching raw text whose :func:`fold` contains ``fold(text)``
    (case-insensitive, any spelling of each kana, white space anywhere);
    ``None`` when ``text`` folds to nothing."""
    folded = fold(text)
    if not folded:
        return None
    parts = []
    for ch in folded:
        spellings = _SPELLINGS.get(ch)
        if spellings is None:
            parts.append(re.escape(ch))
        else:
            parts.append("(?:" + "|".join(re.escape(x) for x in spellings) + ")")
    return "(?i)" + _GAP.join(parts)


NAME_TEXT_SQL: Final = (
    "concat_ws('|', name, last_name || first_name, first_name || last_name, "
    "last_name_kana || first_name_kana, first_name_kana || last_name_kana, email)"
)
"""Every spelling of a customer a search may name, ``|`` between them."""

RESULT_COLUMNS: Final = (
    "customer_id",
    "name",
    "last_name_kana",
    "first_name_kana",
    "email",
    "lifecycle_stage",
    "orders_count",
    "revenue",
    "last_seen",
)

SEARCH_SQL: Final = f"""
SELECT {", ".join(RESULT_COLUMNS)}
FROM customers
WHERE regexp_matches({NAME_TEXT_SQL}, $pattern) AND ($after IS NULL OR customer_id > $after)
ORDER BY customer_id
LIMIT $limit
"""

LIST_SQL: Final = f"""
SELECT {", ".join(RESULT_COLUMNS)}
FROM customers
WHERE $after IS NULL OR customer_id > $after
ORDER BY customer_id
LIMIT $limit
"""


@dataclass(frozen=True, slots=True)
class Page:
    """One page of matches: ``rows`` (dicts of ``RESULT_COLUMNS``) and the
    cursor of the next page (``None`` on the last)."""

    rows: list[dict[str, Any]]
    after: str | None


def identifier_candidates(text: str) -> list[str]:
    """The identifier keys (or the ``cus_`` id) ``text`` may name, most likely first.

    ``kind:value`` with a known kind (or alias) names exactly that identifier;
    other text is tried as every kind it normalises to (an email only when it
    looks like one, a phone only when it parses as one)."""
    text = unicodedata.normalize("NFKC", text).strip()
    if not text:
        return []
    if text.startswith(CUSTOMER_PREFIX) and len(text) > len(CUSTOMER_PREFIX):
        return [text]
    kind, sep, _ = text.partition(":")
    if sep and kind.strip().lower() in KIND_ALIASES:
        try:
            return [key(*parse_key(text))]
        except ValueError:
            return []
    found: list[str] = []
    for kind in ("email", "phone", *(k for k in IDENTIFIER_KINDS if k not in ("email", "phone"))):
        if kind == "phone" and sum(c.isdigit() for c in text) < 6:
            continue  # a name is never a phone number; spare the parser
        value = normalise(kind, text)
        if value is not None and key(kind, value) not in found:
            found.append(key(kind, value))
    if text.startswith("@") and normalise("x", text[1:]):
        found.append(key("x", text[1:].strip()))
    return found


def names_one(text: str) -> bool:
    """True when ``text`` names one identifier explicitly (``kind:value`` or a
    ``cus_`` id): a match by name would only repeat it."""
    text = unicodedata.normalize("NFKC", text).strip()
    kind, sep, _ = text.partition(":")
    return text.startswith(CUSTOMER_PREFIX) or bool(sep and kind.strip().lower() in KIND_ALIASES)


def search_names(
    con: duckdb.DuckDBPyConnection, text: str, after: str | None = None, limit: int = PAGE
) -> Page:
    """Customers whose name, reading or email contains ``text`` (folded), by
    ``customer_id`` after ``after``; every customer when ``text`` folds to
    nothing."""
    wanted = pattern(text)
    sql, params = (SEARCH_SQL, {"pattern": wanted}) if wanted else (LIST_SQL, {})
    cursor = con.execute(sql, {**params, "after": after, "limit": limit + 1})
    rows = [dict(zip(RESULT_COLUMNS, row, strict=True)) for row in cursor.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, rows[-1]["customer_id"] if more and rows else None)
