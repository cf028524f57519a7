"""Building the sales events (``schemas.sales``) that the SFA sources write.

HubSpot, Salesforce, kintone and the SFA export import all end here: they
read their vendor's payload into a ``DealFacts`` (a snapshot or a change of
one deal) or an ``ActivityFacts`` and this module decides which contract
event it is and builds the raw Segment track:

- a deal whose stage is one of the configured *won* stages → **Deal Won**,
  one of the *lost* stages → **Deal Lost**;
- a deal the SFA reports as just created → **Deal Created**;
- any other deal change that names the stage → **Deal Stage Changed**;
- a change that names no stage (an amount, name, close date or owner edit
  on HubSpot, a kintone record without the stage field, a Salesforce edit
  message without ``StageName``, an export row without a stage) → **Deal
  Updated**: it carries the fields that changed and implies no status, so it
  never reopens a won deal (guessing a status would);
- a change that names neither a stage nor any deal field says nothing:
  ``UnmappableError`` says so, and the caller skips it with that reason.

The person is named the contract's way: ``userId`` and/or an email or phone in
``context.traits``; SFA events never carry an ``anonymousId``. An event with
none of the three is refused here, with the reason, rather than by
validation later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any, Final, Literal

from cdp.errors import UnmappableError
from connectors.sources.webhooks import RawEvent, amount, drop_none, person_traits, track

DealKind = Literal["created", "changed"]
ACTIVITY_TYPES: Final = ("visit", "call", "meeting", "email", "other")

DEFAULT_ACTIVITY_TYPES: Final[Mapping[str, str]] = {
    # English names SFAs use (Salesforce Task/Event Type and TaskSubtype, HubSpot
    # engagement types) and the Japanese words sales teams type into kintone.
    "visit": "visit",
    "call": "call",
    "meeting": "meeting",
    "email": "email",
    "listemail": "email",
    "other": "other",
    "task": "other",
    "訪問": "visit",
    "来店": "visit",
    "電話": "call",
    "架電": "call",
    "商談": "meeting",
    "打ち合わせ": "meeting",
    "打合せ": "meeting",
    "会議": "meeting",
    "オンライン商談": "meeting",
    "メール": "email",
    "その他": "other",
}
"""Vendor activity names → contract ``activity_type`` (matched case-insensitively);
a configured mapping is consulted first."""


@dataclass(frozen=True, slots=True)
class Person:
    """What the SFA knows of the deal's or activity's contact."""

    user_id: str | None = None
    email: str | None = None
    phone: str | None = None

    def require(self) -> None:
        """``UnmappableError`` unless a ``userId``, usable email or phone names someone."""
        traits = person_traits(self.email, self.phone)
        if self.user_id is None and not traits:
            raise UnmappableError(
                "no person: the payload names no user id, email or phone of a contact "
                "(see docs/sales.md on mapping the contact)"
            )


@dataclass(frozen=True, slots=True)
class Stages:
    """Which stage values mean won and lost (compared exactly, after trimming)."""

    won: frozenset[str] = frozenset()
    lost: frozenset[str] = frozenset()

    @classmethod
    def of(cls, won: Iterable[str], lost: Iterable[str]) -> Stages:
        return cls(frozenset(s.strip() for s in won), frozenset(s.strip() for s in lost))


@dataclass(frozen=True, slots=True)
class DealFacts:
    """One deal as a change reports it; ``None`` is "not said"."""

    deal_id: str
    kind: DealKind
    person: Person
    message_id: str
    timestamp: str | None
    crm: str
    stage: str | None = None
    previous_stage: str | None = None
    name: str | None = None
    """The deal's name (Opportunity Name, HubSpot ``dealname``, a kintone field)."""
    pipeline: str | None = None
    amount: Any = None
    currency: str | None = None
    owner: str | None = None
    close_date: str | None = None
    lost_reason: str | None = None
    verdict: Literal["won", "lost"] | None = None
    """Won/lost as the SFA flags it (Salesforce ``IsWon``/``IsClosed``), whatever the stage."""


@dataclass(frozen=True, slots=True)
class ActivityFacts:
    """One sales activity; ``activity_type`` is the vendor's name for it."""

    activity_id: str
    activity_type: str | None
    person: Person
    message_id: str
    timestamp: str | None
    crm: str
    outcome: str | None = None
    owner: str | None = None
    deal_id: str | None = None


def deal_event(facts: DealFacts, stages: Stages) -> RawEvent:
    """The contract event for a deal change (see the module docstring for the rules)."""
    facts.person.require()
    stage = facts.stage.strip() if facts.stage is not None else None
    props: dict[str, Any] = {
        "deal_id": facts.deal_id,
        "name": facts.name,
        "pipeline": facts.pipeline,
        "stage": stage or None,
        "owner": facts.owner,
        "close_date": _date(facts.close_date),
        "currency": facts.currency.strip().upper() if facts.currency else None,
        "crm": facts.crm,
    }
    if facts.amount is not None and facts.amount != "":
        props["amount"] = amount(facts.amount, "amount")
    if facts.verdict == "won" or (stage and stage in stages.won):
        event = "Deal Won"
    elif facts.verdict == "lost" or (stage and stage in stages.lost):
        event = "Deal Lost"
        props["lost_reason"] = facts.lost_reason
    elif facts.kind == "created":
        event = "Deal Created"
    elif stage:
        event = "Deal Stage Changed"
        props["previous_stage"] = facts.previous_stage
    else:
        event = "Deal Updated"
        props["lost_reason"] = facts.lost_reason
        if not any(props.get(field) is not None for field in _EDITABLE):
            raise UnmappableError(
                f"deal {facts.deal_id}: the change names no stage and no deal field "
                f"({', '.join(_EDITABLE)}): nothing to update"
            )
    return _track(event, facts.message_id, drop_none(props), facts.timestamp, facts.person)


_EDITABLE: Final = (
    "name",
    "pipeline",
    "amount",
    "currency",
    "owner",
    "close_date",
    "lost_reason",
)
"""The deal fields a Deal Updated may carry (one at least)."""


def activity_event(facts: ActivityFacts, types: Mapping[str, str] | None = None) -> RawEvent:
    """**Sales Activity Logged** for an activity; its type through ``types`` then the defaults."""
    facts.person.require()
    props = {
        "activity_id": facts.activity_id,
        "activity_type": activity_type(facts.activity_type, types or {}),
        "outcome": facts.outcome,
        "owner": facts.owner,
        "deal_id": facts.deal_id,
        "crm": facts.crm,
    }
    return _track(
        "Sales Activity Logged", facts.message_id, drop_none(props), facts.timestamp, facts.person
    )


def activity_type(value: str | None, types: Mapping[str, str]) -> str:
    """The contract's ``activity_type`` for a vendor's name (``other`` when unknown or absent)."""
    if value is None or not value.strip():
        return "other"
    text = value.strip()
    for table in (types, DEFAULT_ACTIVITY_TYPES):
        for key, mapped in table.items():
            if key.casefold() == text.casefold():
                return mapped
    return "other"


def text_of(value: Any) -> str | None:
    """A vendor field's value as trimmed text; ``None`` when absent, empty or not a
    scalar (HubSpot properties and kintone cells hold objects and lists too)."""
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None


def _date(value: str | None) -> str | None:
    """A close date as ``YYYY-MM-DD``: the first ten characters of a date or timestamp."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()[:10]
    try:
        date.fromisoformat(text)
    except ValueError:
        raise UnmappableError(f"close_date {value!r} is not a date (YYYY-MM-DD)") from None
    return text


def _track(
    name: str, message_id: str, props: dict[str, Any], timestamp: str | None, person: Person
) -> RawEvent:
    traits = person_traits(person.email, person.phone)
    return track(
        name, message_id, props, timestamp=timestamp, user_id=person.user_id, traits=traits
    )
