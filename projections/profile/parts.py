"""The records a customer profile is made of, each with its merge and JSON form.

Every record is an immutable ``NamedTuple`` whose ``merge`` is commutative and
associative (sums, min/max, last-writer-wins), so a map of records merges
key-wise and the profile stays independent of event order. ``to_json`` gives
plain JSON values (times as ISO strings in UTC, money as decimal strings);
``from_json`` is its exact inverse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, NamedTuple, TypeVar

from projections.profile.lww import Lww, earliest, from_iso, iso, later, later_or_none, latest

T = TypeVar("T")
Json = dict[str, Any]


def lww_to_json(cell: Lww[T], encode: Callable[[T], Any] | None = None) -> Json:
    """JSON form of a cell; ``encode`` turns a non-JSON value into JSON."""
    value = cell.value if encode is None else encode(cell.value)
    return {"at": iso(cell.at), "message_id": cell.message_id, "value": value}


def lww_from_json(data: Json, decode: Callable[[Any], T] | None = None) -> Lww[T]:
    """Inverse of ``lww_to_json``."""
    value = data["value"] if decode is None else decode(data["value"])
    return Lww(from_iso(data["at"]), data["message_id"], value)


def opt_lww_to_json(cell: Lww[Any] | None) -> Json | None:
    """``lww_to_json`` of an optional cell."""
    return None if cell is None else lww_to_json(cell)


def opt_lww_from_json(data: Json | None) -> Lww[Any] | None:
    """Inverse of ``opt_lww_to_json``."""
    return None if data is None else lww_from_json(data)


def opt_iso(moment: datetime | None) -> str | None:
    """``iso`` of an optional time."""
    return None if moment is None else iso(moment)


def opt_from_iso(text: str | None) -> datetime | None:
    """Inverse of ``opt_iso``."""
    return None if text is None else from_iso(text)


def _opt_decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


class Touches(NamedTuple):
    """How many times something was met, and when first and last."""

    times: int
    first_at: datetime
    last_at: datetime

    def merge(self, other: Touches) -> Touches:
        """Counts add up; first is the min, last the max."""
        return Touches(
            self.times + other.times,
            self.first_at if self.first_at <= other.first_at else other.first_at,
            self.last_at if self.last_at >= other.last_at else other.last_at,
        )

    def to_json(self) -> Json:
        """JSON form."""
        return {"times": self.times, "first_at": iso(self.first_at), "last_at": iso(self.last_at)}

    @staticmethod
    def from_json(data: Json) -> Touches:
        """Inverse of ``to_json``."""
        return Touches(data["times"], from_iso(data["first_at"]), from_iso(data["last_at"]))


class CampaignKey(NamedTuple):
    """A campaign as ``context.campaign`` names it (UTM source, medium, name)."""

    source: str | None
    medium: str | None
    name: str | None

    def sort_key(self) -> tuple[tuple[bool, str], ...]:
        """A total order that never compares ``None`` with a string."""
        return tuple((part is None, part or "") for part in self)


class OrderLine(NamedTuple):
    """One product line of an order."""

    product_id: str
    category: str | None
    quantity: int
    price: Decimal | None


class Order(NamedTuple):
    """One order (Order Completed), keyed by ``order_id`` in the profile.

    The same order sent again (a webhook retry, an edit) replaces the content
    rather than adding a second order: the later version wins, but the order
    keeps the time it was first placed.
    """

    at: datetime
    """Event time of the version kept."""
    message_id: str
    """``messageId`` of the version kept."""
    placed_at: datetime
    """Earliest event time of any version: when the customer bought."""
    revenue: Decimal
    currency: str
    lines: tuple[OrderLine, ...]

    def merge(self, other: Order) -> Order:
        """The later version, placed at the earlier time."""
        newest = later(self, other)
        placed = self.placed_at if self.placed_at <= other.placed_at else other.placed_at
        return newest if newest.placed_at == placed else newest._replace(placed_at=placed)

    def to_json(self) -> Json:
        """JSON form."""
        return {
            "at": iso(self.at),
            "message_id": self.message_id,
            "placed_at": iso(self.placed_at),
            "revenue": str(self.revenue),
            "currency": self.currency,
            "lines": [
                {
                    "product_id": line.product_id,
                    "category": line.category,
                    "quantity": line.quantity,
                    "price": None if line.price is None else str(line.price),
                }
                for line in self.lines
            ],
        }

    @staticmethod
    def from_json(data: Json) -> Order:
        """Inverse of ``to_json``."""
        return Order(
            from_iso(data["at"]),
            data["message_id"],
            from_iso(data["placed_at"]),
            Decimal(data["revenue"]),
            data["currency"],
            tuple(
                OrderLine(
                    line["product_id"],
                    line["category"],
                    line["quantity"],
                    _opt_decimal(line["price"]),
                )
                for line in data["lines"]
            ),
        )


class Refund(NamedTuple):
    """One Order Refunded event, keyed by its ``messageId`` in the profile."""

    at: datetime
    order_id: str
    amount: Decimal | None
    """Amount refunded in the order's currency; ``None`` means the whole order."""

    def to_json(self) -> Json:
        """JSON form."""
        amount = None if self.amount is None else str(self.amount)
        return {"at": iso(self.at), "order_id": self.order_id, "amount": amount}

    @staticmethod
    def from_json(data: Json) -> Refund:
        """Inverse of ``to_json``."""
        return Refund(from_iso(data["at"]), data["order_id"], _opt_decimal(data["amount"]))


class EmailStats(NamedTuple):
    """What one customer did with one email campaign."""

    delivered: int
    opened: int
    clicked: int
    last_at: datetime
    """Time of the latest email event of the campaign."""
    variant: Lww[str] | None
    """A/B variant the customer got (latest stated)."""

    def merge(self, other: EmailStats) -> EmailStats:
        """Counts add up; last time is the max; the later variant wins."""
        return EmailStats(
            self.delivered + other.delivered,
            self.opened + other.opened,
            self.clicked + other.clicked,
            self.last_at if self.last_at >= other.last_at else other.last_at,
            later_or_none(self.variant, other.variant),
        )

    def to_json(self) -> Json:
        """JSON form."""
        return {
            "delivered": self.delivered,
            "opened": self.opened,
            "clicked": self.clicked,
            "last_at": iso(self.last_at),
            "variant": opt_lww_to_json(self.variant),
        }

    @staticmethod
    def from_json(data: Json) -> EmailStats:
        """Inverse of ``to_json``."""
        return EmailStats(
            data["delivered"],
            data["opened"],
            data["clicked"],
            from_iso(data["last_at"]),
            opt_lww_from_json(data["variant"]),
        )


SnsDirection = Literal["received", "sent"]


class SnsMessage(NamedTuple):
    """One SNS message as the profile remembers the latest one."""

    direction: SnsDirection
    """``received`` from the customer or ``sent`` to them."""
    channel_user_id: str
    """The customer's user id on the channel (LINE userId, X id, ...)."""
    text: str | None


class SnsAccount(NamedTuple):
    """The customer on one SNS channel (LINE, X, Instagram)."""

    received: int
    sent: int
    last: Lww[SnsMessage]
    """The latest message either way; its user id is the account's current id."""

    @property
    def user_id(self) -> str:
        """The customer's user id on the channel, as of the latest message."""
        return self.last.value.channel_user_id

    def merge(self, other: SnsAccount) -> SnsAccount:
        """Counts add up; the later message wins."""
        return SnsAccount(
            self.received + other.received, self.sent + other.sent, later(self.last, other.last)
        )

    def to_json(self) -> Json:
        """JSON form."""
        return {
            "received": self.received,
            "sent": self.sent,
            "last": lww_to_json(self.last, SnsMessage._asdict),
        }

    @staticmethod
    def from_json(data: Json) -> SnsAccount:
        """Inverse of ``to_json``."""
        last: Lww[SnsMessage] = lww_from_json(data["last"], lambda v: SnsMessage(**v))
        return SnsAccount(data["received"], data["sent"], last)


TicketStatus = Literal["open", "closed"]


class Ticket(NamedTuple):
    """One support ticket (Support Ticket Opened / Closed)."""

    opened_at: datetime | None
    """First time it was opened (``None``: only its closing was seen)."""
    closed_at: datetime | None
    """Last time it was closed."""
    status: Lww[TicketStatus]
    """Open or closed, as the latest event says (a ticket can be reopened)."""
    subject: Lww[str] | None
    satisfaction: Lww[int] | None
    """Satisfaction score 1-5 given at closing (latest)."""

    def merge(self, other: Ticket) -> Ticket:
        """Earliest opening, latest closing, and the later of each stated field."""
        return Ticket(
            earliest(self.opened_at, other.opened_at),
            latest(self.closed_at, other.closed_at),
            later(self.status, other.status),
            later_or_none(self.subject, other.subject),
            later_or_none(self.satisfaction, other.satisfaction),
        )

    def to_json(self) -> Json:
        """JSON form."""
        return {
            "opened_at": opt_iso(self.opened_at),
            "closed_at": opt_iso(self.closed_at),
            "status": lww_to_json(self.status),
            "subject": opt_lww_to_json(self.subject),
            "satisfaction": opt_lww_to_json(self.satisfaction),
        }

    @staticmethod
    def from_json(data: Json) -> Ticket:
        """Inverse of ``to_json``."""
        return Ticket(
            opt_from_iso(data["opened_at"]),
            opt_from_iso(data["closed_at"]),
            lww_from_json(data["status"]),
            opt_lww_from_json(data["subject"]),
            opt_lww_from_json(data["satisfaction"]),
        )


class SurveyAnswer(NamedTuple):
    """The answers of one Survey Answered event."""

    answers: Mapping[str, Any]
    """Answers keyed by question id, as sent (JSON values)."""
    nps: int | None
    """Net Promoter Score 0-10, when the survey asked for it."""


def map_to_json(items: Mapping[str, Any], encode: Callable[[Any], Any]) -> Json:
    """A string-keyed map of records as a JSON object."""
    return {key: encode(value) for key, value in items.items()}


def map_from_json(data: Json, decode: Callable[[Any], T]) -> dict[str, T]:
    """Inverse of ``map_to_json``."""
    return {key: decode(value) for key, value in data.items()}
