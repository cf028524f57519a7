"""Stored events validate each distinct part once.

The log holds every event as the JSON the door validated. Its nested parts
repeat: a visitor's ``context`` (user agent, locale, page, campaign) is the
same on most of their events, and a product's properties are the same on
every ``Product Viewed`` of it. ``PartCache`` keeps the validated model of
each distinct part (keyed by its exact JSON bytes, bounded), and hands it to
validation in place of the dict: pydantic takes a model instance of the
field's own class as it is (``revalidate_instances="never"``), so the event
is validated as before except for the parts already proven.

The contract: the event is equal to what validating the raw dict gives, with
the same types throughout and the same ``model_fields_set`` (the part is
present either way); only the identity of a shared part differs. A part is
shared only when it is deeply immutable (frozen models of strings, numbers,
dates and tuples, no extras that could hold a dict or list), so no event can
change another's. A part that does not validate on its own is left as a dict
for validation to report as before. ``tests/unit/test_fast_decode.py`` binds
this to validation with hypothesis.

Measured on the events of ``cdp generate`` (CPU time, under contention): a
plain-Python builder of the models (``model_construct`` style) was no faster
than pydantic-core (0.92x), which builds the objects in Rust; skipping the
repeated parts is what pays.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Final

import orjson
from pydantic import BaseModel, ValidationError

#: Parts kept per cache before it starts afresh (~1-2 KB each: a few MB a cache).
MAX_PARTS: Final = 4_096
_IMMUTABLE: Final = (str, int, float, bool, Decimal, date, type(None))


def deeply_immutable(value: Any) -> bool:
    """True when nothing inside ``value`` can be changed: frozen models without
    extras, tuples, strings, numbers, dates, ``None``."""
    if isinstance(value, _IMMUTABLE):
        return True
    if isinstance(value, tuple):
        return all(deeply_immutable(item) for item in value)
    if isinstance(value, BaseModel):
        return (
            bool(value.model_config.get("frozen"))
            and not value.__pydantic_extra__
            and all(deeply_immutable(item) for item in value.__dict__.values())
        )
    return False


class PartCache:
    """Validated models of one nested part (say ``context``), by exact JSON.

    Safe to share between threads: a race at worst validates a part twice.
    """

    __slots__ = ("_model", "_parts")

    def __init__(self, model: type[BaseModel]) -> None:
        self._model = model
        self._parts: dict[bytes, BaseModel | None] = {}

    def get(self, value: Any) -> Any:
        """The validated, shareable model of the dict ``value``, or ``value``
        itself when it is not one (validation then reads it as before)."""
        if type(value) is not dict:
            return value
        try:
            key = orjson.dumps(value)
        except orjson.JSONEncodeError:
            return value
        part = self._parts.get(key, self)
        if part is self:
            try:
                built = self._model.model_validate(value)
            except ValidationError:
                built = None
            part = built if built is not None and deeply_immutable(built) else None
            if len(self._parts) >= MAX_PARTS:
                self._parts.clear()
            self._parts[key] = part
        return value if part is None else part


def with_parts(raw: dict[str, Any], caches: dict[str, PartCache]) -> dict[str, Any]:
    """``raw`` with each part named in ``caches`` replaced by its shared model."""
    out = raw
    for name, cache in caches.items():
        value = raw.get(name)
        if value is not None:
            part = cache.get(value)
            if part is not value:
                if out is raw:
                    out = dict(raw)
                out[name] = part
    return out
