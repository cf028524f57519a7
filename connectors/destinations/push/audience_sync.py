"""Incremental, crash-safe sync of a segment's audience to a destination.

``sync`` does, holding the audience's lock:

1. **Resume.** A plan left pending by an earlier run (crash, kill, outage)
   is executed first, chunk by chunk, skipping the chunks marked done and
   resending the others with the same payloads and idempotency keys (Meta
   session and batch number, Google job, webhook ``Idempotency-Key``, LINE
   group). When it completes, the synced set advances by it.
2. **Diff.** The segment's current audience (``cdp.services.query.audience``, only
   members with the destination's consent) as platform rows, against the
   last synced set: *adds* are members who are new or whose row changed
   (re-adding updates the platform's identifiers), *removes* are members who
   left (or lost consent). A remove whose identifiers still belong to a
   current member is not sent (see ``Platform.match_keys``). Members left
   out (no consent, nothing the platform can match) are counted by reason
   in the report (``SyncReport.excluded``), so its numbers add up to the
   segment.
3. **Plan.** The changes cut into chunks within the platform's limits, the
   plan persisted (rows, then the journal) before the first request, then
   executed as in 1.

The synced set changes only when a plan completes, so an error (a rejected
request, an outage that outlasts the retries) leaves the plan pending and
loses nothing; the next ``sync`` resumes it.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson

from cdp.errors import ConfigError
from cdp.services.query import audience
from cdp.services.segment_lang import SegmentCatalog
from connectors.destinations.accounting import NO_CONSENT
from connectors.destinations.members import members_from_audience
from connectors.destinations.privacy import SUPPRESSED, record_plan, without_suppressed
from connectors.destinations.push.base import Changes, Platform, Run
from connectors.destinations.push.config import AnyDestination, GoogleAds, Line, Meta
from connectors.destinations.push.google_ads import GoogleAdsPlatform
from connectors.destinations.push.http import RetryPolicy, Transport
from connectors.destinations.push.journal import Chunk, Journal, Plan
from connectors.destinations.push.line import LinePlatform
from connectors.destinations.push.meta import MetaPlatform
from connectors.destinations.push.webhook import WebhookPlatform
from connectors.destinations.sfa.config import HubSpot, Kintone, Salesforce

Connection = duckdb.DuckDBPyConnection | Callable[[], duckdb.DuckDBPyConnection]
"""A read-only connection, or a factory whose connection ``sync`` closes after reading."""


@dataclass
class SyncReport:
    """What one ``sync`` call did."""

    destination: str
    platform: str
    segment: str
    status: str = "up to date"  # "synced" | "up to date" | "dry run"
    members: int = 0
    """Consenting members the platform can match: the audience now."""
    segment_members: int = 0
    """Everyone in the segment: ``members`` plus every count in ``excluded``."""
    excluded: dict[str, int] = field(default_factory=dict)
    """Members left out of the audience, by reason (``accounting.REASONS``)."""
    adds: int = 0
    removes: int = 0
    removes_skipped: int = 0
    chunks: int = 0
    requests: int = 0
    retries: int = 0
    duration_s: float = 0.0
    plan_id: str | None = None
    resumed_plan_id: str | None = None
    started_at: str = ""
    pending: dict[str, Any] | None = None
    add_ids: list[str] = field(default_factory=list)
    remove_ids: list[str] = field(default_factory=list)

    def to_json(self, with_ids: bool = False) -> dict[str, Any]:
        """The report as JSON; customer ids only when asked (dry runs)."""
        data = asdict(self)
        if not with_ids:
            data.pop("add_ids")
            data.pop("remove_ids")
        return data


def platform_for(destination: AnyDestination) -> Platform:
    """The push protocol of a configured destination."""
    if isinstance(destination, GoogleAds):
        return GoogleAdsPlatform(destination)
    if isinstance(destination, Meta):
        return MetaPlatform(destination)
    if isinstance(destination, Line):
        return LinePlatform(destination)
    if isinstance(destination, Salesforce | HubSpot | Kintone):
        # Imported here: the SFA platforms import this package's base modules.
        from connectors.destinations.sfa.platforms import sfa_platform  # noqa: PLC0415

        return sfa_platform(destination)
    return WebhookPlatform(destination)


def transport_for(
    destination: AnyDestination,
    platform: Platform,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
) -> Transport:
    """An HTTP client for the destination with its auth headers and retry policy."""
    transport = Transport(
        destination=destination.name,
        platform=platform.name,
        base_url=destination.base_url,
        headers=platform.headers(),
        policy=policy
        or RetryPolicy(max_attempts=destination.max_attempts, base_delay=destination.backoff),
        timeout=destination.timeout,
        error_message=platform.error_message,
        transient=platform.transient,
        retry_hint=platform.retry_hint,
        auth=platform.auth(),
    )
    if sleep is not None:
        transport.sleep = sleep
    return transport


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _json_row(row: Any) -> Any:
    # Rows in the form the journal stores them (tuples become lists, keys sorted),
    # so that a chunk resent from the journal is byte-identical to the first send.
    return orjson.loads(orjson.dumps(row, option=orjson.OPT_SORT_KEYS))


@dataclass(frozen=True)
class CurrentAudience:
    """The segment's members as platform rows, and who was left out and why."""

    rows: dict[str, Any]
    """Platform rows by customer id: consenting members the platform can match."""
    segment_members: int
    excluded: dict[str, int]
    """``{"no_consent": n, reason: n, ...}``; ``rows`` + these = ``segment_members``."""


def current_audience(
    con: Connection,
    catalog: SegmentCatalog | None,
    destination: AnyDestination,
    segment: str,
    platform: Platform,
    overrides: Mapping[str, str] | None = None,
    data_dir: Path | None = None,
) -> CurrentAudience:
    """The segment's consenting members as platform rows, by customer id, with the tally.

    With ``data_dir``, members on its suppression list are left out (so the
    sync removes them from the platform) and counted as ``suppressed``.
    """
    consent = None if destination.consent == "none" else destination.consent
    connection = con() if callable(con) else con
    suppressed = 0
    try:
        found = audience(connection, segment, overrides, consent, catalog=catalog)
        if data_dir is not None:
            found, suppressed = without_suppressed(connection, data_dir, found)
        platform.prepare(connection, [str(row[0]) for row in found.rows])
    finally:
        if callable(con):
            connection.close()
    rows: dict[str, Any] = {}
    excluded: Counter[str] = Counter({NO_CONSENT: found.excluded_without_consent})
    if suppressed:
        excluded[SUPPRESSED] = suppressed
    for member in members_from_audience(found):
        row = platform.row(member)
        if row is not None:
            rows[member.customer_id] = _json_row(row)
        else:
            excluded[platform.exclusion(member)] += 1
    return CurrentAudience(rows, found.members, dict(excluded))


def _count(report: SyncReport, current: CurrentAudience) -> None:
    report.members = len(current.rows)
    report.segment_members = current.segment_members
    report.excluded = current.excluded


def diff(current: Mapping[str, Any], synced: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(adds, removes): new or changed members, and members who left; sorted ids."""
    adds = sorted(k for k, row in current.items() if synced.get(k) != row)
    removes = sorted(k for k in synced if k not in current)
    return adds, removes


def _apply(synced: Mapping[str, Any], plan: Plan) -> dict[str, Any]:
    members = dict(synced)
    for key in plan.removes:
        members.pop(key, None)
    for key in plan.adds:
        members[key] = plan.rows[key]
    return members


def new_plan(
    platform: Platform,
    destination: AnyDestination,
    current: Mapping[str, Any],
    synced: Mapping[str, Any],
    synced_extra: Mapping[str, Any],
) -> tuple[Plan, int]:
    """A plan from the diff, and how many removes it does not send (identifiers still in use)."""
    adds, removes = diff(current, synced)
    in_use: set[str] = set()
    for row in current.values():
        in_use |= platform.match_keys(row)
    sendable = [k for k in removes if not platform.match_keys(synced[k]) & in_use]
    size = min(destination.chunk_size or platform.max_chunk, platform.max_chunk)
    layout, state = platform.layout(Changes(adds, sendable, current, synced_extra, size))
    chunks = [Chunk(i, action, keys) for i, (action, keys) in enumerate(layout)]
    rows = {k: synced[k] for k in removes}
    for chunk in chunks:
        if chunk.action == "add":
            rows.update({k: current[k] for k in chunk.keys})
    rows.update({k: current[k] for k in adds})
    plan = Plan(
        id=secrets.token_hex(8),
        created_at=_now(),
        target=destination.target(),
        adds=adds,
        removes=removes,
        chunks=chunks,
        rows=rows,
        state=state,
    )
    return plan, len(removes) - len(sendable)


def sync(
    con: Connection,
    catalog: SegmentCatalog | None,
    destination: AnyDestination,
    segment: str,
    *,
    data_dir: Path,
    overrides: Mapping[str, str] | None = None,
    dry_run: bool = False,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] | None = None,
    after_chunk: Callable[[Chunk], None] | None = None,
) -> SyncReport:
    """Bring the destination's copy of ``segment`` up to date; see the module docstring.

    ``after_chunk`` is called after each acknowledged chunk is recorded (tests
    inject crashes there); ``policy`` and ``sleep`` tune the retries.
    """
    started = time.monotonic()
    platform = platform_for(destination)
    journal = Journal(data_dir, destination.name, segment)
    report = SyncReport(destination.name, platform.name, segment, started_at=_now())
    with journal.locked():
        pending = journal.pending()
        if pending is not None and pending.target != destination.target():
            raise ConfigError(
                f"a pending sync of {segment!r} to {destination.name!r} was planned for "
                f"{pending.target}, but the destination is now {destination.target()}; "
                f"restore the configuration, or delete {journal.path} to start afresh"
            )
        synced = journal.synced()
        if dry_run:
            members = _apply(synced.members, pending) if pending else synced.members
            now = current_audience(
                con, catalog, destination, segment, platform, overrides, data_dir
            )
            current = now.rows
            plan, skipped = new_plan(platform, destination, current, members, synced.extra)
            report.status = "dry run"
            _count(report, now)
            report.adds, report.removes = len(plan.adds), len(plan.removes)
            report.removes_skipped = skipped
            report.chunks = len(plan.chunks)
            report.add_ids, report.remove_ids = plan.adds, plan.removes
            if pending:
                report.pending = pending.header() | {"chunks": len(pending.chunks)}
            report.duration_s = round(time.monotonic() - started, 3)
            return report
        with transport_for(destination, platform, policy, sleep) as transport:
            if pending is not None:
                report.resumed_plan_id = pending.id
                execute_plan(
                    destination, platform, journal, transport, pending, after_chunk, report
                )
                synced = journal.synced()
            now = current_audience(
                con, catalog, destination, segment, platform, overrides, data_dir
            )
            current = now.rows
            _count(report, now)
            plan, skipped = new_plan(platform, destination, current, synced.members, synced.extra)
            report.removes_skipped += skipped
            if plan.adds or plan.removes:
                journal.begin(plan)
                execute_plan(destination, platform, journal, transport, plan, after_chunk, report)
            report.requests = transport.stats.requests
            report.retries = transport.stats.retries
        report.duration_s = round(time.monotonic() - started, 3)
        if report.status == "up to date":
            journal.record(report.to_json())
        return report


def execute_plan(
    destination: AnyDestination,
    platform: Platform,
    journal: Journal,
    transport: Transport,
    plan: Plan,
    after_chunk: Callable[[Chunk], None] | None,
    report: SyncReport,
) -> None:
    """Push a persisted plan's pending chunks, record the provision, advance the synced set.

    The APPI record (kind ``sync``, or the plan's ``state["provision"]``:
    ``withdraw``) is written before the plan is cleared: a crash in between
    records a resumed plan twice (same ``reference``), never not at all.
    """
    run = Run(plan, journal, transport, journal.segment, after_chunk)
    platform.push(run)
    record_plan(
        journal.data_dir,
        kind=str(plan.state.get("provision", "sync")),
        platform=platform.name,
        destination=destination.name,
        account=destination.target(),
        consent=destination.consent,
        segment=journal.segment,
        chunks=[(c.action, c.keys) for c in plan.chunks],
        items=platform.items([plan.rows[k] for c in plan.chunks for k in c.keys]),
        reference=plan.id,
    )
    report.status = "synced"
    report.plan_id = plan.id
    report.adds += len(plan.adds)
    report.removes += len(plan.removes)
    report.chunks += run.sent
    report.requests = transport.stats.requests
    report.retries = transport.stats.retries
    journal.finish(
        plan,
        {
            "plan_id": plan.id,
            "finished_at": _now(),
            "adds": len(plan.adds),
            "removes": len(plan.removes),
            "chunks": len(plan.chunks),
            "chunks_sent_this_run": run.sent,
            "requests": transport.stats.requests,
            "retries": transport.stats.retries,
        },
        _now(),
    )


def status(data_dir: Path, destination: str, segment: str) -> dict[str, Any]:
    """The sync state of one audience: last sync, synced size, pending plan."""
    journal = Journal(data_dir, destination, segment)
    document = journal.document()
    synced = journal.synced()
    plan = document.get("plan")
    return {
        "destination": destination,
        "segment": segment,
        "synced_members": len(synced.members),
        "synced_at": synced.at,
        "synced_plan_id": synced.plan_id,
        "platform_state": synced.extra,
        "last_sync": document.get("last_sync"),
        "pending": None
        if not plan
        else {
            "id": plan["id"],
            "created_at": plan["created_at"],
            "adds": plan["adds"],
            "removes": plan["removes"],
            "chunks": len(plan["chunks"]),
            "chunks_done": sum(1 for c in plan["chunks"] if c["done"]),
            "state": plan.get("state", {}),
        },
    }


def segments_synced(data_dir: Path, destination: str) -> list[str]:
    """Segments with sync state for a destination (file stems)."""
    directory = Journal(data_dir, destination, "x").directory
    if not directory.exists():
        return []
    return sorted(
        p.name[: -len(".json")]
        for p in directory.glob("*.json")
        if not p.name.endswith((".plan.json", ".members.json"))
    )
