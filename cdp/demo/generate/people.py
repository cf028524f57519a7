"""Synthetic people: name and reading, gender, birthday, address, email, phone.

Emails and phone numbers are unique per person: each carries a number that is
a bijection of the person's index (``index * 7919 + c`` modulo a power of ten,
7919 being coprime to 10), so two simulated people never share an identifier
and identity resolution has nothing to merge by accident. People *type* them
inconsistently, as real customers do: emails sometimes in mixed case or with
surrounding spaces, phones as ``090-1234-5678``, ``09012345678``,
``+81 90-1234-5678``, ``+81 80 1234 5678`` or in full-width digits.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

from cdp.demo.generate.japan import (
    EMAIL_DOMAINS,
    FAMILY_NAMES,
    FEMALE_NAMES,
    MALE_NAMES,
    PREFECTURES,
    Name,
)

_FULL_WIDTH: Final = str.maketrans("0123456789-", "０１２３４５６７８９－")
_MOBILE_PREFIXES: Final = ("090", "090", "090", "080", "080", "070")


@dataclass(frozen=True, slots=True)
class Person:
    """Who a simulated customer is; ``email``/``phone`` are the clean forms."""

    family: Name
    given: Name
    gender: str | None
    birthday: date
    prefecture: str
    city: str
    postal_code: str
    email: str
    phone: str | None
    preferred_channel: str

    def typed_email(self, rng: random.Random) -> str:
        """The email as the person types it this time: usually clean, sometimes not."""
        roll = rng.random()
        if roll < 0.05:
            local, _, domain = self.email.partition("@")
            return f"{local.capitalize()}@{domain.capitalize()}"
        if roll < 0.08:
            return f" {self.email} " if roll < 0.065 else f"{self.email.upper()} "
        return self.email

    def typed_phone(self, rng: random.Random) -> str | None:
        """The phone as the person types it this time (several Japanese habits)."""
        if self.phone is None:
            return None
        prefix, middle, last = self.phone.split("-")
        roll = rng.random()
        if roll < 0.50:
            return self.phone
        if roll < 0.70:
            return prefix + middle + last
        if roll < 0.82:
            return f"+81 {prefix[1:]}-{middle}-{last}"
        if roll < 0.92:
            return f"+81 {prefix[1:]} {middle} {last}"
        if roll < 0.96:
            return self.phone.translate(_FULL_WIDTH)
        return f"{prefix} {middle} {last}"

    def traits(self, rng: random.Random, created_at: str | None = None) -> dict[str, Any]:
        """Full identify traits, as an account registration form sends them."""
        traits: dict[str, Any] = {
            "email": self.typed_email(rng),
            "last_name": self.family.kanji,
            "first_name": self.given.kanji,
            "last_name_kana": self.family.kana,
            "first_name_kana": self.given.kana,
            "name": f"{self.family.kanji} {self.given.kanji}",
            "birthday": self.birthday.isoformat(),
            "address": {
                "country": "JP",
                "state": self.prefecture,
                "city": self.city,
                "postal_code": self.postal_code,
            },
            "preferred_channel": self.preferred_channel,
        }
        if self.gender is not None:
            traits["gender"] = self.gender
        phone = self.typed_phone(rng)
        if phone is not None:
            traits["phone"] = phone
        if created_at is not None:
            traits["created_at"] = created_at
        return traits


def _unique_number(index: int, digits: int, salt: int) -> str:
    return f"{(index * 7919 + salt) % 10**digits:0{digits}d}"


def make_person(
    rng: random.Random,
    index: int,
    digits: int,
    today: date,
    preferred: str,
    with_phone: bool,
) -> Person:
    """A new person; ``digits`` must make ``10**digits`` exceed every index used."""
    roll = rng.random()
    gender: str | None = "female" if roll < 0.64 else "male" if roll < 0.97 else None
    given_names = MALE_NAMES if gender == "male" else FEMALE_NAMES
    family = FAMILY_NAMES[int(rng.random() * len(FAMILY_NAMES))]
    given = given_names[int(rng.random() * len(given_names))]
    age = 18 + int(58 * rng.betavariate(2.2, 2.4))  # 18..75, most 30-55
    birthday = today - timedelta(days=int((age + rng.random()) * 365.25))
    prefecture = PREFECTURES.pick(rng)
    city = prefecture.cities[int(rng.random() * len(prefecture.cities))]
    tail = f"{int(rng.random() * 10_000):04d}"
    postal = f"{city.postal_prefix}{tail}" if rng.random() < 0.1 else f"{city.postal_prefix}-{tail}"
    number = _unique_number(index, digits, 1_234)
    local = (
        f"{given.roman}.{family.roman}{number}",
        f"{family.roman}.{given.roman}{number}",
        f"{given.roman}_{family.roman}{number}",
        f"{given.roman}{number}",
        f"{family.roman}{given.roman[0]}{number}",
    )[int(rng.random() * 5)]
    phone = None
    if with_phone:
        digits8 = _unique_number(index, 8, 31_337)
        prefix = _MOBILE_PREFIXES[int(rng.random() * len(_MOBILE_PREFIXES))]
        phone = f"{prefix}-{digits8[:4]}-{digits8[4:]}"
    return Person(
        family=family,
        given=given,
        gender=gender,
        birthday=birthday,
        prefecture=prefecture.name,
        city=city.name,
        postal_code=postal,
        email=f"{local}@{EMAIL_DOMAINS.pick(rng)}",
        phone=phone,
        preferred_channel=preferred,
    )
