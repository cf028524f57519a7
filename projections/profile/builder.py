"""The mutable builder behind ``projections.profile.fold``.

Folding a batch event by event into frozen states would copy the profile once
per event. The builder instead takes the ``State`` it starts from, copies each
of its maps the first time an event writes to it (``Thawed``) and mutates the
copies in place; ``fold`` builds one new ``State`` from ``values`` at the end
of the batch.

The merge rules are those of ``projections.profile.fold.combine``. Orders,
SNS accounts and tickets go through the records' own ``merge``, the survey
NPS through ``later_or_none`` and the contact horizon through
``recent_contacts`` (shared with ``combine``). The rules an event applies
most often are inlined instead, because a call per event would cost a
measurable share of the fold: last-writer-wins (``_put``, ``last_page``, as
``lww.beats``), ``Touches.merge`` (``_touch``), ``EmailStats.merge``
(``_email``), first/last seen (``earliest``/``latest``) and group joins
(``merge_earliest``). What binds each inlined copy to its rule is the
property test ``test_combine_equals_folding_the_union`` in
tests/unit/test_profile_properties.py (``combine`` of two folds equals the
fold of all the events, over histories that hold every event kind), with
``test_folding_in_two_halves_equals_folding_at_once`` beside it.

Who acted decides where an event's time goes (``projections.outbound``): the
customer's own events move ``first_seen``/``last_seen``, the shop's contacts
``last_contacted`` and the per-day contact counts, its other records neither.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final, Generic, Protocol, Self, TypeVar, overload

from projections.outbound import CONTACT_EVENTS, CONTACT_HORIZON_DAYS, SHOP_EVENTS
from projections.profile.lww import Lww, later_or_none
from projections.profile.parts import (
    CampaignKey,
    EmailStats,
    Order,
    OrderLine,
    Refund,
    SnsAccount,
    SnsDirection,
    SnsMessage,
    SurveyAnswer,
    Ticket,
    TicketStatus,
    Touches,
)
from projections.profile.sales import ActivityFacts, Deal, SalesActivity, deal_of
from projections.profile.state import State, TraitValue
from schemas import (
    Alias,
    AnyEvent,
    ConsentUpdated,
    EmailDelivered,
    EmailLinkClicked,
    EmailOpened,
    FormSubmitted,
    Group,
    Identify,
    MessageReceived,
    MessageSent,
    OrderCompleted,
    OrderRefunded,
    Page,
    ProductAdded,
    ProductViewed,
    Screen,
    SupportTicketClosed,
    SupportTicketOpened,
    SurveyAnswered,
    Track,
    Traits,
)
from schemas.crm import EmailProps, MessageProps, TicketProps
from schemas.sales import (
    DealCreated,
    DealLost,
    DealStageChanged,
    DealUpdated,
    DealWon,
    SalesActivityLogged,
)

#: ``Address`` fields → trait name; ``state`` holds the prefecture in Japan.
ADDRESS_TRAITS: Final[dict[str, str]] = {
    "state": "region",
    "city": "city",
    "country": "country",
    "postal_code": "postal_code",
    "street": "street",
}
#: ``Lww(...)`` runs NamedTuple's generated ``__new__``, a Python frame; calling
#: ``tuple.__new__`` directly halves the cost of the most frequent allocation.
_new_tuple = tuple.__new__
_K = TypeVar("_K")
_V = TypeVar("_V")
_HORIZON: Final = timedelta(days=CONTACT_HORIZON_DAYS - 1)


def recent_contacts(contacts: Mapping[date, int], last: datetime | None) -> dict[date, int]:
    """``contacts`` without the days before the horizon of the ``last`` contact.

    The latest contact only grows, so a day dropped here would be dropped by
    any later fold too: pruning never depends on the order of events.
    """
    if last is None:
        return dict(contacts)
    cutoff = last.astimezone(UTC).date() - _HORIZON
    return {day: n for day, n in contacts.items() if day >= cutoff}


class Thawed(Generic[_K, _V]):
    """A builder map that becomes a private copy of the base State's map on first read.

    A non-data descriptor: the copy is stored in the builder's ``__dict__``
    under the same name and shadows the descriptor, so later reads are plain
    attribute lookups and maps an event batch never touches are never copied.
    """

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self._name = name

    @overload
    def __get__(self, builder: None, owner: type[Any]) -> Thawed[_K, _V]: ...
    @overload
    def __get__(self, builder: Builder, owner: type[Any]) -> dict[_K, _V]: ...
    def __get__(self, builder: Builder | None, owner: type[Any]) -> dict[_K, _V] | Thawed[_K, _V]:
        if builder is None:
            return self
        copy: dict[_K, _V] = dict(getattr(builder.base, self._name))
        builder.__dict__[self._name] = copy
        return copy


def _put(cells: dict[str, Lww[Any]], key: str, at: datetime, message_id: str, value: Any) -> None:
    """Last-writer-wins write; an event of the same (at, messageId) keeps the first value."""
    old = cells.get(key)
    if old is None or at > old.at or (at == old.at and message_id > old.message_id):
        cells[key] = _new_tuple(Lww, (at, message_id, value))


def _touch(touches: dict[_K, Touches], key: _K, at: datetime) -> None:
    old = touches.get(key)
    if old is None:
        touches[key] = _new_tuple(Touches, (1, at, at))
    else:  # Touches.merge inlined (see the module doc): this runs for every product view
        first = old.first_at if old.first_at <= at else at
        last = old.last_at if old.last_at >= at else at
        touches[key] = _new_tuple(Touches, (old.times + 1, first, last))


class _Mergeable(Protocol):
    def merge(self, other: Self) -> Self: ...


_M = TypeVar("_M", bound=_Mergeable)


def _merge_into(records: dict[str, _M], key: str, record: _M) -> None:
    old = records.get(key)
    records[key] = record if old is None else old.merge(record)


class Builder:
    """A mutable working copy of a ``State`` for one ``fold`` call.

    Attribute names equal ``State`` field names; ``values`` relies on it.
    """

    traits: Thawed[str, Lww[TraitValue]] = Thawed()
    custom_traits: Thawed[str, Lww[Any]] = Thawed()
    consents: Thawed[str, Lww[bool]] = Thawed()
    message_counts: Thawed[str, int] = Thawed()
    track_counts: Thawed[str, int] = Thawed()
    viewed_products: Thawed[str, Touches] = Thawed()
    carted_products: Thawed[str, Touches] = Thawed()
    orders: Thawed[str, Order] = Thawed()
    refunds: Thawed[str, Refund] = Thawed()
    campaigns: Thawed[CampaignKey, Touches] = Thawed()
    emails: Thawed[str, EmailStats] = Thawed()
    sns: Thawed[str, SnsAccount] = Thawed()
    tickets: Thawed[str, Ticket] = Thawed()
    surveys: Thawed[str, Lww[SurveyAnswer]] = Thawed()
    groups: Thawed[str, datetime] = Thawed()
    forms: Thawed[str, Touches] = Thawed()
    contacts: Thawed[date, int] = Thawed()
    deals: Thawed[str, Deal] = Thawed()
    sales_activities: Thawed[str, SalesActivity] = Thawed()

    def __init__(self, base: State) -> None:
        self.base = base
        self.first_seen = base.first_seen
        self.last_seen = base.last_seen
        self.last_contacted = base.last_contacted
        self.last_page = base.last_page
        self.nps = base.nps

    def values(self, names: Iterable[str]) -> list[Any]:
        """The values of the ``State`` fields ``names`` as this builder now holds them."""
        own, base = self.__dict__, self.base
        return [own[name] if name in own else getattr(base, name) for name in names]

    def prune_contacts(self) -> None:
        """Drop contact days beyond the horizon (before ``values``, once per batch)."""
        if "contacts" in self.__dict__:  # untouched: the base state is pruned already
            self.__dict__["contacts"] = recent_contacts(self.contacts, self.last_contacted)

    def _count_track(self, name: str) -> None:
        counts = self.message_counts
        counts["track"] = counts.get("track", 0) + 1
        counts = self.track_counts
        counts[name] = counts.get(name, 0) + 1

    def add(self, event: AnyEvent) -> None:
        """Fold one event in."""
        at, mid = event.timestamp, event.message_id
        if at.tzinfo is not UTC:
            # Comparing datetimes whose tzinfo objects differ calls utcoffset() on
            # both, and pydantic's TzInfo makes that ~0.6 us; one conversion here
            # makes every comparison below (and in later folds) a plain C compare.
            at = at.astimezone(UTC)
        # A dict lookup, not ``event.event``: most message types have no such field.
        name = event.__dict__.get("event")
        if name not in SHOP_EVENTS:  # the customer acted
            if self.first_seen is None or at < self.first_seen:
                self.first_seen = at
            if self.last_seen is None or at > self.last_seen:
                self.last_seen = at
        elif name in CONTACT_EVENTS:  # the shop reached the customer
            if self.last_contacted is None or at > self.last_contacted:
                self.last_contacted = at
            contacts = self.contacts
            day = at.date()
            contacts[day] = contacts.get(day, 0) + 1
        counts = self.message_counts
        context = event.context
        # Cases are ordered by how common the event is: each miss costs an isinstance.
        match event:
            case Page():
                counts["page"] = counts.get("page", 0) + 1
                path = event.properties.get("path")
                if not isinstance(path, str) and context.page is not None:
                    path = context.page.path
                if isinstance(path, str):
                    last = self.last_page
                    if last is None or at > last.at or (at == last.at and mid > last.message_id):
                        self.last_page = _new_tuple(Lww, (at, mid, path))
            case ProductViewed():
                self._count_track(event.event)
                _touch(self.viewed_products, event.properties.product_id, at)
            case Track():
                self._count_track(event.event)
            case Identify():
                counts["identify"] = counts.get("identify", 0) + 1
                self._take_traits(event.traits, at, mid)
            case ProductAdded():
                self._count_track(event.event)
                _touch(self.carted_products, event.properties.product_id, at)
            case EmailDelivered():
                self._count_track(event.event)
                self._email(event.properties, at, mid, 1, 0, 0)
            case EmailOpened():
                self._count_track(event.event)
                self._email(event.properties, at, mid, 0, 1, 0)
            case EmailLinkClicked():
                self._count_track(event.event)
                self._email(event.properties, at, mid, 0, 0, 1)
            case Screen():
                counts["screen"] = counts.get("screen", 0) + 1
            case OrderCompleted():
                self._count_track(event.event)
                o = event.properties
                lines = tuple(
                    OrderLine(p.product_id, p.category, p.quantity, p.price) for p in o.products
                )
                order = Order(at, mid, at, o.revenue, o.currency, lines)
                _merge_into(self.orders, o.order_id, order)
            case MessageReceived():
                self._count_track(event.event)
                self._sns(event.properties, at, mid, "received")
            case MessageSent():
                self._count_track(event.event)
                self._sns(event.properties, at, mid, "sent")
            case FormSubmitted():
                self._count_track(event.event)
                _touch(self.forms, event.properties.form_id, at)
            case SurveyAnswered():
                self._count_track(event.event)
                s = event.properties
                _put(self.surveys, s.survey_id, at, mid, SurveyAnswer(dict(s.answers), s.nps))
                if s.nps is not None:
                    self.nps = later_or_none(self.nps, Lww(at, mid, s.nps))
            case ConsentUpdated():
                self._count_track(event.event)
                consents = self.consents
                for purpose, granted in event.properties.consents.items():
                    _put(consents, purpose, at, mid, granted)
            case SupportTicketOpened():
                self._count_track(event.event)
                self._ticket(event.properties, at, mid, "open")
            case SupportTicketClosed():
                self._count_track(event.event)
                self._ticket(event.properties, at, mid, "closed")
            case OrderRefunded():
                self._count_track(event.event)
                r = event.properties
                self.refunds[mid] = Refund(at, r.order_id, r.total)
            case Group():
                counts["group"] = counts.get("group", 0) + 1
                groups = self.groups
                joined = groups.get(event.group_id)
                if joined is None or at < joined:
                    groups[event.group_id] = at
            case Alias():
                counts["alias"] = counts.get("alias", 0) + 1
            case DealCreated() | DealStageChanged() | DealWon() | DealLost() | DealUpdated():
                self._count_track(event.event)
                _merge_into(self.deals, event.properties.deal_id, deal_of(event, at, mid))
            case SalesActivityLogged():
                self._count_track(event.event)
                a = event.properties
                facts = Lww(at, mid, ActivityFacts(a.activity_type, a.outcome, a.deal_id))
                owner = None if a.owner is None else Lww(at, mid, a.owner)
                _merge_into(self.sales_activities, a.activity_id, SalesActivity(facts, owner))
            case _:
                # A message type this fold does not know yet: count it, keep going.
                kind = str(getattr(event, "type", "unknown"))
                counts[kind] = counts.get(kind, 0) + 1
        # After the identify traits: at the same (at, messageId) the first write
        # stays, so explicit traits win over context traits of the same event.
        if context.traits is not None:
            self._take_traits(context.traits, at, mid)
        campaign = context.campaign
        if campaign is not None:
            key = CampaignKey(campaign.source, campaign.medium, campaign.name)
            if key != (None, None, None):
                _touch(self.campaigns, key, at)

    def _email(
        self, props: EmailProps, at: datetime, mid: str, delivered: int, opened: int, clicked: int
    ) -> None:
        variant = None if props.variant is None else Lww(at, mid, props.variant)
        emails = self.emails
        old = emails.get(props.campaign_id)
        if old is None:
            emails[props.campaign_id] = EmailStats(delivered, opened, clicked, at, variant)
        else:  # EmailStats.merge inlined (see the module doc): email events are many
            emails[props.campaign_id] = EmailStats(
                old.delivered + delivered,
                old.opened + opened,
                old.clicked + clicked,
                old.last_at if old.last_at >= at else at,
                later_or_none(old.variant, variant),
            )

    def _sns(self, props: MessageProps, at: datetime, mid: str, direction: SnsDirection) -> None:
        received = direction == "received"
        message = SnsMessage(direction, props.channel_user_id, props.text)
        account = SnsAccount(int(received), int(not received), Lww(at, mid, message))
        _merge_into(self.sns, props.channel, account)

    def _ticket(self, props: TicketProps, at: datetime, mid: str, status: TicketStatus) -> None:
        opened = status == "open"
        ticket = Ticket(
            at if opened else None,
            None if opened else at,
            Lww(at, mid, status),
            None if props.subject is None else Lww(at, mid, props.subject),
            None if props.satisfaction is None else Lww(at, mid, props.satisfaction),
        )
        _merge_into(self.tickets, props.ticket_id, ticket)

    def _take_traits(self, traits: Traits, at: datetime, mid: str) -> None:
        extra = traits.model_extra or {}
        for name in traits.model_fields_set:
            if name in extra:
                if extra[name] is not None:  # null means "not known", never "erase"
                    _put(self.custom_traits, name, at, mid, extra[name])
            elif name == "address":
                address = traits.address
                if address is None:
                    continue
                for part, trait in ADDRESS_TRAITS.items():
                    value = getattr(address, part)
                    if value is not None:
                        _put(self.traits, trait, at, mid, value)
                for part, value in (address.model_extra or {}).items():
                    if value is not None:
                        _put(self.custom_traits, f"address.{part}", at, mid, value)
            else:
                value = getattr(traits, name)
                if value is not None:
                    _put(self.traits, name, at, mid, value)
