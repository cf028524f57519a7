"""The "now" columns of a profile: values computed against the log clock.

``now_columns`` computes, from a customer's stored facts (``NOW_INPUTS``) and
the log clock, exactly what the ``profiles`` view (``cdp.adapters.duckdb.views``)
computes in SQL: ``age``, ``age_band``, ``lead_score_now``, ``hot_now``,
``days_since_*`` and ``contacts_7d``/``_30d``/``_90d``. ``cdp.read.lookup.derivable``
says whether the view still has the shape this module reproduces. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

from projections import lead_score
from projections.outbound import CONTACT_WINDOWS

NOW_INPUTS = (
    "birthday",
    "lead_score",
    "score_time",
    "lifecycle_stage",
    "last_order_at",
    "last_seen",
    "last_contacted_at",
    "contacts_by_day",
)
"""The stored columns the "now" columns are computed from."""
NOW_COLUMNS = (
    "age",
    "age_band",
    "lead_score_now",
    "hot_now",
    "days_since_last_order",
    "days_since_last_seen",
    "days_since_last_contact",
    *(f"contacts_{window}d" for window in CONTACT_WINDOWS),
)
"""The "now" columns, in the order an answer lists them."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch(moment: datetime) -> float:
    """DuckDB's ``epoch()``: microseconds since 1970 as a double, over 1e6."""
    return ((moment - _EPOCH) // timedelta(microseconds=1)) / 1_000_000


def _and3(*values: bool | None) -> bool | None:
    """SQL's three-valued AND."""
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _derive(
    row: Mapping[str, Any], as_of: datetime, rules: lead_score.Rules, zone: tzinfo
) -> dict[str, Any]:
    """The ``profiles`` view's "now" columns of one customers row, in Python.

    The same arithmetic in the same order as the SQL (``cdp.adapters.duckdb.views``): calendar
    values in the session time zone, day differences counted in boundaries
    crossed, ``epoch`` in double seconds, ``pow`` from the C library. Tests
    compare it with the view on every customer of a generated shop.
    """
    today = as_of.astimezone(zone).date()
    birthday: date | None = row.get("birthday")
    if birthday is None:
        age = None
        band = None
    else:
        age = (today.year - birthday.year) - (
            1 if today.strftime("%m%d") < birthday.strftime("%m%d") else 0
        )
        decades = 10 * math.floor(((today - birthday).days / 365.2425) / 10)
        band = f"{int(min(70.0, max(10.0, decades)))}s"
    score, score_time = row.get("lead_score"), row.get("score_time")
    if score_time is None:
        now_score: float | None = 0.0
        hot: bool | None = _and3(
            None
            if row.get("lifecycle_stage") is None
            else row["lifecycle_stage"] in ("lead", "hot_lead"),
            False,
        )
    else:
        elapsed = max(0.0, _epoch(as_of) - _epoch(score_time))
        decay = math.pow(0.5, elapsed / 86400.0 / float(rules.half_life_days))
        now_score = None if score is None else score * decay
        stage = row.get("lifecycle_stage")
        hot = _and3(
            None if stage is None else stage in ("lead", "hot_lead"),
            True,
            None if now_score is None else now_score >= float(rules.hot_threshold),
        )

    def days_since(moment: datetime | None) -> int | None:
        return None if moment is None else (today - moment.astimezone(zone).date()).days

    derived = {
        "age": age,
        "age_band": band,
        "lead_score_now": now_score,
        "hot_now": hot,
        "days_since_last_order": days_since(row.get("last_order_at")),
        "days_since_last_seen": days_since(row.get("last_seen")),
        "days_since_last_contact": days_since(row.get("last_contacted_at")),
    }
    # Contact counts are by UTC day whatever the session zone (see cdp.views).
    utc_today = as_of.astimezone(UTC).date()
    contact_days = row.get("contacts_by_day") or ()
    for window in CONTACT_WINDOWS:
        first = utc_today - timedelta(days=window)
        derived[f"contacts_{window}d"] = sum(
            d["contacts"] for d in contact_days if first < d["day"] <= utc_today
        )
    return derived


def now_columns(
    row: Mapping[str, Any], as_of: datetime, rules: lead_score.Rules, zone: tzinfo
) -> dict[str, Any]:
    """The ``profiles`` view's "now" columns (``age``, ``age_band``, ``lead_score_now``,
    ``hot_now``, ``days_since_last_order``, ``days_since_last_seen``,
    ``days_since_last_contact``, ``contacts_7d``/``_30d``/``_90d``) of a customers
    row, computed in Python exactly as the view does (check ``derivable`` first)."""
    return _derive(row, as_of, rules, zone)
