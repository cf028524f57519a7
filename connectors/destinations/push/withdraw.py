"""Take people out of every pushed audience now (an erasure, a suppression).

``withdraw(data_dir, customer_ids)`` looks at the sync state of every
configured destination (``<data dir>/sync/<destination>/``) and, for each
audience whose synced set or pending plan holds any of these customers,
holding the audience's lock (so it never races a ``cdp sync``):

1. resumes a pending plan first, as ``sync`` would (it may be the plan that
   added them, and its rows file holds their platform rows);
2. plans the removal: the synced set minus these customers is the "current"
   audience, so the diff is exactly their removes, and each platform lays it
   out as a normal sync would (Meta and Google send remove operations, the
   webhook a ``remove`` chunk, LINE, which cannot remove one user, rebuilds
   the group without them and deletes the old one); a remove whose match
   keys still belong to another member is not sent, as in ``sync``;
3. executes it through the same plan and journal, which writes the APPI
   provision record (kind ``withdraw``) and then drops their rows from the
   synced set; the plan's rows file is deleted when it completes.

A destination fails as a whole when any of its audiences fails (rejected,
unreachable, configuration changed); the pending plan then stays in the
journal, their rows with it, and calling ``withdraw`` again resumes it.
Sync state left by a destination no longer in destinations.toml cannot be
pushed; it is reported as failed too (configure the destination again, or
delete its directory once the platform side is dealt with by hand).

The next ``sync`` leaves suppressed people out anyway
(``connectors.destinations.privacy.without_suppressed``) and erased people
are in no segment any more: ``withdraw`` makes it happen now, and for every
audience, not only the ones synced again.

SFA destinations (Salesforce, HubSpot, kintone) are left alone here: an
erasure deletes their records instead (``connectors.destinations.sfa.erase``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final

from cdp.errors import ConfigError
from connectors.destinations.push import config
from connectors.destinations.push.audience_sync import (
    SyncReport,
    execute_plan,
    new_plan,
    platform_for,
    segments_synced,
    transport_for,
)
from connectors.destinations.push.http import RetryPolicy
from connectors.destinations.push.journal import Journal
from connectors.destinations.sfa.config import HubSpot, Kintone, Salesforce
from connectors.destinations.sfa.pushed import FILE, folder_of

REMOVED: Final = "removed"
FAILED: Final = "failed: "


def is_sfa_folder(directory: Path) -> bool:
    """True if a destination's sync directory is an SFA's (it keeps record ids)."""
    return (folder_of(directory) / FILE).is_file()


def _holds(journal: Journal, ids: set[str]) -> bool:
    if ids & journal.synced().members.keys():
        return True
    pending = journal.pending() if journal.document().get("plan") else None
    return pending is not None and bool(ids & pending.rows.keys())


def _withdraw_one(
    destination: config.AnyDestination,
    journal: Journal,
    ids: set[str],
    policy: RetryPolicy | None,
    sleep: Callable[[float], None] | None,
) -> None:
    platform = platform_for(destination)
    report = SyncReport(destination.name, platform.name, journal.segment)
    with journal.locked(), transport_for(destination, platform, policy, sleep) as transport:
        pending = journal.pending()
        if pending is not None:
            if pending.target != destination.target():
                raise ConfigError(
                    f"a pending sync of {journal.segment!r} was planned for {pending.target}, "
                    f"but {destination.name!r} is now {destination.target()}"
                )
            execute_plan(destination, platform, journal, transport, pending, None, report)
        synced = journal.synced()
        leaving = ids & synced.members.keys()
        if not leaving:
            return
        staying = {k: row for k, row in synced.members.items() if k not in leaving}
        plan, _ = new_plan(platform, destination, staying, synced.members, synced.extra)
        plan.state["provision"] = "withdraw"  # kept in the journal: a resumed plan says so too
        journal.begin(plan)
        execute_plan(destination, platform, journal, transport, plan, None, report)


def withdraw(
    data_dir: Path,
    customer_ids: Iterable[str],
    *,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, str]:
    """Remove these customers from every pushed audience now and drop them from the
    sync state: ``{destination: "removed" | "failed: <reason>"}`` for each destination
    that held any of them (others are not listed)."""
    ids = set(customer_ids)
    if not ids:
        return {}
    outcome: dict[str, str] = {}
    configured = config.load_all(data_dir)
    known_directories = set()
    for name, destination in sorted(configured.items()):
        known_directories.add(Journal(data_dir, name, "x").directory)
        if isinstance(destination, Salesforce | HubSpot | Kintone):
            continue  # records are deleted there, not withdrawn: connectors.destinations.sfa.erase
        failures = []
        held = False
        for segment in segments_synced(data_dir, name):
            journal = Journal(data_dir, name, segment)
            try:
                if not _holds(journal, ids):
                    continue
                held = True
                _withdraw_one(destination, journal, ids, policy, sleep)
            except Exception as error:  # reported per destination; the caller retries
                held = True
                failures.append(f"{segment}: {error}")
        if failures:
            outcome[name] = FAILED + "; ".join(failures)
        elif held:
            outcome[name] = REMOVED
    root = data_dir / "sync"
    for directory in sorted(root.iterdir() if root.is_dir() else []):
        if not directory.is_dir() or directory in known_directories or is_sfa_folder(directory):
            continue
        for segment in segments_synced(data_dir, directory.name):
            journal = Journal(data_dir, directory.name, segment)
            if journal.directory == directory and _holds(journal, ids):
                outcome[directory.name] = (
                    FAILED + f"destination {directory.name!r} is no longer configured; "
                    "its sync state still holds them"
                )
                break
    return outcome
