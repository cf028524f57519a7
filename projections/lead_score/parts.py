"""Private helpers of ``projections.lead_score``: exact time and order arithmetic.

Event times become integer microseconds since the epoch, UTC, so that days,
ages and maxima are exact and the fold never accumulates floats. Orders and
refunds merge with operations that are commutative and associative, so the
fold's state does not depend on the order of its events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Final

from pydantic_core import TzInfo

US_PER_DAY: Final = 86_400_000_000
HALF_DAY_US: Final = US_PER_DAY // 2
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()
_ONE_US: Final = timedelta(microseconds=1)
# Offsets of these tzinfo types do not depend on the date, so they can be cached.
_FIXED_OFFSET_TYPES: Final = (timezone, TzInfo)


def from_us(us: int) -> datetime:
    """The UTC time ``us`` µs after the epoch (inverse of ``epoch_us``)."""
    return _EPOCH + timedelta(microseconds=us)


def epoch_us(moment: datetime, offsets: dict[tzinfo | None, int]) -> int:
    """Exact µs since the epoch, UTC (``datetime.timestamp`` is a float)."""
    tz = moment.tzinfo
    offset = offsets.get(tz)
    if offset is None:
        delta = moment.utcoffset()
        if delta is None:
            raise ValueError(f"event time {moment.isoformat()} has no time zone")
        offset = delta // _ONE_US
        if isinstance(tz, _FIXED_OFFSET_TYPES):
            offsets[tz] = offset
    seconds = (
        (moment.toordinal() - EPOCH_ORDINAL) * 86_400
        + moment.hour * 3_600
        + moment.minute * 60
        + moment.second
    )
    return seconds * 1_000_000 + moment.microsecond - offset


def add_order(orders: dict[str, Decimal], order_id: str, revenue: Decimal) -> None:
    """Record an order; a repeated order id keeps one revenue, the larger."""
    seen = orders.get(order_id)
    orders[order_id] = revenue if seen is None else _canonical_max(seen, revenue)


def add_refund(refunds: dict[str, Decimal | None], order_id: str, total: Decimal | None) -> None:
    """Record a refund of ``total`` (``None``: the whole order)."""
    if order_id not in refunds:
        refunds[order_id] = total
        return
    seen = refunds[order_id]
    # A whole-order refund (None) absorbs partial ones; partial amounts add up.
    refunds[order_id] = None if seen is None or total is None else seen + total


DealCell = tuple[int, str, bool]
"""A deal's latest status event: (event time in µs, messageId, won)."""


def add_deal(deals: dict[str, DealCell], deal_id: str, cell: DealCell) -> None:
    """Record a deal event; the later ``(time, messageId)`` decides whether it is won."""
    seen = deals.get(deal_id)
    if seen is None or cell[:2] > seen[:2]:
        deals[deal_id] = cell


def _canonical_max(a: Decimal, b: Decimal) -> Decimal:
    # Equal amounts can differ in exponent (1200 vs 1200.0); pick one by text so
    # the stored value does not depend on which event came first.
    if a != b:
        return max(a, b)
    return max(a, b, key=str)
