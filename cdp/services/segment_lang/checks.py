"""What ``cdp segment validate`` reports beyond "the definition compiles".

- ``save_state``: whether the definition is saved in the catalog, and as what
  (so validate never claims "saved" for a file that was not);
- ``event_warnings``: event names in the rules that never occur in the data,
  with the closest name that does ("Order Complete": did you mean "Order
  Completed"?). A warning, not an error: a segment may be written before its
  first event arrives.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import duckdb

from cdp.errors import CdpError
from cdp.services import segments
from cdp.services.segment_lang.catalog import SegmentCatalog
from cdp.services.segment_lang.model import (
    AllRule,
    AnyRule,
    EventRule,
    EventSpec,
    NotRule,
    Rule,
    SegmentDefinition,
    SequenceRule,
)
from cdp.services.segment_lang.parse import from_data, load_text


class SaveState(Enum):
    """A definition file compared with the catalog of a data directory."""

    NOT_SAVED = "not saved"
    SAVED = "saved"  # the catalog holds this very definition
    SAVED_DIFFERENT = "saved with a different definition"
    BUILTIN_NAME = "name of a built-in segment"


def save_state(catalog: SegmentCatalog, definition: SegmentDefinition) -> SaveState:
    """Whether ``definition`` is what the catalog holds under its name."""
    if definition.name in segments.BUILTIN:
        return SaveState.BUILTIN_NAME
    if definition.name not in catalog.saved_names():
        return SaveState.NOT_SAVED
    path = catalog.directory / f"{definition.name}.yaml"
    try:
        saved = from_data(load_text(path.read_text(encoding="utf-8"), "yaml"))
    except (OSError, CdpError):  # a broken saved file differs from a valid definition
        return SaveState.SAVED_DIFFERENT
    return SaveState.SAVED if saved == definition else SaveState.SAVED_DIFFERENT


def _specs(rule: Rule) -> Iterator[EventSpec]:
    if isinstance(rule, AllRule):
        for child in rule.all:
            yield from _specs(child)
    elif isinstance(rule, AnyRule):
        for child in rule.any:
            yield from _specs(child)
    elif isinstance(rule, NotRule):
        yield from _specs(rule.not_)
    elif isinstance(rule, EventRule):
        yield rule.event
    elif isinstance(rule, SequenceRule):
        sequence = rule.sequence
        yield sequence.first
        for follower in (sequence.then, sequence.not_then):
            if follower is not None:
                yield follower


def event_names(definition: SegmentDefinition) -> list[str]:
    """The event names the rules test, ``$param`` names resolved to their
    defaults, in order of first appearance (empty for a raw-SQL segment)."""
    if definition.rules is None:
        return []
    names: dict[str, None] = {}
    for spec in _specs(definition.rules):
        for name in [spec.name] if isinstance(spec.name, str) else spec.name:
            resolved = _resolve(name, definition)
            if resolved:
                names[resolved] = None
    return list(names)


def _resolve(name: str, definition: SegmentDefinition) -> str | None:
    if name.startswith("$$"):
        return name[1:]
    if name.startswith("$"):
        value = definition.params.get(name[1:])
        return value if isinstance(value, str) else None
    return name


@dataclass(frozen=True, slots=True)
class EventWarning:
    """An event name that never occurs in the data, and the closest that does."""

    name: str
    suggestion: str | None

    def __str__(self) -> str:
        text = f"event {self.name!r} never occurs in the data"
        if self.suggestion is not None:
            return f"{text}; did you mean {self.suggestion!r}?"
        return text


def event_warnings(
    con: duckdb.DuckDBPyConnection, definition: SegmentDefinition
) -> list[EventWarning]:
    """One warning per event name of the rules that no stored event carries."""
    wanted = event_names(definition)
    if not wanted:
        return []
    rows = con.execute("SELECT DISTINCT event FROM events WHERE event IS NOT NULL").fetchall()
    known = sorted(str(row[0]) for row in rows)
    present = set(known)
    warnings = []
    for name in wanted:
        if name in present:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        if not close:  # case and spacing slips: "order completed"
            folded = {k.casefold(): k for k in known}
            match = folded.get(name.casefold())
            close = [match] if match else []
        warnings.append(EventWarning(name, close[0] if close else None))
    return warnings
