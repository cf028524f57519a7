""" "Sync now" from the console: audience pushes run in a background thread.

A click files a :class:`Job`; one worker thread runs the jobs in order (so a
server runs one push at a time, on one read cursor), with the same services
as the CLI: ``cdp sync SEGMENT --to NAME`` (``audience_sync.sync``) for the ad
platforms and webhooks, ``cdp destinations push NAME`` (``sfa.handoff.push``,
deletions owed by erasures first) for Salesforce, HubSpot and kintone. Each
run is audited as the CLI audits it (``sync`` / ``sfa.push``), with the
console user as the actor; the APPI provision record is written by the sync
itself when a plan completes.

Jobs live in memory (the last ``KEEP``): the durable record of a run is the
sync journal (``cdp destinations status``) and the audit log. A second click
on an audience whose job is still queued or running gets that job.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cdp.console.web import ConsoleContext, Viewer
from cdp.services.segment_lang import SegmentCatalog
from connectors.destinations.push import config as push_config
from connectors.destinations.push.audience_sync import SyncReport, sync
from connectors.destinations.sfa import handoff
from connectors.destinations.sfa.config import HubSpot, Kintone, Salesforce

KEEP: Final = 50
QUEUED: Final = "queued"
RUNNING: Final = "running"
DONE: Final = "done"
FAILED: Final = "failed"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Job:
    """One "sync now" click and how it went."""

    id: str
    destination: str
    segment: str
    user: str
    submitted_at: str
    state: str = QUEUED
    finished_at: str | None = None
    status: str | None = None
    """The sync's own word when done: ``synced`` or ``up to date``."""
    adds: int | None = None
    removes: int | None = None
    members: int | None = None
    refused: int = 0
    error: str | None = None
    """``Type: message`` of the failure (the platform's message included)."""

    @property
    def active(self) -> bool:
        return self.state in (QUEUED, RUNNING)

    def to_json(self) -> dict[str, Any]:
        """What the page's script polls (``GET /console/audiences/jobs/{id}``)."""
        return {
            "id": self.id,
            "destination": self.destination,
            "segment": self.segment,
            "state": self.state,
            "status": self.status,
            "adds": self.adds,
            "removes": self.removes,
            "members": self.members,
            "refused": self.refused,
            "error": self.error,
            "finished_at": self.finished_at,
        }


class SyncJobs:
    """The jobs of one server and the thread that runs them."""

    def __init__(self, run: Callable[[Job, Viewer], None]) -> None:
        self._run = run
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, viewer: Viewer, destination: str, segment: str) -> Job:
        """Queue a sync of ``segment`` to ``destination`` (or give the one already queued)."""
        with self._lock:
            for job in self._jobs.values():
                if job.active and (job.destination, job.segment) == (destination, segment):
                    return job
            job = Job(secrets.token_hex(6), destination, segment, viewer.user.name, _now())
            self._jobs[job.id] = job
            for old in list(self._jobs)[:-KEEP]:
                if not self._jobs[old].active:
                    del self._jobs[old]
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix="cdp-console-sync")
            pool = self._pool
        pool.submit(self._work, job, viewer)
        return job

    def _work(self, job: Job, viewer: Viewer) -> None:
        job.state = RUNNING
        try:
            self._run(job, viewer)
        except Exception as error:  # shown on the page; the audit line says it failed
            job.error = f"{type(error).__name__}: {error}"
            job.state = FAILED
        else:
            job.state = FAILED if job.error else DONE
        job.finished_at = _now()

    def get(self, job_id: str) -> Job | None:
        """The job ``job_id`` (``None`` if unknown or forgotten)."""
        with self._lock:
            return self._jobs.get(job_id)

    def recent(self) -> list[Job]:
        """The jobs kept, newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))


def runner(ctx: ConsoleContext) -> Callable[[Job, Viewer], None]:
    """The work of a job: the CLI's sync or SFA push, on this server's read cursor."""

    def run(job: Job, viewer: Viewer) -> None:
        data_dir = ctx.settings.data_dir
        destination = push_config.load(data_dir, job.destination)
        catalog = SegmentCatalog(data_dir)
        con = ctx.sql()  # this worker thread's cursor: sync leaves it open
        actor = f"console:{viewer.user.name}"
        if isinstance(destination, Salesforce | HubSpot | Kintone):
            outcome = handoff.push(
                con, catalog, destination, data_dir=data_dir, segment=job.segment, actor=actor
            )
            job.refused = len(outcome.record_errors)
            if outcome.report is not None:
                _done(job, outcome.report)
            job.error = outcome.error or outcome.deletion_error
            return
        target = f"segment:{job.segment}"
        try:
            report = sync(con, catalog, destination, job.segment, data_dir=data_dir)
        except Exception as error:  # a failed sync may have sent part of the audience
            error_name = type(error).__name__
            ctx.record_now(
                viewer,
                "sync",
                target,
                destination=destination.name,
                status="failed",
                error=error_name,
            )
            raise
        ctx.record_now(  # durable, as the CLI's sync line
            viewer,
            "sync",
            target,
            destination=destination.name,
            platform=report.platform,
            status=report.status,
            added=report.adds,
            removed=report.removes,
        )
        _done(job, report)

    return run


def _done(job: Job, report: SyncReport) -> None:
    job.status = report.status
    job.adds, job.removes, job.members = report.adds, report.removes, report.members
