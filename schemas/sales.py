"""Typed sales events: deals and sales activities from the shop's SFA (issue 17).

The contract the inbound SFA connectors (Salesforce, HubSpot, kintone, a CSV
export) write and the profile folds (``projections.profile``, part ``sales``):

============================  ==========================  =======================================
event                         required properties         optional properties
============================  ==========================  =======================================
``Deal Created``              ``deal_id``                 ``name``, ``pipeline``, ``stage``,
                                                          ``amount``, ``currency`` (JPY),
                                                          ``owner``, ``close_date``, ``crm``
``Deal Stage Changed``        ``deal_id``, ``stage``      as above, plus ``previous_stage``
``Deal Won``                  ``deal_id``                 as above (``amount`` is the won amount)
``Deal Lost``                 ``deal_id``                 as above, plus ``lost_reason``
``Deal Updated``              ``deal_id``                 as Deal Lost (the fields that changed)
``Sales Activity Logged``     ``activity_id``,            ``outcome``, ``owner``, ``deal_id``,
                              ``activity_type``           ``crm``
============================  ==========================  =======================================

The person is named by ``userId`` and/or an email or phone in
``context.traits`` (what the SFA knows of its contact): unlike other events a
sales event needs no ``userId``/``anonymousId`` when the traits name the
person. Such an event is stored with the ``anonymousId`` ``contact-<32 hex>``
(``contact_anonymous_id``, given at the door by ``cdp.services.ingest``): a
digest of the contact's email, else phone, the same for every event of that
contact. The event then links that id to the contact's customer like any
event carrying traits, and the ``events`` and ``facts`` views and the lookups
attribute it through the anonymous id as they attribute a browser's events.
``timestamp`` is when the change happened in the SFA. Every type is at schema
version 1 (no upcasters yet).

Created, Stage Changed, Won and Lost each imply the deal's status (open, open,
won, lost: ``DEAL_STATUS``). **Deal Updated** is an edit that implies none (an
amount, name, close date or owner changed, the stage not): it changes the
fields it states and leaves the status as the other deal events set it, so a
late edit never reopens a won deal.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any, Final, Literal

from pydantic import Field, model_validator

from schemas.crm import Code, Money, Props, _TypedTrack
from schemas.identifiers import normalise

ActivityType = Literal["visit", "call", "meeting", "email", "other"]
"""What kind of sales touch an activity was."""
DealStatus = Literal["open", "won", "lost"]
"""Where a deal ended up (the status a Deal event implies)."""
Currency = Field(default="JPY", pattern=r"^[A-Z]{3}$")


class DealProps(Props):
    """A deal (商談) as the SFA describes it; every field but ``deal_id`` optional."""

    deal_id: Code
    """The SFA's own id of the deal (Opportunity Id, HubSpot deal id, kintone record)."""
    name: str | None = None
    """The deal's name in the SFA (Opportunity Name, HubSpot ``dealname``, 案件名)."""
    pipeline: str | None = None
    stage: str | None = None
    """The SFA's stage name as it is (``Prospecting``, ``提案``, ...)."""
    amount: Money | None = None
    """The deal's value; for Deal Won the amount won."""
    currency: str = Currency
    """ISO 4217 code of ``amount``."""
    owner: str | None = None
    """The salesperson who owns the deal (name or SFA user id)."""
    close_date: date | None = None
    """Expected (open) or actual (won/lost) close date."""
    crm: str | None = None
    """Which system said it: ``salesforce``, ``hubspot``, ``kintone``, ``csv``, ..."""


class DealStageProps(DealProps):
    """Deal Stage Changed: the new ``stage`` is required."""

    stage: Code  # narrowed: required here
    previous_stage: str | None = None


class DealLostProps(DealProps):
    """Deal Lost: why, when the SFA says."""

    lost_reason: str | None = None


class DealUpdateProps(DealLostProps):
    """Deal Updated: the fields the edit changed (a lost deal's reason among them)."""


class SalesActivityProps(Props):
    """Sales Activity Logged: a visit, call, meeting or email by a salesperson."""

    activity_id: Code
    activity_type: ActivityType
    outcome: str | None = None
    owner: str | None = None
    deal_id: str | None = None
    """The deal the activity was about, when the SFA links one."""
    crm: str | None = None


class _SalesTrack(_TypedTrack):
    """A typed track named by ``userId`` or by an email/phone in ``context.traits``."""

    @model_validator(mode="after")
    def _needs_an_id(self) -> _SalesTrack:  # replaces Envelope's check of the same name
        if self.user_id is not None or self.anonymous_id is not None:
            return self
        traits = self.context.traits
        if traits is not None and (
            (traits.email is not None and normalise("email", traits.email) is not None)
            or (traits.phone is not None and normalise("phone", traits.phone) is not None)
        ):
            return self
        raise ValueError("needs userId, or an email or phone in context.traits")


class DealCreated(_SalesTrack):
    """A deal was opened for the person."""

    event: Literal["Deal Created"]
    properties: DealProps


class DealStageChanged(_SalesTrack):
    """A deal moved to another stage of its pipeline."""

    event: Literal["Deal Stage Changed"]
    properties: DealStageProps


class DealWon(_SalesTrack):
    """A deal was won (the person becomes a customer)."""

    event: Literal["Deal Won"]
    properties: DealProps


class DealLost(_SalesTrack):
    """A deal was lost."""

    event: Literal["Deal Lost"]
    properties: DealLostProps


class DealUpdated(_SalesTrack):
    """A deal's fields were edited without a stage change; its status stays as it was."""

    event: Literal["Deal Updated"]
    properties: DealUpdateProps


class SalesActivityLogged(_SalesTrack):
    """A salesperson touched the person (visit, call, meeting, email)."""

    event: Literal["Sales Activity Logged"]
    properties: SalesActivityProps


DealStatusEvent = DealCreated | DealStageChanged | DealWon | DealLost
"""The deal events that imply a status (``DEAL_STATUS``)."""
DealEvent = DealStatusEvent | DealUpdated
"""Any deal event."""
SalesEvent = DealEvent | SalesActivityLogged
"""Any sales event."""

DEAL_STATUS: dict[type[_SalesTrack], DealStatus] = {
    DealCreated: "open",
    DealStageChanged: "open",
    DealWon: "won",
    DealLost: "lost",
}
"""The status each deal event implies (Deal Updated implies none)."""

SALES_TRACKS: tuple[type[_SalesTrack], ...] = (
    DealCreated,
    DealStageChanged,
    DealWon,
    DealLost,
    DealUpdated,
    SalesActivityLogged,
)
"""The typed sales tracks, in the order the union lists them."""

SALES_EVENT_NAMES: frozenset[str] = frozenset(
    cls.model_fields["event"].annotation.__args__[0]  # type: ignore[union-attr]  # Literal
    for cls in SALES_TRACKS
)
"""Event names of the sales tracks."""

CONTACT_PREFIX: Final = "contact-"
"""Prefix of the anonymous id a sales event named only by its contact is stored with."""


def contact_anonymous_id(raw: dict[str, Any]) -> str | None:
    """The ``anonymousId`` for a raw sales event named only by an email or phone in
    ``context.traits`` (``None`` for any other event): ``contact-`` and 32 hex digits
    of the SHA-256 of the contact's identifier key (its email, else its phone,
    normalised), so every event of one contact carries the same id."""
    if raw.get("userId") is not None or raw.get("anonymousId") is not None:
        return None
    name = raw.get("event")
    if raw.get("type") != "track" or not isinstance(name, str) or name not in SALES_EVENT_NAMES:
        return None  # not a sales track (a name that is no string is refused by validation)
    context = raw.get("context")
    traits = context.get("traits") if isinstance(context, dict) else None
    if not isinstance(traits, dict):
        return None
    for kind in ("email", "phone"):
        value = traits.get(kind)
        normal = normalise(kind, value) if isinstance(value, str) else None
        if normal is not None:
            digest = hashlib.sha256(f"{kind}:{normal}".encode()).hexdigest()
            return CONTACT_PREFIX + digest[:32]
    return None
