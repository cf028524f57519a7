"""Erasure reaches the SFA: the records pushed for a person are deleted there.

``erase(data_dir, customer_ids, request_id)`` (an erasure step, wired by
``connectors.destinations.erasure``) does, for every SFA destination with sync
state under ``<data dir>/sync/``:

1. every segment journal that holds them: a pending plan is resumed first
   (it may be the one that creates their record; the ids it gets are kept as
   it goes); then they leave that plan (if it could not finish), the synced
   set and its ``record_errors`` (``Journal.forget``), so no row of theirs
   (e-mail, phone, name) stays;
2. their record ids move from ``records`` to ``deletions`` in the record file
   (``connectors.destinations.sfa.pushed``), under a token, not their id;
3. everything the destination owes is deleted through the vendor's API
   (``SfaPlatform.delete``: Salesforce sObject Collections DELETE, HubSpot
   batch archive, kintone DELETE records), deletions owed by earlier
   erasures too; what the SFA confirms leaves the file.

It answers ``{destination: "deleted N records" | "failed: <reason>"}`` for each
destination that held the person. A destination fails when the SFA refused or
could not be reached (the deletion stays owed: ``retry`` sends it again, and
every ``cdp destinations push`` to that destination does so first), when a
pending plan holding them could not be finished, when it is no longer in
destinations.toml, or when they were pushed before record ids were kept
(nothing says which record is theirs: delete it by hand).

``retry`` completes owed deletions later; when all of a request's deletions
at a destination are done, the destination leaves that request's ``failed``
and a ``partial`` request with nothing else failed becomes ``finished``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cdp.errors import ConfigError, NotFoundError
from cdp.services.privacy import audit
from cdp.services.privacy import requests as privacy_requests
from connectors.destinations.push import config
from connectors.destinations.push.audience_sync import (
    SyncReport,
    execute_plan,
    segments_synced,
    transport_for,
)
from connectors.destinations.push.http import RetryPolicy
from connectors.destinations.push.journal import Journal, Plan
from connectors.destinations.sfa.base import SfaPlatform
from connectors.destinations.sfa.config import AnySfa, HubSpot, Kintone, Salesforce
from connectors.destinations.sfa.platforms import sfa_platform
from connectors.destinations.sfa.pushed import PushedRecords, record_folders

FAILED: Final = "failed: "


@dataclass
class Deletion:
    """What one destination's deletion run did."""

    deleted: int = 0
    owed: int = 0
    """Record ids still to delete after the run (every request's)."""
    errors: list[str] = field(default_factory=list)
    settled: list[str] = field(default_factory=list)
    """Requests whose deletions here are all done now."""


def _sfa_destinations(data_dir: Path) -> dict[str, AnySfa]:
    return {
        n: d
        for n, d in config.load_all(data_dir).items()
        if isinstance(d, Salesforce | HubSpot | Kintone)
    }


def send_owed(
    destination: AnySfa,
    data_dir: Path,
    *,
    platform: SfaPlatform | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Deletion:
    """Delete every record ``destination`` owes an erasure; what was done and what is left."""
    kept = PushedRecords(data_dir, destination.name)
    owed = kept.deletions()
    result = Deletion()
    if not owed:
        return result
    platform = platform or sfa_platform(destination)
    by_id = {record_id: token for token, entry in owed.items() for record_id in entry["ids"]}
    ids = sorted(by_id)
    deleted: set[str] = set()
    refused: dict[str, str] = {}
    error: str | None = None
    with transport_for(destination, platform, policy, sleep) as transport:
        for start in range(0, len(ids), platform.max_delete):
            try:
                answer = platform.delete(transport, ids[start : start + platform.max_delete])
            except Exception as problem:  # kept as the entry's error; the next run retries
                error = f"{type(problem).__name__}: {problem}"
                break
            deleted |= set(answer.deleted)
            refused |= answer.refused
    if refused and error is None:
        error = "refused: " + "; ".join(sorted(set(refused.values())))[:300]
    for token, entry in owed.items():
        kept.settle(token, deleted, error)
        if set(entry["ids"]) <= deleted:
            result.settled.append(str(entry["request"]))
    result.deleted = len(deleted)
    result.owed = len(ids) - len(deleted)
    if error is not None:
        result.errors.append(error)
    return result


def _settle_requests(data_dir: Path, destination: str, request_ids: Iterable[str]) -> None:
    """Take ``destination`` out of these requests' ``failed``; a partial request with
    nothing else failed is finished."""
    registry = privacy_requests.Requests(data_dir)
    for request_id in request_ids:
        try:
            request = registry.get(request_id)
        except NotFoundError:
            continue
        if destination not in request.failed:
            continue
        failed = {k: v for k, v in request.failed.items() if k != destination}
        status = request.status
        if not failed and status == privacy_requests.PARTIAL:
            status = privacy_requests.FINISHED
        registry.update(request, failed=failed, status=status)


def retry(
    destination: AnySfa,
    data_dir: Path,
    *,
    actor: str | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Deletion:
    """Send the deletions ``destination`` owes (``send_owed``), settle the requests
    they complete and audit it (action ``sfa.delete``) when anything was owed."""
    result = send_owed(destination, data_dir, policy=policy, sleep=sleep)
    if result.deleted or result.errors:
        _settle_requests(data_dir, destination.name, result.settled)
        _audit(data_dir, actor, destination.name, "retry", result)
    return result


def _audit(
    data_dir: Path, actor: str | None, destination: str, target: str, done: Deletion
) -> None:
    audit.record(
        data_dir,
        actor or audit.cli_actor(),
        "sfa.delete",
        target,
        {
            "destination": destination,
            "status": "failed" if done.errors else "deleted",
            "deleted": done.deleted,
            "owed": done.owed,
        },
    )


def _forget_in_journals(
    destination: AnySfa | None,
    data_dir: Path,
    name: str,
    ids: set[str],
    policy: RetryPolicy | None,
    sleep: Callable[[float], None] | None,
) -> tuple[bool, list[str]]:
    """Step 1 for one destination: (held them in a journal, errors).

    A pending plan that holds them is resumed, so a chunk an interrupted push
    may have sent is sent again and answers their record id. If it cannot be
    resumed they are dropped from it anyway (``Journal.forget``), and the
    error says that a record may exist that no id names."""
    held = False
    errors: list[str] = []
    for segment in segments_synced(data_dir, name):
        journal = Journal(data_dir, name, segment)
        try:
            with journal.locked():
                pending = journal.pending() if journal.document().get("plan") else None
                if pending is not None and ids & pending.rows.keys():
                    held = True
                    try:
                        _resume(destination, journal, pending, policy, sleep)
                    except Exception as error:  # they leave the plan all the same
                        errors.append(
                            f"{segment}: a pending push holding them could not be finished "
                            f"({error}); it may have created their record: check the SFA"
                        )
                held |= journal.forget(ids) > 0
        except Exception as error:  # reported for the destination; the others still run
            errors.append(f"{segment}: {error}")
    return held, errors


def _resume(
    destination: AnySfa | None,
    journal: Journal,
    pending: Plan,
    policy: RetryPolicy | None,
    sleep: Callable[[float], None] | None,
) -> None:
    if destination is None or pending.target != destination.target():
        raise ConfigError("the destination is no longer configured as it was")
    platform = sfa_platform(destination)
    report = SyncReport(destination.name, platform.name, journal.segment)
    with transport_for(destination, platform, policy, sleep) as transport:
        execute_plan(destination, platform, journal, transport, pending, None, report)


def erase(
    data_dir: Path,
    customer_ids: Iterable[str],
    request_id: str,
    *,
    actor: str | None = None,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, str]:
    """Delete these customers' records from every SFA destination (module docstring):
    ``{destination: "deleted N records" | "failed: <reason>"}`` for each that held them."""
    ids = set(customer_ids)
    if not ids:
        return {}
    configured = _sfa_destinations(data_dir)
    names = set(configured)
    for folder in record_folders(data_dir):
        names.add(folder.parent.name)
    outcome: dict[str, str] = {}
    for name in sorted(names):
        destination = configured.get(name)
        kept = PushedRecords(data_dir, name)
        held, errors = _forget_in_journals(destination, data_dir, name, ids, policy, sleep)
        theirs = {k: v for k, v in kept.records().items() if k in ids}  # a resumed plan's too
        kept.owe(theirs, request_id)
        owed = _owed_for(kept, request_id)
        if not held and not owed:
            continue
        if destination is None:
            errors.append(
                f"destination {name!r} is no longer configured; {owed} record(s) of theirs "
                "are owed a deletion (configure it again and push, or delete them by hand)"
            )
        elif owed:
            done = send_owed(destination, data_dir, policy=policy, sleep=sleep)
            errors += done.errors
            _settle_requests(data_dir, name, [r for r in done.settled if r != request_id])
            _audit(data_dir, actor, name, f"request:{request_id}", done)
        if held and not owed and not errors:
            errors.append(
                "pushed before record ids were kept: find their record by the customer id "
                "field (external id / update key) or e-mail and delete it by hand"
            )
        left = _owed_for(kept, request_id)
        if errors or left:
            outcome[name] = FAILED + "; ".join(errors or [f"{left} deletion(s) still owed"])
        else:
            outcome[name] = f"deleted {owed} records"
    return outcome


def _owed_for(kept: PushedRecords, request_id: str) -> int:
    """Record ids still to delete for one request."""
    return sum(len(e["ids"]) for e in kept.deletions().values() if e["request"] == request_id)
