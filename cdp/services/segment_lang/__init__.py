"""The segment language: definitions in YAML/JSON compiled to one DuckDB statement.

- ``model``: pydantic models of a definition (rules: all/any/not, trait/metric,
  event, sequence; or raw SQL);
- ``parse``: YAML/JSON text → definition, errors with rule paths;
- ``fields``: the whitelist of profile fields and computed metrics;
- ``compiler``: definition → parameterised SQL returning ``customer_id``;
  ``binding`` binds and checks its values, ``event_sql`` compiles event and
  sequence conditions;
- ``rawsql``: the checks on expert SQL segments;
- ``catalog``: built-ins + saved segments (``<data_dir>/segments/NAME.yaml``);
- ``history``: membership runs, spells and ``current_segments``.

See docs/segments.md for the language reference.
"""

from cdp.services.segment_lang.catalog import CatalogEntry, SegmentCatalog, UnknownSegmentError
from cdp.services.segment_lang.compiler import CompiledSegment, compile_definition
from cdp.services.segment_lang.errors import SegmentRuleError
from cdp.services.segment_lang.history import current_segments
from cdp.services.segment_lang.model import SegmentDefinition
from cdp.services.segment_lang.parse import parse

__all__ = [
    "CatalogEntry",
    "CompiledSegment",
    "SegmentCatalog",
    "SegmentDefinition",
    "SegmentRuleError",
    "UnknownSegmentError",
    "compile_definition",
    "current_segments",
    "parse",
]
