"""Typed access to one tracker event's parameters (every value a string).

``ParamReader`` reads text, ids, epoch milliseconds, money, numbers, counts,
currencies and embedded self-describing JSON, collecting a ``Problem`` per bad
field instead of stopping at the first, so a producer sees every mistake at once.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson

from connectors.sources.snowplow.protocol import (
    MAX_ID_LENGTH,
    MONEY_PLACES,
    MONEY_WHOLE_DIGITS,
    Problem,
    is_version_of,
)

# iglu:vendor/name/format/model-revision-addition
_IGLU: Final = re.compile(
    r"^iglu:([a-zA-Z0-9_.-]+)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/(\d+-\d+-\d+)$"
)
_MILLIS: Final = re.compile(r"^\d{1,15}$")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_CURRENCY: Final = re.compile(r"^[A-Za-z]{3}$")


class ParamReader:
    """Typed access to one item's parameters, collecting problems by field."""

    def __init__(self, item: Mapping[str, Any], where: str) -> None:
        self.where = where
        self.problems: list[Problem] = []
        self.values: dict[str, str] = {}
        for name, value in item.items():
            if isinstance(value, str):
                self.values[name] = value
            else:
                kind = "null" if value is None else type(value).__name__
                self.problem(name, f"must be a string (every tracker value is one), not {kind}")

    def problem(self, name: str, reason: str) -> None:
        self.problems.append(Problem(f"{self.where}{name}", reason))

    def text(self, name: str, required: bool = False) -> str | None:
        """A parameter's value; ``None`` when absent or empty (trackers omit empties)."""
        value = self.values.get(name)
        if value:
            return value
        if required:
            self.problem(name, "is required")
        return None

    def ident(self, name: str) -> str | None:
        value = self.text(name)
        if value is not None and len(value) > MAX_ID_LENGTH:
            self.problem(name, f"must be at most {MAX_ID_LENGTH} characters")
            return None
        return value

    def millis(self, name: str) -> str | None:
        """An epoch-milliseconds parameter as ISO-8601 UTC."""
        value = self.text(name)
        if value is None:
            return None
        if not _MILLIS.match(value):
            self.problem(name, f"must be epoch milliseconds (digits), not {value!r}")
            return None
        try:
            moment = _EPOCH + timedelta(milliseconds=int(value))
        except OverflowError:
            self.problem(name, f"{value} ms is after the year 9999")
            return None
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def money(self, name: str, required: bool = False) -> str | None:
        """A non-negative decimal amount, kept as text (exact, like Decimal)."""
        value = self.text(name, required)
        if value is None:
            return None
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = Decimal("NaN")
        if not amount.is_finite() or amount < 0:
            self.problem(name, f"must be a non-negative decimal number, not {value!r}")
            return None
        exponent = amount.as_tuple().exponent
        places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
        if places > MONEY_PLACES or len(amount.as_tuple().digits) - places > MONEY_WHOLE_DIGITS:
            self.problem(
                name,
                f"must have at most {MONEY_WHOLE_DIGITS} digits before the point and "
                f"{MONEY_PLACES} after it, not {value!r}",
            )
            return None
        return str(amount)

    def number(self, name: str) -> int | float | None:
        value = self.text(name)
        if value is None:
            return None
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not math.isfinite(number):
            self.problem(name, f"must be a finite number, not {value!r}")
            return None
        return int(number) if number.is_integer() and abs(number) < 2**53 else number

    def count(self, name: str, minimum: int = 0) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not value.lstrip("-").isdigit() or len(value) > 12 or int(value) < minimum:
            self.problem(name, f"must be an integer of at least {minimum}, not {value!r}")
            return None
        return int(value)

    def currency(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        if not _CURRENCY.match(value):
            self.problem(name, f"must be a 3-letter ISO 4217 code, not {value!r}")
            return None
        return value.upper()

    def json(self, plain: str, encoded: str, schema: str) -> Any:
        """The self-describing JSON in ``plain`` (JSON) or ``encoded`` (base64url).

        Returns its ``data`` after checking its ``schema`` is a 1-0-x version
        of ``schema``; ``None`` when absent or wrong (a problem is recorded).
        """
        name = plain if plain in self.values else encoded
        text = self.values.get(name)
        if not text:
            return None
        if name == encoded:
            decoded = _base64url(text)
            if decoded is None:
                self.problem(name, "is not base64url (RFC 4648 §5) encoded UTF-8 JSON")
                return None
            text = decoded
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            self.problem(name, f"is not valid JSON ({error})")
            return None
        if not isinstance(document, dict) or "data" not in document:
            self.problem(name, 'must be a self-describing JSON {"schema": ..., "data": ...}')
            return None
        given = document.get("schema")
        if not isinstance(given, str) or not is_version_of(given, schema):
            self.problem(f"{name}.schema", f"must be {schema}N, not {given!r}")
            return None
        return document["data"]


def _base64url(text: str) -> str | None:
    """Decode base64url with or without padding (trackers strip it); ``None`` if not."""
    compact = text.strip()
    # Standard-alphabet text is tolerated: some older trackers sent it.
    compact = compact.replace("+", "-").replace("/", "_").rstrip("=")
    if len(compact) % 4 == 1 or not re.fullmatch(r"[A-Za-z0-9_-]*", compact):
        return None
    try:
        raw = base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        return raw.decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None


def self_describing(
    reader: ParamReader, value: Any, field: str
) -> tuple[str, str, str, dict[str, Any]] | None:
    """(vendor, name, uri, data) of an ``{"schema": "iglu:...", "data": {...}}``."""
    if not isinstance(value, dict):
        reader.problem(field, 'must be a self-describing JSON {"schema": ..., "data": ...}')
        return None
    schema, data = value.get("schema"), value.get("data")
    match = _IGLU.match(schema) if isinstance(schema, str) else None
    if match is None or not isinstance(schema, str):
        reader.problem(f"{field}.schema", f"must be an iglu: schema URI, not {schema!r}")
        return None
    if not isinstance(data, dict):
        reader.problem(f"{field}.data", "must be a JSON object")
        return None
    return match.group(1), match.group(2), schema, data
