"""Reading a definition from YAML or JSON text into a ``SegmentDefinition``.

Pydantic's errors become ``SegmentRuleError`` problems whose paths read like
the document (``rules.all[2].event.within_days``), not like pydantic's
internal location tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import yaml
from pydantic import ValidationError

from cdp.services.segment_lang.errors import SegmentRuleError
from cdp.services.segment_lang.model import SegmentDefinition

_MESSAGES = {
    "extra_forbidden": "unknown key",
    "missing": "required",
}


def format_path(loc: Sequence[int | str]) -> str:
    """``('rules', 'all', 2, 'event')`` → ``rules.all[2].event``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part.startswith("rule:"):  # discriminator tags are not in the document
            out += f".{part}" if out else part
    return out


def _message(error: Any) -> str:
    kind = error["type"]
    if kind in _MESSAGES:
        return _MESSAGES[kind]
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


def from_data(data: Any) -> SegmentDefinition:
    """Validate a parsed document; ``SegmentRuleError`` listing every problem by path."""
    name = data.get("name") if isinstance(data, dict) else None
    if not isinstance(data, dict):
        raise SegmentRuleError([("", "a segment definition is a mapping (name, rules or sql)")])
    try:
        return SegmentDefinition.model_validate(data)
    except ValidationError as error:
        problems = [(format_path(e["loc"]), _message(e)) for e in error.errors()]
        raise SegmentRuleError(problems, name if isinstance(name, str) else None) from None


def load_text(text: str, fmt: str = "yaml") -> Any:
    """Parse YAML (a superset of JSON) or strict JSON text; ``SegmentRuleError`` if unreadable."""
    try:
        if fmt == "json":
            return orjson.loads(text)
        if fmt == "yaml":
            return yaml.safe_load(text)
    except (orjson.JSONDecodeError, yaml.YAMLError) as error:
        raise SegmentRuleError([("", f"not valid {fmt.upper()}: {error}")]) from None
    raise SegmentRuleError([("", f"unknown format {fmt!r}; use yaml or json")])


def parse(text: str, fmt: str = "yaml") -> SegmentDefinition:
    """A definition from YAML or JSON text (shape only; ``compile`` checks the rest)."""
    return from_data(load_text(text, fmt))


def to_yaml(data: Any) -> str:
    """``data`` as YAML that reads back equal: readable Unicode (Japanese stays as
    written) unless a value holds a character PyYAML would emit raw but read
    back differently (e.g. U+0085, U+2028), then every non-ASCII is escaped."""
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    if yaml.safe_load(text) == data:
        return text
    return yaml.safe_dump(data, allow_unicode=False, sort_keys=False)
