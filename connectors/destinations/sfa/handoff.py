"""Hand a segment's leads to every SFA destination, each on its own.

``push`` runs the audience sync (``connectors.destinations.push.audience_sync``)
for one destination and writes the audit entry (action ``sfa.push``, or
``sfa.push.dry_run``; the sync itself writes the APPI provision record when a
plan completes). ``push_all`` does it for several destinations: a failure of
one (rejected credentials, an outage, a configuration error) is reported in
its ``Outcome`` and never stops the others. Before pushing, a destination
is sent the deletions erasures still owe it (``connectors.destinations.sfa.erase.retry``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cdp.services.privacy import audit
from cdp.services.segment_lang import SegmentCatalog
from connectors.destinations.push import config
from connectors.destinations.push.audience_sync import (
    Connection,
    SyncReport,
    current_audience,
    platform_for,
    sync,
)
from connectors.destinations.push.http import RetryPolicy
from connectors.destinations.push.journal import Journal
from connectors.destinations.sfa import erase
from connectors.destinations.sfa.base import RECORD_ERRORS
from connectors.destinations.sfa.config import AnySfa, HubSpot, Kintone, Salesforce

#: Records a dry run shows (its report counts them all).
PREVIEW = 20


@dataclass
class Outcome:
    """What one destination's push did, or why it failed."""

    destination: str
    platform: str
    segment: str
    report: SyncReport | None = None
    error: str | None = None
    record_errors: dict[str, str] = field(default_factory=dict)
    """Records the SFA refused in the last completed push: customer id → message."""
    preview: list[dict[str, Any]] = field(default_factory=list)
    """Dry run: the first records that would be sent (``customer_id`` + fields)."""
    deleted: int = 0
    """Records of erased people deleted first (deletions an erasure still owed)."""
    deletion_error: str | None = None
    """Why owed deletions failed again (they stay owed)."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.deletion_error is None and not self.record_errors

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "platform": self.platform,
            "segment": self.segment,
            "ok": self.ok,
            "error": self.error,
            "report": None
            if self.report is None
            else self.report.to_json(with_ids=bool(self.preview)),
            "record_errors": self.record_errors,
            "preview": self.preview,
            "deleted": self.deleted,
            "deletion_error": self.deletion_error,
        }


def sfa_destinations(data_dir: Path) -> dict[str, AnySfa]:
    """The configured Salesforce, HubSpot and kintone destinations, by name."""
    return {
        n: d
        for n, d in config.load_all(data_dir).items()
        if isinstance(d, Salesforce | HubSpot | Kintone)
    }


def record_errors(data_dir: Path, destination: str, segment: str) -> dict[str, str]:
    """The refused records of the last completed push of ``segment`` to ``destination``."""
    extra = Journal(data_dir, destination, segment).synced().extra
    return dict(extra.get(RECORD_ERRORS) or {})


def push(
    con: Connection,
    catalog: SegmentCatalog | None,
    destination: AnySfa,
    *,
    data_dir: Path,
    segment: str | None = None,
    overrides: Mapping[str, str] | None = None,
    dry_run: bool = False,
    actor: str | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Outcome:
    """Push ``segment`` (the destination's, ``hot_leads`` by default) to one SFA;
    errors are caught into the outcome, and audited either way."""
    name = segment or destination.segment
    outcome = Outcome(destination.name, destination.platform, name)
    action = "sfa.push.dry_run" if dry_run else "sfa.push"
    if not dry_run:
        try:
            owed = erase.retry(destination, data_dir, actor=actor, policy=policy, sleep=sleep)
            outcome.deleted = owed.deleted
            outcome.deletion_error = "; ".join(owed.errors) or None
        except Exception as error:  # reported; the push itself still runs
            outcome.deletion_error = f"{type(error).__name__}: {error}"
    try:
        outcome.report = sync(
            con,
            catalog,
            destination,
            name,
            data_dir=data_dir,
            overrides=overrides,
            dry_run=dry_run,
            policy=policy,
            sleep=sleep,
        )
        if dry_run:
            platform = platform_for(destination)
            rows = current_audience(
                con,
                catalog,
                destination,
                name,
                platform,
                overrides,
                data_dir,
            ).rows
            outcome.preview = [
                {"customer_id": key, **rows[key]} for key in outcome.report.add_ids[:PREVIEW]
            ]
        else:
            outcome.record_errors = record_errors(data_dir, destination.name, name)
    except Exception as error:  # reported per destination; the next one still runs
        outcome.error = f"{type(error).__name__}: {error}"
    report = outcome.report
    details: dict[str, Any] = {"destination": destination.name, "platform": destination.platform}
    if outcome.error is not None:
        details |= {"status": "failed", "error": outcome.error.split(":", 1)[0]}
    elif report is not None:
        details |= {
            "status": report.status,
            "upserted": report.adds,
            "record_errors": len(outcome.record_errors),
            "plan_id": report.plan_id,
        }
    audit.record(data_dir, actor or audit.cli_actor(), action, f"segment:{name}", details)
    return outcome


def push_all(
    con: Connection,
    catalog: SegmentCatalog | None,
    destinations: list[AnySfa],
    *,
    data_dir: Path,
    segment: str | None = None,
    overrides: Mapping[str, str] | None = None,
    dry_run: bool = False,
    actor: str | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> list[Outcome]:
    """``push`` to each destination in turn; one failing never blocks the next."""
    return [
        push(
            con,
            catalog,
            d,
            data_dir=data_dir,
            segment=segment,
            overrides=overrides,
            dry_run=dry_run,
            actor=actor,
            policy=policy,
            sleep=sleep,
        )
        for d in destinations
    ]
