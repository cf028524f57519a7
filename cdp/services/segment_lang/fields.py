"""The whitelist of profile fields and computed metrics a rule may test.

Every name maps to a SQL expression over the ``profiles`` view (alias ``p``)
or the RFM scores (alias ``r``), and to a kind that decides which operators
and values are allowed. Names never reach SQL any other way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from cdp.runtime.columns import LEAD_SCORE_COLUMNS, PROFILE_COLUMNS
from cdp.services.analytics.rfm import RFM_DETAIL_SQL
from cdp.services.analytics.rfm import SEGMENTS as RFM_SEGMENTS
from projections.outbound import CONTACT_WINDOWS

Kind = Literal["text", "number", "bool", "date", "time", "list"]

_KIND_OF_TYPE: Final[dict[str, Kind]] = {
    "VARCHAR": "text",
    "DATE": "date",
    "TIMESTAMPTZ": "time",
    "BOOLEAN": "bool",
    "VARCHAR[]": "list",
}


def _kind(sql_type: str) -> Kind | None:
    if sql_type in _KIND_OF_TYPE:
        return _KIND_OF_TYPE[sql_type]
    if sql_type.startswith(("INTEGER", "BIGINT", "DECIMAL", "DOUBLE")):
        return "number"
    return None  # JSON state columns are not testable


@dataclass(frozen=True, slots=True)
class Field:
    """A testable name: its SQL expression, kind and meaning."""

    name: str
    sql: str
    kind: Kind
    doc: str = ""
    rfm: bool = False


def _columns() -> dict[str, Field]:
    out: dict[str, Field] = {}
    for name, sql_type in {**PROFILE_COLUMNS, **LEAD_SCORE_COLUMNS}.items():
        kind = _kind(sql_type)
        if kind is not None:
            out[name] = Field(name, f"p.{name}", kind, "profile column")
    return out


#: The named RFM segments are the analytics' (``cdp analytics rfm``), one definition.
RFM_SEGMENT_NAMES: Final = RFM_SEGMENTS

_COMPUTED: Final = (
    Field("age", "p.age", "number", "age in whole years at the log clock"),
    Field("age_band", "p.age_band", "text", "'10s' … '70s' at the log clock"),
    Field("lead_score_now", "p.lead_score_now", "number", "lead score decayed to the log clock"),
    Field("hot_now", "p.hot_now", "bool", "lead or hot lead whose decayed score is hot"),
    Field("days_since_last_order", "p.days_since_last_order", "number", "recency in days"),
    Field(
        "days_since_last_seen",
        "p.days_since_last_seen",
        "number",
        "days since the customer's own last event (the shop's contacts do not count)",
    ),
    Field(
        "days_since_last_contact",
        "p.days_since_last_contact",
        "number",
        "days since the shop last contacted the customer (email delivered, message sent, push)",
    ),
    *(
        Field(
            f"contacts_{days}d",
            f"p.contacts_{days}d",
            "number",
            f"the shop's contacts on the {days} UTC days up to the log clock's",
        )
        for days in CONTACT_WINDOWS
    ),
    Field(
        "days_since_first_order",
        "date_diff('day', p.first_order_at, k.as_of)",
        "number",
        "days since the first order",
    ),
    Field("recency", "p.days_since_last_order", "number", "= days_since_last_order (RFM R)"),
    Field("frequency", "p.orders_count", "number", "= orders_count (RFM F)"),
    Field("monetary", "p.revenue", "number", "= revenue (RFM M)"),
    Field("ltv", "p.revenue", "number", "realised lifetime value: net revenue to date"),
    Field("r_score", "r.r_score", "number", "RFM recency score 1–5 among buyers", rfm=True),
    Field("f_score", "r.f_score", "number", "RFM frequency score 1–5 among buyers", rfm=True),
    Field("m_score", "r.m_score", "number", "RFM monetary score 1–5 among buyers", rfm=True),
    Field(
        "rfm_score",
        "CAST(r.r_score AS VARCHAR) || CAST(r.f_score AS VARCHAR) || CAST(r.m_score AS VARCHAR)",
        "text",
        "the three scores as text, e.g. '545'",
        rfm=True,
    ),
    Field("rfm_segment", "r.rfm_segment", "text", "named RFM segment (see docs)", rfm=True),
)

FIELDS: Final[dict[str, Field]] = {**_columns(), **{f.name: f for f in _COMPUTED}}
"""Every name a ``trait`` / ``metric`` rule may use."""

#: The scores and segment of ``cdp.services.analytics.rfm`` (one definition for the RFM
#: report and for segments); NULL for customers with no order.
RFM_CTE: Final = (
    "rfm AS (SELECT customer_id, r AS r_score, f AS f_score, m AS m_score, rfm_segment "
    f"FROM ({RFM_DETAIL_SQL}))"
)
