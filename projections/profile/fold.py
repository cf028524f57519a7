"""The profile fold: ``fold``, ``apply``, ``project`` and ``combine``.

``fold`` runs a batch through a ``Builder`` (``projections.profile.builder``)
that copies each map of the state on first write only, mutates it in place
and freezes once, so one event costs a few microseconds however large the
profile. ``combine`` merges two states field by field with the rules of
``projections.profile.lww`` and the records' ``merge`` methods.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields
from typing import Final

from projections.profile.builder import Builder, recent_contacts
from projections.profile.lww import (
    earliest,
    later_or_none,
    latest,
    merge_earliest,
    merge_later,
    merge_maps,
    merge_sums,
)
from projections.profile.parts import (
    EmailStats,
    Order,
    SnsAccount,
    Ticket,
    Touches,
)
from projections.profile.sales import Deal, SalesActivity
from projections.profile.state import State, initial
from schemas import AnyEvent

_FIELD_NAMES: Final = tuple(f.name for f in fields(State))


def fold(state: State, events: Iterable[AnyEvent]) -> State:
    """Fold a batch of this customer's events into ``state`` (== reduce of ``apply``)."""
    builder = Builder(state)
    add = builder.add
    for event in events:
        add(event)
    builder.prune_contacts()
    return State(*builder.values(_FIELD_NAMES))


def apply(state: State, event: AnyEvent) -> State:
    """Fold one event into ``state``."""
    return fold(state, (event,))


def project(events: Iterable[AnyEvent]) -> State:
    """The profile of a customer with exactly these events."""
    return fold(initial(), events)


def combine(a: State, b: State) -> State:
    """Two customers merged into one: equals the fold of all their (disjoint) events.

    These are the merge rules of every field. ``fold``'s ``Builder`` applies
    the same rules one event at a time, some of them inlined for speed; the
    property test ``test_combine_equals_folding_the_union``
    (tests/unit/test_profile_properties.py) binds the two.
    """
    last_contacted = latest(a.last_contacted, b.last_contacted)
    return State(
        traits=merge_later(a.traits, b.traits),
        custom_traits=merge_later(a.custom_traits, b.custom_traits),
        consents=merge_later(a.consents, b.consents),
        first_seen=earliest(a.first_seen, b.first_seen),
        last_seen=latest(a.last_seen, b.last_seen),
        last_contacted=last_contacted,
        contacts=recent_contacts(merge_sums(a.contacts, b.contacts), last_contacted),
        message_counts=merge_sums(a.message_counts, b.message_counts),
        track_counts=merge_sums(a.track_counts, b.track_counts),
        last_page=later_or_none(a.last_page, b.last_page),
        viewed_products=merge_maps(a.viewed_products, b.viewed_products, Touches.merge),
        carted_products=merge_maps(a.carted_products, b.carted_products, Touches.merge),
        orders=merge_maps(a.orders, b.orders, Order.merge),
        refunds={**a.refunds, **b.refunds},  # keyed by messageId: disjoint
        campaigns=merge_maps(a.campaigns, b.campaigns, Touches.merge),
        emails=merge_maps(a.emails, b.emails, EmailStats.merge),
        sns=merge_maps(a.sns, b.sns, SnsAccount.merge),
        tickets=merge_maps(a.tickets, b.tickets, Ticket.merge),
        surveys=merge_later(a.surveys, b.surveys),
        nps=later_or_none(a.nps, b.nps),
        groups=merge_earliest(a.groups, b.groups),
        forms=merge_maps(a.forms, b.forms, Touches.merge),
        deals=merge_maps(a.deals, b.deals, Deal.merge),
        sales_activities=merge_maps(a.sales_activities, b.sales_activities, SalesActivity.merge),
    )
