"""``GET /health`` (readiness) and ``GET /health/live`` (liveness).

``/health/live`` answers 200 whenever the process serves requests and looks
at nothing else: a liveness probe must not restart a replica because Kafka is
briefly away (each restart would re-read the log before opening its port).

``/health`` says whether to send traffic here. Every mode reports the writer
(queue depth, group commits, the last projection checkpoint error). A mode
with more to watch (Kafka: the broker, the last append, the profile reader's
lag, how far the workers are behind) hands in a :data:`ModeProbe` from the
wiring; this module does not know which mode it serves. ``status`` is
``ok`` or ``degraded`` (still 200: the answers are served but stale, e.g.
the workers are behind or absent; ``degraded`` lists why); unhealthy is
``503`` in the error shape of every route (whose ``status`` is then 503),
with the details beside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from cdp.http.errors import error_body
from cdp.runtime.writer import GroupCommitWriter


@dataclass(frozen=True, slots=True)
class ModeHealth:
    """What a mode's probe found: whether it is healthy, and the keys to report."""

    ok: bool
    details: dict[str, Any] = field(default_factory=dict)
    #: Why the mode serves but is behind (``status: degraded``); empty when it is not.
    degraded: list[str] = field(default_factory=list)


#: Checks the mode's own dependencies; its verdict replaces the checkpoint's.
ModeProbe = Callable[[], Awaitable[ModeHealth]]


def problem(body: dict[str, Any]) -> str:
    """What an unhealthy ``/health`` body says is wrong, in words."""
    problems = []
    if body.get("checkpoint_error"):
        problems.append(
            f"the last projection checkpoint failed ({body['checkpoint_error']}): events are "
            "durable in the log, but lookups and SQL are stale"
        )
    kafka = body.get("kafka") or {}
    if kafka and not kafka.get("reachable"):
        problems.append(f"the Kafka broker {kafka.get('bootstrap')} is not reachable")
    if kafka.get("last_append_error"):
        problems.append(f"the last append to Kafka failed ({kafka['last_append_error']})")
    return "; ".join(problems) or "unhealthy"


def router(writer: GroupCommitWriter[Any], probe: ModeProbe | None = None) -> APIRouter:
    """``GET /health`` for ``writer``, and for the mode through ``probe`` when given;
    ``GET /health/live``."""
    routes = APIRouter()

    @routes.get("/health/live", tags=["ops"])
    async def live() -> JSONResponse:
        """Liveness: 200 whenever the process serves; never looks at Kafka or the data."""
        return JSONResponse({"status": "live"})

    @routes.get("/health", tags=["ops"])
    async def health() -> JSONResponse:
        """Readiness: the writer's queue depth, whether projections are being saved,
        and in Kafka mode the broker and the workers' lag.

        503 when the last projection checkpoint failed (events are still durable
        in the log, but lookups and SQL would be stale) or the broker is
        unreachable; 200 with ``status: degraded`` when the workers are behind."""
        error = writer.checkpoint_error
        body: dict[str, Any] = {
            "ok": error is None,
            "pending": writer.pending,
            "group_commits": writer.groups,
            "checkpoint_error": error,
        }
        degraded: list[str] = []
        if probe is not None:  # e.g. Kafka mode: no checkpoints; the broker is what matters
            found = await probe()
            body["ok"] = found.ok
            body.update(found.details)
            degraded = found.degraded
        if body["ok"]:
            body["status"] = "degraded" if degraded else "ok"
            if degraded:
                body["degraded"] = degraded
            return JSONResponse(body)
        # Unhealthy answers carry the error shape too, with the details beside it.
        return JSONResponse(error_body(503, problem(body), **body), status_code=503)

    return routes
