"""The profile's ``sales`` part: deals and sales activities from the SFA (issue 17).

The state keeps two maps (``State.deals`` and ``State.sales_activities``),
each record merging order-independently:

- a ``Deal`` per ``deal_id``: the earliest and the latest event time of the
  deal, the earliest time it was won, and one last-writer-wins cell per field (status, name, pipeline,
  stage, amount with its currency, owner, close date, CRM, lost reason),
  written only by events that state the field; every deal event but Deal
  Updated writes the status its type implies (``schemas.sales.DEAL_STATUS``),
  and Deal Updated writes only the fields it states, so a late edit never
  overwrites a newer fact nor changes the status. A deal known only from
  updates has no status cell and counts as open;
- a ``SalesActivity`` per ``activity_id``: the latest version of the
  activity (an SFA that edits a visit record sends it again, with the same id)
  and the owner named by its latest version naming one.

Everything the profile shows of sales (open deals and their value, won
revenue, the owner, the last stage, the last touch) is derived from the two
maps by ``summary`` when read, never stored, so any order of the events gives
the same state and the same summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from projections.profile.lww import Lww, earliest, from_iso, iso, later, later_or_none
from schemas.sales import DEAL_STATUS, DealEvent, DealLost, DealStatus, DealUpdated

Json = dict[str, Any]
SUMMARY_CURRENCY = "JPY"
"""The currency ``open_deal_value`` and ``won_revenue`` are summed in; deal
amounts in other currencies are kept per deal but not added up."""


class Amount(NamedTuple):
    """A deal amount and its ISO 4217 currency."""

    value: Decimal
    currency: str


class Deal(NamedTuple):
    """One deal (商談), keyed by ``deal_id`` in the profile."""

    first_at: datetime
    """Earliest event time of any event of the deal."""
    last_at: datetime
    """Latest event time of any event of the deal (Deal Updated included)."""
    status: Lww[DealStatus] | None
    """``open``, ``won`` or ``lost``, as the latest deal event implying a status
    implies; ``None`` for a deal known only from Deal Updated (``status_of``: open)."""
    name: Lww[str] | None
    pipeline: Lww[str] | None
    stage: Lww[str] | None
    amount: Lww[Amount] | None
    owner: Lww[str] | None
    close_date: Lww[date] | None
    crm: Lww[str] | None
    lost_reason: Lww[str] | None
    won_first_at: datetime | None = None
    """Earliest event time of a Deal Won of the deal. An SFA may send Deal Won
    again on every edit of a won deal (a Salesforce Flow sends the whole
    opportunity, ``IsWon`` included): the deal was won at the first."""

    def merge(self, other: Deal) -> Deal:
        """Earliest first time and first win, latest last time, and the later of
        each stated field."""
        return Deal(
            self.first_at if self.first_at <= other.first_at else other.first_at,
            self.last_at if self.last_at >= other.last_at else other.last_at,
            later_or_none(self.status, other.status),
            later_or_none(self.name, other.name),
            later_or_none(self.pipeline, other.pipeline),
            later_or_none(self.stage, other.stage),
            later_or_none(self.amount, other.amount),
            later_or_none(self.owner, other.owner),
            later_or_none(self.close_date, other.close_date),
            later_or_none(self.crm, other.crm),
            later_or_none(self.lost_reason, other.lost_reason),
            earliest(self.won_first_at, other.won_first_at),
        )

    @property
    def status_of(self) -> DealStatus:
        """The deal's status now: the status cell's, ``open`` without one."""
        return "open" if self.status is None else self.status.value

    def to_json(self) -> Json:
        """JSON form."""
        return {
            "first_at": iso(self.first_at),
            "last_at": iso(self.last_at),
            "status": _opt_cell(self.status),
            "name": _opt_cell(self.name),
            "pipeline": _opt_cell(self.pipeline),
            "stage": _opt_cell(self.stage),
            "amount": _opt_cell(self.amount, lambda a: [str(a.value), a.currency]),
            "owner": _opt_cell(self.owner),
            "close_date": _opt_cell(self.close_date, date.isoformat),
            "crm": _opt_cell(self.crm),
            "lost_reason": _opt_cell(self.lost_reason),
            "won_first_at": None if self.won_first_at is None else iso(self.won_first_at),
        }

    @staticmethod
    def from_json(data: Json) -> Deal:
        """Inverse of ``to_json``; reads the form before Deal Updated too.

        Before it, every deal event wrote the status, so a snapshot without
        ``last_at`` has the deal's latest time in its status cell, and one
        without ``name`` never had a name. A snapshot without ``won_first_at``
        (before 2026-12-06) knew only its latest Deal Won: the status cell's
        time when the deal is won.
        """
        status = _opt_uncell(data["status"])
        last = data.get("last_at")
        if last is not None:
            last_at = from_iso(last)
        elif status is not None:
            last_at = status.at
        else:
            raise ValueError(f"deal snapshot {data!r} has neither last_at nor a status")
        won = data.get("won_first_at")
        if won is not None:
            won_first_at: datetime | None = from_iso(won)
        else:
            won_first_at = status.at if status is not None and status.value == "won" else None
        return Deal(
            from_iso(data["first_at"]),
            last_at,
            status,
            _opt_uncell(data.get("name")),
            _opt_uncell(data["pipeline"]),
            _opt_uncell(data["stage"]),
            _opt_uncell(data["amount"], lambda v: Amount(Decimal(v[0]), v[1])),
            _opt_uncell(data["owner"]),
            _opt_uncell(data["close_date"], date.fromisoformat),
            _opt_uncell(data["crm"]),
            _opt_uncell(data["lost_reason"]),
            won_first_at,
        )


def deal_of(event: DealEvent, at: datetime, mid: str) -> Deal:
    """The deal record one deal event states, written by ``(at, mid)``: the status
    its type implies (none for Deal Updated) and a cell per field it states."""
    d = event.properties

    def cell(value: Any) -> Lww[Any] | None:
        return None if value is None else Lww(at, mid, value)

    status = DEAL_STATUS.get(type(event))
    reason = event.properties.lost_reason if isinstance(event, DealLost | DealUpdated) else None
    return Deal(
        at,
        at,
        None if status is None else Lww(at, mid, status),
        cell(d.name),
        cell(d.pipeline),
        cell(d.stage),
        None if d.amount is None else Lww(at, mid, Amount(d.amount, d.currency)),
        cell(d.owner),
        cell(d.close_date),
        cell(d.crm),
        cell(reason),
        at if status == "won" else None,
    )


class ActivityFacts(NamedTuple):
    """What one version of a sales activity states."""

    activity_type: str
    """``visit``, ``call``, ``meeting``, ``email`` or ``other``."""
    outcome: str | None
    deal_id: str | None


class SalesActivity(NamedTuple):
    """One sales activity, keyed by ``activity_id``: its latest version, and the
    owner its latest version naming one names."""

    latest: Lww[ActivityFacts]
    owner: Lww[str] | None

    def merge(self, other: SalesActivity) -> SalesActivity:
        """The later version; the later stated owner."""
        return SalesActivity(
            later(self.latest, other.latest), later_or_none(self.owner, other.owner)
        )

    def to_json(self) -> Json:
        """JSON form."""
        return {"latest": _cell(self.latest, ActivityFacts._asdict), "owner": _opt_cell(self.owner)}

    @staticmethod
    def from_json(data: Json) -> SalesActivity:
        """Inverse of ``to_json``."""
        latest = _uncell(data["latest"], lambda v: ActivityFacts(**v))
        return SalesActivity(latest, _opt_uncell(data["owner"]))


def _cell(cell: Lww[Any], encode: Any = None) -> Json:
    value = cell.value if encode is None else encode(cell.value)
    return {"at": iso(cell.at), "message_id": cell.message_id, "value": value}


def _opt_cell(cell: Lww[Any] | None, encode: Any = None) -> Json | None:
    return None if cell is None else _cell(cell, encode)


def _uncell(data: Json, decode: Any = None) -> Lww[Any]:
    value = data["value"] if decode is None else decode(data["value"])
    return Lww(from_iso(data["at"]), data["message_id"], value)


def _opt_uncell(data: Json | None, decode: Any = None) -> Lww[Any] | None:
    return None if data is None else _uncell(data, decode)


class SalesSummary(NamedTuple):
    """What the profile shows of sales: derived from the deals and activities."""

    deals: int
    """Deals known (any status)."""
    open_deals: int
    open_deal_value: Decimal
    """Sum of the open deals' amounts in ``SUMMARY_CURRENCY``."""
    deals_won: int
    won_revenue: Decimal
    """Sum of the won deals' amounts in ``SUMMARY_CURRENCY``."""
    deals_lost: int
    first_deal_at: datetime | None
    """Earliest event time of any deal."""
    first_won_at: datetime | None
    """When the first of the deals now won was won (each deal's earliest Deal
    Won: one sent again on an edit of the won deal does not move it)."""
    last_sales_touch_at: datetime | None
    """Latest sales event of any kind (deal or activity)."""
    sales_owner: str | None
    """Owner named by the latest sales event that names one."""
    last_deal_stage: str | None
    """Stage named by the latest deal event that names one."""
    last_activity_type: str | None
    sales_activities: int
    """Distinct activities logged."""


def summary(deals: Mapping[str, Deal], activities: Mapping[str, SalesActivity]) -> SalesSummary:
    """The sales part as the profile shows it (see ``SalesSummary``)."""
    open_value = won_value = Decimal(0)
    open_n = won_n = lost_n = 0
    first_deal: datetime | None = None
    first_won: datetime | None = None
    last_touch: datetime | None = None
    owner: Lww[str] | None = None
    stage: Lww[str] | None = None
    for deal in deals.values():
        status = deal.status
        amount = deal.amount.value if deal.amount is not None else None
        counted = amount.value if amount and amount.currency == SUMMARY_CURRENCY else Decimal(0)
        if status is None or status.value == "open":  # known only from updates: open
            open_n += 1
            open_value += counted
        elif status.value == "won":
            won_n += 1
            won_value += counted
            first_won = earliest(first_won, deal.won_first_at)
        else:
            lost_n += 1
        first_deal = earliest(first_deal, deal.first_at)
        last_touch = deal.last_at if last_touch is None or deal.last_at > last_touch else last_touch
        owner = later_or_none(owner, deal.owner)
        stage = later_or_none(stage, deal.stage)
    last_activity: Lww[ActivityFacts] | None = None
    for activity in activities.values():
        last_activity = later_or_none(last_activity, activity.latest)
        if last_touch is None or activity.latest.at > last_touch:
            last_touch = activity.latest.at
        owner = later_or_none(owner, activity.owner)
    return SalesSummary(
        deals=len(deals),
        open_deals=open_n,
        open_deal_value=open_value,
        deals_won=won_n,
        won_revenue=won_value,
        deals_lost=lost_n,
        first_deal_at=first_deal,
        first_won_at=first_won,
        last_sales_touch_at=last_touch,
        sales_owner=None if owner is None else owner.value,
        last_deal_stage=None if stage is None else stage.value,
        last_activity_type=None if last_activity is None else last_activity.value.activity_type,
        sales_activities=len(activities),
    )


def won_deals(deals: Mapping[str, Deal]) -> int:
    """Deals whose latest status is won (a won deal makes a customer)."""
    return sum(1 for deal in deals.values() if deal.status_of == "won")
