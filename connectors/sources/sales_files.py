"""Import of an SFA export (CSV) as sales events, for shops whose SFA sends no webhooks.

A mapping file (TOML) says what the export's columns mean::

    kind = "deal"                 # or "activity"
    crm = "salesforce"            # recorded as the events' crm (default "csv")
    encoding = "cp932"            # the file's encoding (default utf-8, BOM allowed)
    timezone = "+09:00"           # offset of times written without one (default +09:00)
    won_stages = ["受注", "Closed Won"]
    lost_stages = ["失注", "Closed Lost"]

    [columns]                     # contract name = the export's column header
    deal_id = "商談ID"
    stage = "フェーズ"
    amount = "金額"
    close_date = "完了予定日"
    owner = "商談 所有者"
    email = "メール"
    updated_at = "最終更新日"

    [activity_types]              # activity files: the export's words → visit/call/...
    "訪問" = "visit"

Column names: ``deal_id`` (required for deals), ``activity_id`` and
``activity_type`` (activities), ``name`` (the deal's), ``stage``, ``pipeline``, ``amount``,
``currency``, ``owner``, ``close_date``, ``lost_reason``, ``outcome``,
``user_id``, ``email``, ``phone``, ``updated_at`` (the SFA's modification
time: the event time; without it the import time is used).

Each row is one snapshot: a deal row in a won/lost stage is Deal Won / Deal
Lost, a row with another stage Deal Stage Changed, a row without a stage (or
a file without a stage column) Deal Updated: the row's fields, no status, so
a re-exported won deal is not reopened and a deal first seen this way counts
as open; an activity row is Sales Activity Logged (``deals``). The
``messageId`` is ``csv:<crm>:<deal|activity>:<id>:`` plus a hash of the
row's mapped values, so importing the same export again adds nothing and a
row that changed since is a new event.

A bad row becomes a ``RowError`` with its line number and the column; the
good rows go on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, Literal

from cdp.errors import ConfigError, InputFileError, UnmappableError
from connectors.sources.webhooks import RawEvent, amount, iso
from connectors.sources.webhooks.deals import (
    ActivityFacts,
    DealFacts,
    Person,
    Stages,
    activity_event,
    deal_event,
)

COLUMN_NAMES: Final = frozenset(
    {
        "deal_id",
        "activity_id",
        "activity_type",
        "name",
        "stage",
        "pipeline",
        "amount",
        "currency",
        "owner",
        "close_date",
        "lost_reason",
        "outcome",
        "user_id",
        "email",
        "phone",
        "updated_at",
    }
)
_TIME_FORMATS: Final = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
)


@dataclass(frozen=True, slots=True)
class ExportMapping:
    """What an SFA export's columns mean (read from the mapping file)."""

    kind: Literal["deal", "activity"]
    columns: dict[str, str]
    crm: str = "csv"
    encoding: str = "utf-8-sig"
    timezone: str = "+09:00"
    stages: Stages = field(default_factory=Stages)
    activity_types: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RowError:
    """One row that became no event: where, which column, why."""

    location: str
    column: str | None
    message: str

    def __str__(self) -> str:
        column = f" column {self.column!r}:" if self.column else ""
        return f"{self.location}:{column} {self.message}"


class _CellError(UnmappableError):
    def __init__(self, column: str | None, message: str) -> None:
        self.column = column
        super().__init__(message)


def load_mapping(path: Path) -> ExportMapping:
    """The mapping file at ``path``; ``ConfigError`` naming the file and key if wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigError(f"{path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    known = {"kind", "crm", "encoding", "timezone", "won_stages", "lost_stages"}
    extra = sorted(set(data) - known - {"columns", "activity_types"})
    if extra:
        raise ConfigError(f"{path}: unknown keys {extra}")
    kind = data.get("kind")
    if kind not in ("deal", "activity"):
        raise ConfigError(f'{path}: kind must be "deal" or "activity", not {kind!r}')
    columns = data.get("columns")
    if not isinstance(columns, dict) or not all(isinstance(v, str) for v in columns.values()):
        raise ConfigError(f"{path}: [columns] must map contract names to column headers")
    unknown = sorted(set(columns) - COLUMN_NAMES)
    if unknown:
        raise ConfigError(f"{path}: [columns] has unknown names {unknown}")
    needed = "deal_id" if kind == "deal" else "activity_id"
    if needed not in columns:
        raise ConfigError(f"{path}: [columns] needs {needed}")
    offset = str(data.get("timezone", "+09:00"))
    try:
        datetime.fromisoformat(f"2026-01-01T00:00:00{offset}")
    except ValueError:
        raise ConfigError(f"{path}: timezone {offset!r} is not an offset like +09:00") from None
    return ExportMapping(
        kind=kind,
        columns=dict(columns),
        crm=str(data.get("crm", "csv")),
        encoding=str(data.get("encoding", "utf-8-sig")),
        timezone=offset,
        stages=Stages.of(data.get("won_stages", []), data.get("lost_stages", [])),
        activity_types={str(k): str(v) for k, v in dict(data.get("activity_types", {})).items()},
    )


def read_rows(path: Path, mapping: ExportMapping) -> Iterator[tuple[str, RawEvent | RowError]]:
    """``(location, event or error)`` per data row of the export, in file order."""
    try:
        text = path.read_bytes().decode(mapping.encoding)
    except OSError as error:
        raise InputFileError(f"{path}: {error.strerror or error}") from None
    except (UnicodeDecodeError, LookupError) as error:
        raise InputFileError(f"{path}: not {mapping.encoding} text ({error})") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    missing = sorted(c for c in mapping.columns.values() if c not in header)
    if missing:
        raise InputFileError(f"{path}: the header has no column {', '.join(map(repr, missing))}")
    for row in reader:
        location = f"{path.name}:{reader.line_num}"
        try:
            yield location, _event(row, mapping)
        except _CellError as error:
            yield location, RowError(location, error.column, str(error))
        except UnmappableError as error:
            yield location, RowError(location, None, str(error))


def _event(row: dict[str, Any], mapping: ExportMapping) -> RawEvent:
    def cell(name: str) -> str | None:
        column = mapping.columns.get(name)
        if column is None:
            return None
        value = row.get(column)
        return value.strip() if isinstance(value, str) and value.strip() else None

    def checked(name: str, parse: Any) -> Any:
        value = cell(name)
        if value is None:
            return None
        try:
            return parse(value)
        except UnmappableError as error:
            raise _CellError(mapping.columns[name], str(error).removeprefix(f"{name} ")) from None

    record_id = cell("deal_id" if mapping.kind == "deal" else "activity_id")
    if record_id is None:
        name = "deal_id" if mapping.kind == "deal" else "activity_id"
        raise _CellError(mapping.columns[name], "is empty")
    values = {name: cell(name) for name in sorted(mapping.columns)}
    digest = hashlib.sha256(repr(sorted(values.items())).encode()).hexdigest()[:24]
    message_id = f"csv:{mapping.crm}:{mapping.kind}:{record_id}:{digest}"
    timestamp = checked("updated_at", lambda v: _time(v, mapping.timezone))
    person = Person(cell("user_id"), cell("email"), cell("phone"))
    if mapping.kind == "activity":
        facts = ActivityFacts(
            activity_id=record_id,
            activity_type=cell("activity_type"),
            person=person,
            message_id=message_id,
            timestamp=timestamp,
            crm=mapping.crm,
            outcome=cell("outcome"),
            owner=cell("owner"),
            deal_id=cell("deal_id"),
        )
        return activity_event(facts, mapping.activity_types)
    # A row is a snapshot, never known to be the deal's creation: without a
    # stage it is an edit (Deal Updated), which implies no status.
    deal = DealFacts(
        deal_id=record_id,
        kind="changed",
        person=person,
        message_id=message_id,
        timestamp=timestamp,
        crm=mapping.crm,
        stage=cell("stage"),
        name=cell("name"),
        pipeline=cell("pipeline"),
        amount=checked("amount", lambda v: amount(v.replace(",", "").lstrip("¥￥"), "amount")),
        currency=cell("currency"),
        owner=cell("owner"),
        close_date=checked("close_date", _date),
        lost_reason=cell("lost_reason"),
    )
    return deal_event(deal, mapping.stages)


def _date(value: str) -> str:
    text = value.replace("/", "-")
    try:
        return datetime.strptime(text[:10], "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise UnmappableError(f"{value!r} is not a date (YYYY-MM-DD or YYYY/MM/DD)") from None


def _time(value: str, offset: str) -> str:
    """A modification time; one without an offset is in the mapping's ``timezone``."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        moment = None
        for fmt in _TIME_FORMATS:
            try:
                moment = datetime.strptime(value, fmt)
                break
            except ValueError:
                continue
    if moment is None:
        raise UnmappableError(f"{value!r} is not a date and time")
    if moment.tzinfo is None:
        sign = -1 if offset.startswith("-") else 1
        hours, _, minutes = offset.lstrip("+-").partition(":")
        delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
        moment = moment.replace(tzinfo=timezone(sign * delta))
    return iso(moment)
