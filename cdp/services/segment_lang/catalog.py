"""The segment catalog: built-ins plus saved definitions in the data directory.

Saved segments live as ``<data_dir>/segments/NAME.yaml`` (written atomically:
temporary file, fsync, rename). Built-ins (``cdp.services.segments.BUILTIN``) are
hand-written SQL; saved ones are compiled from rules or are raw SQL. All three
kinds run, explain and export the same way::

    catalog = SegmentCatalog(settings.data_dir)
    catalog.names()                       # built-ins + saved, sorted
    catalog.get("tokyo_repeaters").sql    # compiled with the default parameters
    catalog.run(con, "lapsed_repeaters", {"lapsed_days": "60"})
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import duckdb

from cdp.atomic import write_atomically
from cdp.errors import NotFoundError, SegmentError
from cdp.services import segments
from cdp.services.segment_lang.compiler import CompiledSegment, compile_definition
from cdp.services.segment_lang.errors import SegmentRuleError
from cdp.services.segment_lang.model import NAME_PATTERN, Scalar, SegmentDefinition
from cdp.services.segment_lang.parse import from_data, load_text, to_yaml
from cdp.services.segments import SegmentResult

Kind = Literal["builtin", "saved", "sql"]
SEGMENTS_DIR = "segments"


class UnknownSegmentError(NotFoundError, SegmentError):
    """No built-in or saved segment has this name."""


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One runnable segment: its SQL with the default parameters, and how to rebind it."""

    name: str
    description: str
    sql: str
    params: dict[str, Scalar]
    kind: Kind
    purpose: str = ""
    path: Path | None = None
    definition: SegmentDefinition | None = field(default=None, repr=False)
    values: dict[str, Any] = field(default_factory=dict)

    def compile(self, overrides: Mapping[str, str] | None = None) -> CompiledSegment:
        """The statement and bound values with ``overrides`` applied."""
        if self.definition is not None:
            return compile_definition(self.definition, overrides)
        bound = segments.bind(segments.get(self.name), overrides)
        return CompiledSegment(self.sql, dict(bound), dict(bound))


def fill(text: str, params: Mapping[str, Any]) -> str:
    """A description with ``$name`` parameters replaced by their values (longest first)."""
    for key in sorted(params, key=len, reverse=True):
        text = text.replace(f"${key}", str(params[key]))
    return text


def builtin_entry(segment: segments.Segment) -> CatalogEntry:
    """A built-in segment as a catalog entry."""
    params: dict[str, Scalar] = dict(segment.params)
    return CatalogEntry(
        segment.name,
        segments.describe(segment),
        segment.sql,
        params,
        "builtin",
        segment.purpose,
        values=dict(params),
    )


def definition_entry(definition: SegmentDefinition, path: Path | None = None) -> CatalogEntry:
    """A definition compiled with its defaults (``SegmentRuleError`` if invalid)."""
    compiled = compile_definition(definition)
    return CatalogEntry(
        definition.name,
        fill(definition.description, definition.params),
        compiled.sql,
        dict(definition.params),
        definition.kind,
        path=path,
        definition=definition,
        values=compiled.values,
    )


def execute(con: duckdb.DuckDBPyConnection, name: str, compiled: CompiledSegment) -> SegmentResult:
    """Run a compiled segment; members (distinct, in the query's order)."""
    try:
        cursor = con.execute(compiled.sql, compiled.values)
        columns = [d[0].lower() for d in cursor.description or []]
        if "customer_id" not in columns:
            raise SegmentError(f"segment {name!r} must return a customer_id column")
        index = columns.index("customer_id")
        rows = cursor.fetchall()
    except duckdb.Error as error:
        raise SegmentError(f"segment {name!r} failed: {str(error).strip()}") from None
    members = list(dict.fromkeys(str(r[index]) for r in rows if r[index] is not None))
    return SegmentResult(name, len(members), members, dict(compiled.params))


def dry_run(con: duckdb.DuckDBPyConnection, name: str, compiled: CompiledSegment) -> None:
    """Bind the statement against the data without reading it (names, types, customer_id)."""
    try:
        cursor = con.execute(f"SELECT * FROM ({compiled.sql}) AS checked LIMIT 0", compiled.values)
        columns = [d[0].lower() for d in cursor.description or []]
        cursor.fetchall()
    except duckdb.Error as error:
        raise SegmentError(f"segment {name!r} does not run: {str(error).strip()}") from None
    if "customer_id" not in columns:
        raise SegmentError(f"segment {name!r} must return a customer_id column")


class SegmentCatalog:
    """Built-in and saved segments of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.directory = Path(data_dir) / SEGMENTS_DIR

    def _path(self, name: str) -> Path:
        if not _valid_name(name):
            raise UnknownSegmentError(f"no segment named {name!r} (names match {NAME_PATTERN})")
        return self.directory / f"{name}.yaml"

    def saved_names(self) -> list[str]:
        """Names of the saved segments."""
        if not self.directory.is_dir():
            return []
        return sorted(p.stem for p in self.directory.glob("*.yaml") if _valid_name(p.stem))

    def names(self) -> list[str]:
        """Built-ins and saved segments, sorted."""
        return sorted(set(segments.BUILTIN) | set(self.saved_names()))

    def get(self, name: str) -> CatalogEntry:
        """The entry named ``name``; ``UnknownSegmentError`` listing the names if none."""
        if name in segments.BUILTIN:
            return builtin_entry(segments.BUILTIN[name])
        path = self._path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UnknownSegmentError(
                f"no segment named {name!r}; known: {', '.join(self.names())}"
            ) from None
        definition = from_data(load_text(text, "yaml"))
        if definition.name != name:
            raise SegmentError(f"{path}: defines {definition.name!r}, expected {name!r}")
        return definition_entry(definition, path)

    def entries(self) -> list[CatalogEntry]:
        """Every entry, sorted by name (a broken saved file raises)."""
        return [self.get(name) for name in self.names()]

    def run(
        self,
        con: duckdb.DuckDBPyConnection,
        name: str,
        overrides: Mapping[str, str] | None = None,
    ) -> SegmentResult:
        """Evaluate a segment by name with optional parameter overrides."""
        return execute(con, name, self.get(name).compile(overrides))

    def save(
        self, definition_text: str, fmt: str = "yaml", *, replace: bool = False
    ) -> CatalogEntry:
        """Validate and store a definition; ``replace`` to overwrite a saved one."""
        data = load_text(definition_text, fmt)
        definition = from_data(data)
        entry = definition_entry(definition)
        if definition.name in segments.BUILTIN:
            raise SegmentError(f"{definition.name!r} is a built-in segment; choose another name")
        path = self._path(definition.name)
        if path.exists() and not replace:
            raise SegmentError(
                f"segment {definition.name!r} exists; pass --replace to overwrite it"
            )
        text = definition_text if fmt == "yaml" else to_yaml(data)
        _write_atomically(path, text)
        return dataclasses.replace(entry, path=path)

    def delete(self, name: str) -> None:
        """Remove a saved segment (its recorded history stays)."""
        if name in segments.BUILTIN:
            raise SegmentError(f"{name!r} is a built-in segment and cannot be deleted")
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise UnknownSegmentError(f"no saved segment named {name!r}") from None


_NAME = re.compile(NAME_PATTERN.removeprefix("^").removesuffix("$"))


def _valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def _write_atomically(path: Path, text: str) -> None:
    write_atomically(path, text.encode("utf-8"))


__all__ = [
    "CatalogEntry",
    "SegmentCatalog",
    "SegmentRuleError",
    "UnknownSegmentError",
    "builtin_entry",
    "definition_entry",
    "dry_run",
    "execute",
]
