"""docs/segments.md keeps up with the segment language: every field a ``trait`` /
``metric`` rule accepts is named there, and every full definition it shows
(a YAML block starting with ``name:``) parses and compiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from cdp.services.segment_lang import compile_definition
from cdp.services.segment_lang.fields import FIELDS
from cdp.services.segment_lang.parse import from_data

DOC = Path(__file__).resolve().parents[2] / "docs" / "segments.md"
TEXT = DOC.read_text(encoding="utf-8")
DEFINITIONS = [
    block
    for block in re.findall(r"```yaml\n(.*?)```", TEXT, flags=re.DOTALL)
    if block.startswith("name:")
]


def test_every_field_the_language_accepts_is_named_in_the_doc() -> None:
    missing = sorted(name for name in FIELDS if f"`{name}`" not in TEXT)
    assert not missing, f"docs/segments.md does not name these fields: {missing}"


def test_the_doc_shows_definitions() -> None:
    assert len(DEFINITIONS) >= 2  # the first segment and the sales examples


@pytest.mark.parametrize("block", DEFINITIONS, ids=lambda b: b.split("\n", 1)[0])
def test_every_definition_in_the_doc_compiles(block: str) -> None:
    definition = from_data(yaml.safe_load(block))
    assert "SELECT" in compile_definition(definition).sql
