"""One customer's history for the profile screen: the timeline of events (paged),
the orders, and the lead score day by day.

- :func:`events`: the customer's events, newest first, a page at a time
  (keyset on ``(timestamp, offset)``), attributed exactly as the ``events``
  view does (the rule of ``cdp.read.history.recent_events``: found through the
  customer's own user and anonymous ids by indexed probes, an event whose user
  id belongs to somebody else is theirs; an event with neither id, named only
  by a contact, is not listed, as in the view: docs/sales.md);
- :func:`orders`: the kept orders of the customer as ``ORDERS_SQL``
  (``cdp.services.analytics._base``) keeps them: one per order id, the
  latest version's content placed at the earliest version's time, net of
  refunds, orders refunded in full left out; read from the customer's own
  order events only;
- :func:`score_by_day`: the lead score at the end of each day, from the
  stored lead-score state (its buckets of points per rule and day): the
  score as the buckets up to that day make it, decayed to that moment.
  Buckets older than the state's horizon were pruned, so days long before
  the last activity read a little low (by at most ``0.5 ** horizon_half_lives``
  of the points then).

Each reads only the customer's own rows (no scan of the log).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import duckdb
import orjson

from projections import lead_score

COLUMNS: Final = ("offset", "timestamp", "type", "event", "message_id", "source")
ORDER_EVENTS: Final = ("Order Completed", "Order Refunded")
#: Properties a timeline row summarises (in this order), when the event has them.
DETAIL_KEYS: Final = (
    "order_id",
    "revenue",
    "total",
    "currency",
    "product_id",
    "name",
    "category",
    "path",
    "campaign_name",
    "subject",
    "variant",
    "channel",
    "form_id",
    "deal_id",
    "stage",
    "amount",
    "activity_type",
    "score",
    "consents",
)


@dataclasses.dataclass(frozen=True, slots=True)
class Before:
    """A timeline cursor: events strictly older than this one."""

    timestamp: datetime
    offset: int

    def token(self) -> str:
        """The cursor as text for a link (``offset.microseconds-since-epoch``)."""
        micros = round(self.timestamp.timestamp() * 1_000_000)
        return f"{self.offset}.{micros}"

    @classmethod
    def parse(cls, token: str | None) -> Before | None:
        """The cursor of ``token``; ``None`` for none or a malformed one (first page)."""
        if not token:
            return None
        offset, sep, micros = token.partition(".")
        if not sep or not offset.isdigit() or not micros.lstrip("-").isdigit():
            return None
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(micros))
        return cls(moment, int(offset))


def _identifier_values(identifiers: Sequence[str], kind: str) -> list[str]:
    return [i.partition(":")[2] for i in identifiers if i.startswith(kind + ":")]


def _keyset(before: Before | None, names: Sequence[str] | None) -> tuple[str, list[Any]]:
    """The SQL (``AND ...``) and parameters of the cursor and the name filter."""
    extra, params = "", []
    if before is not None:
        extra += ' AND (timestamp < ? OR (timestamp = ? AND "offset" < ?))'
        params += [before.timestamp, before.timestamp, before.offset]
    if names is not None:
        extra += " AND event IN (SELECT unnest(?))"
        params.append(list(names))
    return extra, params


def _query(
    con: duckdb.DuckDBPyConnection,
    identifiers: Sequence[str],
    before: Before | None,
    names: Sequence[str] | None,
    limit: int | None,
) -> list[tuple[Any, ...]]:
    """``(offset, timestamp, trimmed user id)`` of the events found through the
    customer's identifiers, newest first, at most ``limit`` (not deduplicated)."""
    users = _identifier_values(identifiers, "user_id")
    anons = _identifier_values(identifiers, "anonymous_id")
    probes = [("trim(user_id) = ?", u) for u in users] + [
        ("trim(anonymous_id) = ?", a) for a in anons
    ]
    extra, extra_params = _keyset(before, names)
    rows: list[tuple[Any, ...]] = []
    if probes:
        # Only what orders and attributes the events: every other column is read
        # for the page's events alone (each column costs a read of the customer's
        # scattered rows).
        branches = " UNION ALL ".join(
            f'SELECT "offset", timestamp, trim(user_id) AS _user FROM event_log WHERE {probe}{extra}'
            for probe, _ in probes
        )
        params = [p for _, value in probes for p in [value, *extra_params]]
        sql = f'SELECT * FROM ({branches}) ORDER BY timestamp DESC, "offset" DESC'
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        rows = con.execute(sql, params).fetchall()
    return rows


def events(
    con: duckdb.DuckDBPyConnection,
    customer_id: str,
    identifiers: Sequence[str],
    limit: int,
    before: Before | None = None,
    names: Sequence[str] | None = None,
) -> tuple[list[dict[str, Any]], Before | None]:
    """Up to ``limit`` of the customer's events older than ``before`` (``names``:
    only these event names), newest first, and the cursor of the next page
    (``None`` when there is no more). Each event: ``COLUMNS`` with the payload
    parsed, plus ``detail`` (``DETAIL_KEYS`` found in its properties, the page
    path of a page view)."""
    owner: dict[str, str] = {}
    for user in _identifier_values(identifiers, "user_id"):
        owner[user] = customer_id
    found: list[tuple[Any, ...]] = []
    cursor = before
    seen: set[int] = set()
    while True:
        # Over-read a little: rows found twice (two of our ids) or somebody
        # else's (their user id) are dropped below.
        # An event with both a user and an anonymous id of ours is found twice.
        want = None if limit <= 0 else 2 * (limit + 1 - len(found)) + 8
        rows = _query(con, identifiers, cursor, names, want)
        for row in rows:
            offset, user = row[0], row[2]
            if offset in seen:
                continue
            seen.add(offset)
            if user and _owner_of(con, user, owner) != customer_id:
                continue
            found.append(row)
        if want is None or len(rows) < want or len(found) > limit:
            break
        cursor = Before(rows[-1][1], rows[-1][0])
    more = limit > 0 and len(found) > limit
    rows = found[:limit] if limit > 0 else found
    full = _rows(con, [row[0] for row in rows])
    page = [_event(full[row[0]]) for row in rows]
    nxt = Before(page[-1]["timestamp"], page[-1]["offset"]) if more and page else None
    return page, nxt


def _owner_of(con: duckdb.DuckDBPyConnection, user: str, owner: dict[str, str]) -> str:
    """Who owns a user id we do not (cached in ``owner``); ``""`` for nobody."""
    if user not in owner:
        row = con.execute(
            "SELECT customer_id FROM identity_graph WHERE identifier = ?", [f"user_id:{user}"]
        ).fetchone()
        owner[user] = "" if row is None else str(row[0])
    return owner[user]


def _rows(con: duckdb.DuckDBPyConnection, offsets: list[int]) -> dict[int, tuple[Any, ...]]:
    """``COLUMNS`` and the payload of a page of events, read once the page is
    known (reading them for every event of the customer reads far more of the log)."""
    if not offsets:
        return {}
    columns = ", ".join(f'"{c}"' if c == "offset" else c for c in COLUMNS)
    rows = con.execute(
        f'SELECT {columns}, payload FROM event_log WHERE "offset" IN (SELECT unnest(?))', [offsets]
    ).fetchall()
    return {row[0]: row for row in rows}


def _event(row: tuple[Any, ...]) -> dict[str, Any]:
    event = dict(zip(COLUMNS, row[: len(COLUMNS)], strict=True))
    payload = orjson.loads(row[len(COLUMNS)]) if row[len(COLUMNS)] else {}
    event["payload"] = payload
    properties = payload.get("properties") or {}
    detail = {k: properties[k] for k in DETAIL_KEYS if properties.get(k) not in (None, "", [])}
    page = (payload.get("context") or {}).get("page") or {}
    if event["type"] in ("page", "screen") and "path" not in detail:
        path = properties.get("path") or page.get("path")
        if path:
            detail["path"] = path
    products = properties.get("products")
    if isinstance(products, list) and products:
        detail["products"] = len(products)
    traits = payload.get("traits")
    if event["type"] == "identify" and isinstance(traits, dict) and traits:
        detail["traits"] = ", ".join(sorted(traits))
    event["detail"] = detail
    return event


def _money(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def orders(
    con: duckdb.DuckDBPyConnection, customer_id: str, identifiers: Sequence[str]
) -> list[dict[str, Any]]:
    """The customer's kept orders, newest first: ``order_id``, ``placed_at``,
    ``currency``, ``revenue`` (net), ``refunded``, ``items`` (``product_id``,
    ``name``, ``quantity``, ``price``)."""
    rows, _ = events(con, customer_id, identifiers, 0, names=ORDER_EVENTS)
    versions: dict[str, list[dict[str, Any]]] = {}
    refunds: dict[str, list[Decimal | None]] = {}
    for event in rows:
        if event["type"] != "track":
            continue
        payload = event["payload"]
        properties = payload.get("properties") or {}
        v1 = str(payload.get("schemaVersion") or "") == "1"
        order_id = properties.get("order_id") or (properties.get("orderId") if v1 else None)
        if order_id is None:
            continue
        if event["event"] == "Order Refunded":
            refunds.setdefault(str(properties.get("order_id")), []).append(
                _money(properties.get("total"))
            )
        else:
            versions.setdefault(str(order_id), []).append({**event, "v1": v1})
    kept = []
    for order_id, found in versions.items():
        latest = max(found, key=lambda e: (e["timestamp"], e["message_id"]))
        properties = latest["payload"].get("properties") or {}
        gross = _money(properties.get("revenue"))
        if gross is None and latest["v1"]:
            gross = _money(properties.get("total"))
        refunded = refunds.get(order_id, [])
        if None in refunded:
            continue  # refunded in full
        refund_total = sum((r for r in refunded if r is not None), Decimal(0))
        if refunded and (gross is None or refund_total >= gross):
            continue
        items = [
            {
                "product_id": item.get("product_id") or (item.get("id") if latest["v1"] else None),
                "name": item.get("name"),
                "quantity": item.get("quantity", 1),
                "price": item.get("price"),
            }
            for item in properties.get("products") or []
            if isinstance(item, dict)
        ]
        kept.append(
            {
                "order_id": order_id,
                "placed_at": min(e["timestamp"] for e in found),
                "currency": properties.get("currency") or "JPY",
                "revenue": None if gross is None else gross - refund_total,
                "refunded": refund_total,
                "items": items,
            }
        )
    kept.sort(key=lambda o: (o["placed_at"], o["order_id"]), reverse=True)
    return kept


def lead_state(con: duckdb.DuckDBPyConnection, customer_id: str) -> lead_score.State | None:
    """The customer's stored lead-score state (``None`` for none)."""
    row = con.execute(
        "SELECT lead_state FROM customers WHERE customer_id = ?", [customer_id]
    ).fetchone()
    if row is None or not row[0]:
        return None
    return lead_score.from_json(orjson.loads(row[0]))


def score_by_day(
    state: lead_score.State, rules: lead_score.Rules, first: date, last: date
) -> list[tuple[date, float]]:
    """The lead score at the end of each day from ``first`` to ``last`` (UTC days):
    the points of the buckets up to that day, each decayed from its day's noon
    (as ``lead_score.score_at`` decays them) to the day's end."""
    epoch = date(1970, 1, 1)
    half_life = rules.half_life_days
    points: dict[int, float] = {}
    for bucket in state.buckets:
        rule = rules.rule(bucket.rule)
        if rule is not None:
            points[bucket.day] = points.get(bucket.day, 0.0) + rule.day_points(bucket.events)
    out: list[tuple[date, float]] = []
    start, end = (first - epoch).days, (last - epoch).days
    for number in range(start, end + 1):
        # end of day ``number`` is 1.5 days after the noon of the day before it
        score = sum(
            p * 0.5 ** ((number + 0.5 - day) / half_life)
            for day, p in points.items()
            if day <= number
        )
        out.append((epoch + timedelta(days=number), score))
    return out
