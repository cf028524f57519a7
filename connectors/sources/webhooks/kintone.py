"""kintone webhooks: authenticate by a secret in the URL, map deal and activity apps.

kintone signs nothing (cybozu developer network, "Webhook"; the app's
設定 → Webhook screen takes only a URL). What it allows, and what we do:

- the webhook URL is ours to choose, so it carries a long random **token**
  in its path (``/v1/webhooks/kintone/<token>``), compared in constant time
  (``verify_token``); HTTPS keeps it off the wire;
- optionally, the request must come from kintone's published source
  addresses (``allowed_networks``, CIDR; ``verify_source``).

Body: ``{"id", "type", "app": {"id", "name"}, "record": {field code:
{"type", "value"}}, "recordTitle", "url"}``; ``type`` is ``ADD_RECORD``,
``UPDATE_RECORD``, ``UPDATE_STATUS`` (with ``status``/``nextStatus``),
``DELETE_RECORD`` or ``ADD_RECORD_COMMENT``.

Each app is configured as a ``deal`` app (案件管理) or an ``activity`` app
(営業日報 / 活動履歴) with its field codes (Japanese as they are):

- deal app: ``ADD_RECORD`` → Deal Created; ``UPDATE_RECORD`` /
  ``UPDATE_STATUS`` → Deal Stage Changed, or Deal Won / Deal Lost when the
  stage is a configured won/lost value. The stage is the configured field,
  else the process-management status (the ``STATUS`` field; on
  ``UPDATE_STATUS`` the previous one becomes ``previous_stage``). An update
  whose record has no stage (the stage field empty, or neither a stage field
  nor process management) → Deal Updated with the mapped fields, which leaves
  the deal's status as it was.
- activity app: ``ADD_RECORD`` / ``UPDATE_RECORD`` → Sales Activity Logged,
  ``activity_type`` from the configured field through the app's type table
  and ``deals.DEFAULT_ACTIVITY_TYPES`` (訪問 → visit, 電話 → call, ...).
- other types (deletions, comments) and unconfigured apps are skipped with
  the reason.

``messageId`` is ``kintone:<app>:<record id>:<revision>`` (the ``$id`` and
``$revision`` fields), so a redelivery is one event and each edit its own.
``timestamp`` is the record's ``UPDATED_TIME`` field (更新日時).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from cdp.errors import AuthError, UnmappableError
from connectors.sources.webhooks import (
    Mapped,
    RawEvent,
    Skipped,
    iso_from_text,
    lookup,
    need,
    need_id,
    require_secret,
)
from connectors.sources.webhooks.deals import (
    ActivityFacts,
    DealFacts,
    Person,
    Stages,
    activity_event,
    deal_event,
)
from connectors.sources.webhooks.deals import text_of as _text

CRM: Final = "kintone"
DEAL_FIELDS: Final = (
    "deal_id",
    "name",
    "stage",
    "pipeline",
    "amount",
    "currency",
    "owner",
    "close_date",
    "lost_reason",
)
ACTIVITY_FIELDS: Final = ("activity_type", "outcome", "owner", "deal_id")
PERSON_FIELDS: Final = ("user_id", "email", "phone")


@dataclass(frozen=True, slots=True)
class KintoneApp:
    """How one kintone app's records become sales events."""

    kind: Literal["deal", "activity"]
    fields: Mapping[str, str]
    """Contract name (``amount``, ``email``, ...) → the app's field code (``金額``)."""
    stages: Stages = field(default_factory=Stages)
    activity_types: Mapping[str, str] = field(default_factory=dict)


def verify_token(given: str, secret: str) -> None:
    """The URL's token against the configured one, in constant time; ``AuthError`` if wrong."""
    key = require_secret(secret, "kintone webhook token")
    if not hmac.compare_digest(given.encode("utf-8"), key):
        raise AuthError("the kintone webhook token in the URL is wrong")


def verify_source(address: str | None, networks: Sequence[str]) -> None:
    """The caller's address within ``networks`` (none configured: any); ``AuthError`` if not."""
    if not networks:
        return
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        raise AuthError(f"the caller's address {address!r} is not an IP address") from None
    if not any(ip in ipaddress.ip_network(net, strict=False) for net in networks):
        raise AuthError(f"{ip} is not in the allowed kintone networks")


def to_events(payload: Any, apps: Mapping[str, KintoneApp]) -> Mapped:
    """The sales event of one kintone notification, or why it has none."""
    if not isinstance(payload, dict):
        raise UnmappableError("kintone webhook body must be a JSON object")
    try:
        return Mapped([_event(payload, apps)], [])
    except UnmappableError as error:
        return Mapped([], [Skipped("record", str(error), payload)])


def _event(payload: dict[str, Any], apps: Mapping[str, KintoneApp]) -> RawEvent:
    kind = need(payload, "type")
    app_id = need_id(payload, "app.id")
    app = apps.get(app_id)
    if app is None:
        raise UnmappableError(f"kintone app {app_id} is not configured ([kintone.apps.{app_id}])")
    if kind not in ("ADD_RECORD", "UPDATE_RECORD", "UPDATE_STATUS"):
        raise UnmappableError(f"kintone app {app_id}: notification type {kind!r} has no mapping")
    record = need(payload, "record")
    if not isinstance(record, dict):
        raise UnmappableError(f"kintone app {app_id}: record is not an object")
    record_id = _typed(record, "__ID__") or _value(record, "$id")
    revision = _typed(record, "__REVISION__") or _value(record, "$revision")
    if record_id is None or revision is None:
        raise UnmappableError(f"kintone app {app_id}: the record has no $id or $revision")
    where = f"kintone app {app_id} record {record_id}"
    try:
        updated = _typed(record, "UPDATED_TIME")
        timestamp = None if updated is None else iso_from_text(_utc(updated), "更新日時")
        person = Person(*(_mapped(record, app, name) for name in PERSON_FIELDS))
        message_id = f"kintone:{app_id}:{record_id}:{revision}"
        if app.kind == "activity":
            facts = ActivityFacts(
                activity_id=_mapped(record, app, "activity_id") or record_id,
                activity_type=_mapped(record, app, "activity_type"),
                person=person,
                message_id=message_id,
                timestamp=timestamp,
                crm=CRM,
                outcome=_mapped(record, app, "outcome"),
                owner=_mapped(record, app, "owner"),
                deal_id=_mapped(record, app, "deal_id"),
            )
            return activity_event(facts, app.activity_types)
        stage = _mapped(record, app, "stage")
        previous = None
        if "stage" not in app.fields:  # process management: the STATUS field
            stage = _typed(record, "STATUS")
            if kind == "UPDATE_STATUS":
                stage = _text(lookup(payload, "nextStatus.value")) or stage
                previous = _text(lookup(payload, "status.value"))
        deal = DealFacts(
            deal_id=_mapped(record, app, "deal_id") or record_id,
            kind="created" if kind == "ADD_RECORD" else "changed",
            person=person,
            message_id=message_id,
            timestamp=timestamp,
            crm=CRM,
            stage=stage,
            previous_stage=previous,
            name=_mapped(record, app, "name"),
            pipeline=_mapped(record, app, "pipeline"),
            amount=_mapped(record, app, "amount"),
            currency=_mapped(record, app, "currency"),
            owner=_mapped(record, app, "owner"),
            close_date=_mapped(record, app, "close_date"),
            lost_reason=_mapped(record, app, "lost_reason"),
        )
        return deal_event(deal, app.stages)
    except UnmappableError as error:
        raise UnmappableError(f"{where}: {error}") from None


def _mapped(record: dict[str, Any], app: KintoneApp, name: str) -> str | None:
    code = app.fields.get(name)
    if code is None:
        return None
    if code not in record:
        raise UnmappableError(f"field code {code!r} (for {name}) is not in the record")
    return _value(record, code)


def _value(record: dict[str, Any], code: str) -> str | None:
    """A field's value as text: users/organisations by name, lists joined."""
    cell = record.get(code)
    if not isinstance(cell, dict):
        return None
    value = cell.get("value")
    if isinstance(value, list):  # USER_SELECT, CHECK_BOX, STATUS_ASSIGNEE, ...
        parts = [
            (_text(v.get("name")) or _text(v.get("code"))) if isinstance(v, dict) else _text(v)
            for v in value
        ]
        return ", ".join(p for p in parts if p) or None
    if isinstance(value, dict):  # CREATOR / MODIFIER
        return _text(value.get("name")) or _text(value.get("code"))
    return _text(value)


def _typed(record: dict[str, Any], field_type: str) -> str | None:
    """The value of the record's (first) field of kintone type ``field_type``."""
    for code, cell in record.items():
        if isinstance(cell, dict) and cell.get("type") == field_type:
            return _value(record, code)
    return None


def _utc(value: str) -> str:
    return value.replace("Z", "+00:00")
