"""What a lead record may carry, and how a field mapping turns it into SFA fields.

A mapping names, for each SFA field, a *source*: any column of the
``profiles`` view (``cdp segment fields`` lists them; ``region``, ``city``,
``orders_count``...) or one of ``DERIVED``:

==================  ==========================================================
``customer_id``     the unified customer id (``cus_...``): the record's key
``user_id``         the shop's own user id (the smallest, when several)
``email``/``phone`` normalised (lower-cased e-mail, E.164 phone)
``lead_score``      the lead score as of the last activity, one decimal
``score_reasons``   the top reasons, e.g. ``form_submitted +9.8, product_added +4.9``
``lifecycle_stage`` lead / hot_lead / customer / repeater
``funnel_stage``    awareness / interest / consideration / purchase / retention
``consents``        the purposes consented to, e.g. ``ads,email``
``email_opt_out``   true unless the person consented to e-mail
==================  ==========================================================

The score sent is the one as of the last activity, not the decayed
``lead_score_now``: that one changes every day, and would make every sync
re-send every lead (map ``lead_score_now`` to get it anyway).

Values are JSON: text, numbers, booleans; times become ISO 8601 text and
lists comma-separated text. A missing value (None) is left out of the record,
so an upsert never blanks a field that sales filled in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Final

import duckdb

from cdp.errors import ConfigError

DERIVED: Final = (
    "customer_id",
    "user_id",
    "email",
    "phone",
    "lead_score",
    "score_reasons",
    "lifecycle_stage",
    "funnel_stage",
    "consents",
    "email_opt_out",
)
CONSENT_PURPOSES: Final = ("ads", "analytics", "email", "line", "phone", "sms")
#: Profile columns the derived sources read.
_NEEDED: Final = {
    "lead_score": ("lead_score",),
    "consents": tuple(f"consent_{p}" for p in CONSENT_PURPOSES),
    "email_opt_out": ("consent_email",),
}


def profile_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The columns of the ``profiles`` view."""
    return [str(row[0]) for row in con.execute("DESCRIBE profiles").fetchall()]


def check_sources(destination: str, mapping: Mapping[str, str], columns: Iterable[str]) -> None:
    """``ConfigError`` naming the destination and field of each unknown source."""
    known = set(columns) | set(DERIVED)
    unknown = [f"{field} = {source!r}" for field, source in mapping.items() if source not in known]
    if unknown:
        raise ConfigError(
            f"destination {destination!r}: unknown source in fields: {', '.join(unknown)}; "
            "use a profiles column (cdp segment fields) or one of " + ", ".join(DERIVED)
        )


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, list | tuple):
        return ", ".join(str(_json(v)) for v in value) or None
    if isinstance(value, dict):
        return None  # nested profile values (contacts_by_day) have no SFA field
    return value


def load(
    con: duckdb.DuckDBPyConnection,
    destination: str,
    mapping: Mapping[str, str],
    customer_ids: list[str],
) -> dict[str, dict[str, Any]]:
    """Every mapped source of each customer: ``{customer_id: {source: value}}``."""
    columns = profile_columns(con)
    check_sources(destination, mapping, columns)
    sources = set(mapping.values())
    wanted = {s for s in sources if s in columns}
    for source in sources:
        wanted.update(_NEEDED.get(source, ()))
    wanted.discard("customer_id")
    ordered = sorted(wanted & set(columns))
    select = ", ".join(f'p."{c}"' for c in ["customer_id", *ordered])
    rows = con.execute(
        f"""SELECT {select}, u.user_id FROM profiles p
            LEFT JOIN (SELECT customer_id, min(value) AS user_id FROM identities
                       WHERE kind = 'user_id' GROUP BY customer_id) u USING (customer_id)
            WHERE p.customer_id IN (SELECT unnest(?))""",
        [customer_ids],
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for row in rows:
        profile = dict(zip(["customer_id", *ordered, "user_id"], row, strict=True))
        out[str(profile["customer_id"])] = derive(profile)
    return out


def derive(profile: Mapping[str, Any]) -> dict[str, Any]:
    """Profile values plus the derived sources, as JSON values."""
    values = {name: _json(value) for name, value in profile.items()}
    score = profile.get("lead_score")
    values["lead_score"] = None if score is None else round(float(score), 1)
    given = [p for p in CONSENT_PURPOSES if profile.get(f"consent_{p}") is True]
    values["consents"] = ",".join(given)
    values["email_opt_out"] = profile.get("consent_email") is not True
    return values


def mapped(
    mapping: Mapping[str, str], constants: Mapping[str, Any], values: Mapping[str, Any]
) -> dict[str, Any]:
    """The SFA fields of one record: mapped values (None left out), then the constants."""
    record = {field: values.get(source) for field, source in mapping.items()}
    record = {field: value for field, value in record.items() if value is not None}
    return {**record, **constants}
