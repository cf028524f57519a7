"""What the Audiences screen shows of each configured destination.

One :class:`AudienceRow` per (destination, segment) with sync state, from the
same sources as ``cdp destinations list`` and ``cdp destinations status``
(``destinations.toml`` and the sync journal under ``<data dir>/sync/``). A
destination nothing was synced to yet has one row without numbers (an SFA's
row names the segment it pushes).

Cost: the journal's members file holds every synced member, so its parse
grows with the audience; :class:`StatusCache` keeps each audience's status
until its journal or members file changes (a stat per audience per view).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdp.errors import CdpError
from connectors.destinations.push import config as push_config
from connectors.destinations.push.audience_sync import segments_synced, status
from connectors.destinations.push.journal import Journal
from connectors.destinations.sfa.base import RECORD_ERRORS
from connectors.destinations.sfa.config import HubSpot, Kintone, Salesforce

#: Refused SFA records shown per audience (``cdp destinations status`` lists all).
REFUSED_SHOWN = 50


def is_sfa(destination: push_config.AnyDestination) -> bool:
    """Whether ``destination`` is a sales-force-automation push (lead hand-over)."""
    return isinstance(destination, Salesforce | HubSpot | Kintone)


def missing_secrets(destination: push_config.AnyDestination) -> list[str]:
    """The secrets the destination cannot resolve now (``env:`` variables unset)."""
    missing = []
    for field in destination.secret_fields:
        try:
            destination.secret(field)
        except CdpError:
            missing.append(field.removesuffix("_value"))
    return missing


@dataclass(frozen=True, slots=True)
class AudienceRow:
    """One audience of one destination, as ``cdp destinations status`` reports it."""

    destination: str
    platform: str
    target: str
    consent: str
    missing: tuple[str, ...]
    sfa: bool
    segment: str | None
    synced_members: int | None = None
    synced_at: str | None = None
    last_status: str | None = None
    last_at: str | None = None
    adds: int | None = None
    removes: int | None = None
    pending: str | None = None
    """``plan id: done/total chunks`` of a sync that stopped half-way (resumed next time)."""
    refused: tuple[tuple[str, str], ...] = ()
    """SFA records refused by the last push: (customer id, message), the first ones."""
    refused_count: int = 0

    @property
    def key(self) -> str:
        """A stable id for the row's elements (``destination/segment``)."""
        return f"{self.destination}/{self.segment or ''}"


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class StatusCache:
    """``audience_sync.status`` per audience, re-read only when its files change."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], tuple[Any, dict[str, Any]]] = {}

    def get(self, destination: str, segment: str) -> dict[str, Any]:
        """The status of ``segment`` at ``destination`` (the CLI's JSON shape)."""
        journal = Journal(self.data_dir, destination, segment)
        stamp = (_stamp(journal.path), _stamp(journal.members_path), _stamp(journal.plan_path))
        with self._lock:
            known = self._known.get((destination, segment))
        if known is not None and known[0] == stamp:
            return known[1]
        found = status(self.data_dir, destination, segment)
        with self._lock:
            self._known[(destination, segment)] = (stamp, found)
        return found


def _row(
    destination: push_config.AnyDestination, segment: str | None, state: dict[str, Any] | None
) -> AudienceRow:
    base: dict[str, Any] = {
        "destination": destination.name,
        "platform": destination.platform,
        "target": destination.target(),
        "consent": destination.consent,
        "missing": tuple(missing_secrets(destination)),
        "sfa": is_sfa(destination),
        "segment": segment,
    }
    if state is None:
        return AudienceRow(**base)
    last = state["last_sync"] or {}
    pending = state["pending"]
    errors = dict(state["platform_state"].get(RECORD_ERRORS) or {})
    return AudienceRow(
        **base,
        synced_members=int(state["synced_members"]),
        synced_at=state["synced_at"],
        last_status=str(last.get("status", "synced")) if last else None,
        last_at=last.get("finished_at") or last.get("started_at") if last else None,
        adds=int(last.get("adds", 0)) if last else None,
        removes=int(last.get("removes", 0)) if last else None,
        pending=f"{pending['id']}: {pending['chunks_done']}/{pending['chunks']}"
        if pending
        else None,
        refused=tuple(sorted(errors.items())[:REFUSED_SHOWN]),
        refused_count=len(errors),
    )


def audience_rows(data_dir: Path, cache: StatusCache) -> list[AudienceRow]:
    """Every configured destination's audiences, by destination then segment.

    ``ConfigError`` when destinations.toml is broken (the page says where)."""
    rows: list[AudienceRow] = []
    for name, destination in sorted(push_config.load_all(data_dir).items()):
        segments = segments_synced(data_dir, name)
        default = getattr(destination, "segment", None) if is_sfa(destination) else None
        if default and default not in segments:
            segments = sorted([*segments, default])
        if not segments:
            rows.append(_row(destination, None, None))
        for segment in segments:
            state = cache.get(name, segment)
            never = state["synced_at"] is None and not state["last_sync"] and not state["pending"]
            rows.append(_row(destination, segment, None if never else state))
    return rows
