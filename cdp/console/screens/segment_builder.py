"""What the segment builder's page hands its script (``static/builder.js``).

The fields a trait/metric condition may test (the language's whitelist,
``segment_lang.fields.FIELDS``, each marked ``trait`` for a profile column or
``metric`` for a computed value), the operators per kind (docs/segments.md),
suggested event names, product ids and property paths, and the words.
"""

from __future__ import annotations

from typing import Any, Final

from cdp.console.screens.segment_reads import Vocabulary
from cdp.console.screens.segment_words import builder_texts
from cdp.services.segment_lang.fields import FIELDS

TRAIT_FIELDS: Final = frozenset(
    name for name, f in FIELDS.items() if f.sql == f"p.{name}" and f.doc == "profile column"
)
"""Profile columns: ``trait`` in the definition; the computed ones are ``metric``."""
PROPERTIES: Final = (
    "products[*].product_id",
    "products[*].category",
    "revenue",
    "order_id",
    "coupon",
    "campaign_id",
    "variant",
    "channel",
    "context.campaign.name",
)
OPS: Final[dict[str, tuple[str, ...]]] = {
    "text": ("eq", "ne", "in", "not_in", "contains", "gt", "gte", "lt", "lte", "between"),
    "number": ("eq", "ne", "gt", "gte", "lt", "lte", "between", "in", "not_in"),
    "bool": ("eq", "ne"),
    "date": ("eq", "ne", "gt", "gte", "lt", "lte", "between"),
    "time": ("eq", "ne", "gt", "gte", "lt", "lte", "between"),
    "list": ("contains", "in", "not_in"),
    "property": ("contains", "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between"),
    "count": ("gte", "eq", "ne", "gt", "lt", "lte", "between"),
}
NULL_OPS: Final = ("is_null", "is_not_null")


def catalog_of(lang: str, vocabulary: Vocabulary, initial: Any, preview_url: str) -> dict[str, Any]:
    """The builder's data: fields, operators, suggestions, words, the definition
    to start from (parsed, or ``None``) and where to ask for the live count."""
    return {
        "fields": [
            {
                "name": f.name,
                "kind": f.kind,
                "doc": f.doc,
                "rule": "trait" if f.name in TRAIT_FIELDS else "metric",
            }
            for f in FIELDS.values()
        ],
        "events": vocabulary.events(),
        "products": vocabulary.products(),
        "properties": list(PROPERTIES),
        "ops": {kind: list(ops) for kind, ops in OPS.items()},
        "null_ops": list(NULL_OPS),
        "texts": builder_texts(lang),
        "initial": initial,
        "preview": preview_url,
    }
