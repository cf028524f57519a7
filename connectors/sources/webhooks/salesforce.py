"""Salesforce Outbound Messages: check the organisation, map the SOAP notifications.

An Outbound Message (Setup → Process Automation → Outbound Messages, sent by
a Flow or workflow rule) is a SOAP 1.1 request (``text/xml``)::

    <soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
     <soapenv:Body>
      <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
       <OrganizationId>00D…</OrganizationId>
       <ActionId>04k…</ActionId>
       <Notification>
        <Id>04l…</Id>
        <sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
         <sf:Id>006…</sf:Id> <sf:StageName>…</sf:StageName> …
        </sObject>
       </Notification> …
      </notifications>
     </soapenv:Body>
    </soapenv:Envelope>

and Salesforce expects ``ACK`` (``acknowledgement()``), else it retries the
same notifications (same ``Notification/Id``) for up to 24 hours.

Authentication: Outbound Messages are not signed. The ``OrganizationId`` in
the body must be the configured one (compared on its first 15 characters,
so the 15- and 18-character forms both work); any other organisation is
refused with ``AuthError``. docs/sales.md adds what the network can do
(HTTPS only; Salesforce's published IP ranges).

Parsing: the standard library's parser, with DTDs and entity declarations
refused (``defusedxml``'s rules; it is used when installed), so a body
cannot expand entities or reach files.

Mapping (``crm`` is ``salesforce``; ``messageId`` ``salesforce:<Notification Id>``;
``timestamp`` the record's ``LastModifiedDate``, else ``SystemModstamp``):

- ``Opportunity``: ``IsWon`` true → Deal Won; ``IsClosed`` true and not won →
  Deal Lost (``Loss_Reason__c`` if sent); ``CreatedDate`` equal to
  ``LastModifiedDate`` → Deal Created; otherwise Deal Stage Changed with
  ``StageName``; a message without ``StageName`` (nor ``IsWon``/``IsClosed``:
  an "edit" Outbound Message a Flow sends when the amount, name, close date
  or owner changed and the stage did not) → Deal Updated, which leaves the
  deal's status as it was. ``Name``, ``Amount``, ``CloseDate``, ``OwnerId``,
  ``CurrencyIsoCode`` (multi-currency orgs) and the pipeline
  (``RecordTypeId``) are carried when the message includes them.
- ``Task`` / ``Event``: Sales Activity Logged; the type from ``TaskSubtype``,
  else ``Type`` (``Call``, ``Email``, ``Meeting``, ``訪問``, ... see
  ``deals.DEFAULT_ACTIVITY_TYPES``); the outcome from ``CallDisposition``,
  else ``Status``; ``WhatId`` as ``deal_id`` when it is an Opportunity (``006``).
- The person: Outbound Messages carry only the object's own fields, so the
  fields naming the contact are configured (``[salesforce.person]``:
  typically formula fields such as ``Contact_Email__c`` or the external id
  the lead push writes, e.g. ``CDP_Customer_Id__c``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any, Final
from xml.parsers import expat

from cdp.errors import AuthError, UnmappableError
from connectors.sources.webhooks import Mapped, RawEvent, Skipped, iso_from_text
from connectors.sources.webhooks.deals import (
    ActivityFacts,
    DealFacts,
    Person,
    Stages,
    activity_event,
    deal_event,
)

SOAP_NS: Final = "http://schemas.xmlsoap.org/soap/envelope/"
OUTBOUND_NS: Final = "http://soap.sforce.com/2005/09/outbound"
XSI_NS: Final = "http://www.w3.org/2001/XMLSchema-instance"
CRM: Final = "salesforce"
_NO_STAGE_RULES: Final = Stages()  # Salesforce flags won/lost itself (IsWon, IsClosed)
ACK: Final = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<soapenv:Envelope xmlns:soapenv="{SOAP_NS}">'
    "<soapenv:Body>"
    f'<notificationsResponse xmlns="{OUTBOUND_NS}"><Ack>true</Ack></notificationsResponse>'
    "</soapenv:Body>"
    "</soapenv:Envelope>"
)
"""The acknowledgement Salesforce expects (answer it as ``text/xml``)."""


@dataclass(frozen=True, slots=True)
class SalesforceMapping:
    """What the Outbound Message mapping is configured with (``[salesforce]``)."""

    organization_id: str
    user_id_field: str | None = None
    email_field: str | None = None
    phone_field: str | None = None
    lost_reason_field: str = "Loss_Reason__c"
    activity_types: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Notifications:
    """A parsed, organisation-checked Outbound Message."""

    organization_id: str
    action_id: str | None
    items: list[tuple[str, str, dict[str, str]]]
    """``(notification Id, sObject type, {field: text})`` per Notification."""


def acknowledgement() -> bytes:
    """The SOAP body that tells Salesforce the notifications were received."""
    return ACK.encode("utf-8")


def parse(body: bytes) -> ET.Element:
    """The XML document of ``body``; DTDs and entities refused; ``UnmappableError`` if not XML."""
    try:
        from defusedxml.ElementTree import (  # type: ignore[import-untyped]  # optional, no stubs  # noqa: PLC0415
            fromstring,
        )
    except ImportError:
        return _parse_stdlib(body)
    try:
        root: ET.Element = fromstring(body)
    except Exception as error:  # defusedxml raises its own DTD/entity errors
        raise UnmappableError(f"Salesforce message is not acceptable XML: {error}") from None
    return root


def _parse_stdlib(body: bytes) -> ET.Element:
    """Refuse any DTD first (a pass of expat that raises on one), then parse.

    Without a DTD no entity can be declared, so only XML's five predefined
    entities exist: nothing expands and nothing external is fetched.
    """

    def refuse(*_args: Any) -> int:
        raise UnmappableError("Salesforce message declares a DTD or entity; refused")

    guard = expat.ParserCreate()
    guard.StartDoctypeDeclHandler = refuse
    guard.EntityDeclHandler = refuse
    guard.UnparsedEntityDeclHandler = refuse
    guard.ExternalEntityRefHandler = refuse
    try:
        guard.Parse(body, True)
        return ET.fromstring(body)
    except (expat.ExpatError, ET.ParseError) as error:
        raise UnmappableError(f"Salesforce message is not well-formed XML: {error}") from None


def read(body: bytes, organization_id: str) -> Notifications:
    """Parse ``body`` and check its organisation; ``AuthError`` for another org's message.

    ``UnmappableError`` when it is not an Outbound Message at all.
    """
    if not organization_id.strip():
        raise AuthError("the Salesforce organization id is not configured")
    root = parse(body)
    notes = root.find(f"{{{SOAP_NS}}}Body/{{{OUTBOUND_NS}}}notifications")
    if notes is None:
        raise UnmappableError("not a Salesforce Outbound Message: no soapenv:Body/notifications")
    org = (notes.findtext(f"{{{OUTBOUND_NS}}}OrganizationId") or "").strip()
    if org[:15] != organization_id.strip()[:15] or len(org) < 15:
        raise AuthError(f"OrganizationId {org!r} is not the configured Salesforce organisation")
    items = []
    for i, note in enumerate(notes.findall(f"{{{OUTBOUND_NS}}}Notification")):
        note_id = (note.findtext(f"{{{OUTBOUND_NS}}}Id") or "").strip()
        sobject = note.find(f"{{{OUTBOUND_NS}}}sObject")
        if not note_id or sobject is None:
            raise UnmappableError(f"Notification[{i}] has no Id or no sObject")
        kind = sobject.get(f"{{{XSI_NS}}}type", "").split(":")[-1]
        fields = {
            child.tag.rsplit("}", 1)[-1]: (child.text or "").strip()
            for child in sobject
            if child.get(f"{{{XSI_NS}}}nil") != "true"
        }
        items.append((note_id, kind, fields))
    return Notifications(org, notes.findtext(f"{{{OUTBOUND_NS}}}ActionId"), items)


def to_events(message: Notifications, mapping: SalesforceMapping) -> Mapped:
    """Raw sales events for each notification, and the ones that could not be mapped."""
    events: list[RawEvent] = []
    skipped: list[Skipped] = []
    for i, (note_id, kind, fields) in enumerate(message.items):
        try:
            events.append(_event(note_id, kind, fields, mapping))
        except UnmappableError as error:
            reason = f"Salesforce {kind or 'sObject'} {fields.get('Id', '?')}: {error}"
            skipped.append(
                Skipped(f"Notification[{i}]", reason, skipped_item(note_id, kind, fields))
            )
    return Mapped(events, skipped)


def skipped_item(note_id: str, kind: str, fields: dict[str, str]) -> dict[str, Any]:
    """The JSON form a skipped notification is dead-lettered in: ``{"Id": <notification
    Id>, <sObject type>: {field: text}}`` (``from_skipped_item`` reads it back)."""
    return {"Id": note_id, kind: fields}


def from_skipped_item(item: Any, organization_id: str) -> Notifications:
    """The one-notification message a ``skipped_item`` stands for (its organisation
    was checked when it arrived); ``UnmappableError`` if ``item`` is not that form."""
    if not isinstance(item, dict) or not isinstance(item.get("Id"), str) or len(item) != 2:
        raise UnmappableError('a stored Salesforce notification must be {"Id": ..., type: fields}')
    note_id = item["Id"]
    kind, fields = next((k, v) for k, v in item.items() if k != "Id")
    if not isinstance(fields, dict) or not all(isinstance(v, str) for v in fields.values()):
        raise UnmappableError(f"stored Salesforce notification {note_id}: fields are not text")
    return Notifications(organization_id, None, [(note_id, kind, fields)])


def _event(note_id: str, kind: str, fields: dict[str, str], mapping: SalesforceMapping) -> RawEvent:
    record_id = fields.get("Id")
    if not record_id:
        raise UnmappableError("sObject has no Id field")
    person = Person(
        _field(fields, mapping.user_id_field),
        _field(fields, mapping.email_field),
        _field(fields, mapping.phone_field),
    )
    message_id = f"salesforce:{note_id}"
    timestamp = _when(fields)
    if kind == "Opportunity":
        return deal_event(
            _opportunity(record_id, fields, person, message_id, timestamp, mapping), _NO_STAGE_RULES
        )
    if kind in ("Task", "Event"):
        what = fields.get("WhatId") or ""
        facts = ActivityFacts(
            activity_id=record_id,
            activity_type=fields.get("TaskSubtype") or fields.get("Type") or kind,
            person=person,
            message_id=message_id,
            timestamp=timestamp,
            crm=CRM,
            outcome=fields.get("CallDisposition") or fields.get("Status") or None,
            owner=fields.get("OwnerId") or None,
            deal_id=what if what.startswith("006") else None,
        )
        return activity_event(facts, mapping.activity_types)
    raise UnmappableError(f"sObject type {kind!r} has no sales mapping (Opportunity, Task, Event)")


def _opportunity(
    record_id: str,
    fields: dict[str, str],
    person: Person,
    message_id: str,
    timestamp: str | None,
    mapping: SalesforceMapping,
) -> DealFacts:
    closed = fields.get("IsClosed") == "true"
    won = fields.get("IsWon") == "true"
    created = bool(fields.get("CreatedDate")) and fields.get("CreatedDate") == fields.get(
        "LastModifiedDate"
    )
    return DealFacts(
        deal_id=record_id,
        kind="created" if created else "changed",
        person=person,
        message_id=message_id,
        timestamp=timestamp,
        crm=CRM,
        stage=fields.get("StageName") or None,
        name=fields.get("Name") or None,
        pipeline=fields.get("RecordTypeId") or None,
        amount=fields.get("Amount") or None,
        currency=fields.get("CurrencyIsoCode") or None,
        owner=fields.get("OwnerId") or None,
        close_date=fields.get("CloseDate") or None,
        lost_reason=fields.get(mapping.lost_reason_field) or None,
        verdict="won" if won else "lost" if closed else None,
    )


def _field(fields: dict[str, str], name: str | None) -> str | None:
    if name is None:
        return None
    return fields.get(name) or None


def _when(fields: dict[str, str]) -> str | None:
    for name in ("LastModifiedDate", "SystemModstamp", "CreatedDate"):
        value = fields.get(name)
        if value:
            return iso_from_text(value.replace("Z", "+00:00"), name)
    return None
