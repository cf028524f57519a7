"""The HTTP service (``cdp serve``): the Segment-compatible collector.

Composition module, wiring only: builds a FastAPI app around one
``GroupCommitWriter`` (which owns the engine, or the Kafka producer), the
source registry and the profile lookups, and mounts the route modules, each
given what it needs: the Segment routes (``cdp.http.collect``), bulk import
(``cdp.http.bulk``), webhooks (``cdp.http.webhooks``), forms
(``cdp.http.forms``), Snowplow (``cdp.http.snowplow``), the read
routes (``cdp.http.read``), ``/health`` (``cdp.http.health``) and ``/metrics``
(``cdp.http.metrics``). Routes only
parse, call, and format; the mode-specific parts (dead letters, the health
probe) come in from here.

Why FastAPI on uvicorn: an ASGI stack that holds thousands of concurrent
keep-alive connections on one core, serves OpenAPI docs, and is the most
widely deployed Python web stack; the request bodies are read raw and parsed
with orjson (not FastAPI's pydantic body models) because the collector's
contracts, limits and error shapes are Segment's, not the framework's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from cdp import bootstrap, console
from cdp.config import Settings
from cdp.console import data as console_data
from cdp.http import (
    bulk,
    collect,
    cors,
    forms,
    health,
    metrics,
    privacy,
    sales_webhooks,
    snowplow,
    webhooks,
)
from cdp.http import docs as api_docs
from cdp.http import errors as http_errors
from cdp.http.intake import Intake
from cdp.http.read import read_router
from cdp.runtime.writer import GroupCommitWriter
from cdp.services.privacy.audit import AuditLog
from cdp.services.privacy.suppressions import SuppressionGate
from cdp.services.sources import SourceRegistry
from cdp.services.tokens import TokenRegistry

if TYPE_CHECKING:
    from cdp.adapters.kafka.topics import KafkaSettings


def create_app(
    settings: Settings,
    writer: GroupCommitWriter[Any] | None = None,
    *,
    kafka: KafkaSettings | None = None,
    platform: bootstrap.Platform | None = None,
    archive: Path | None = None,
    on_erasure_filed: Callable[[Any], None] | None = None,
) -> FastAPI:
    """The collector app for one data directory, on ``platform`` (else the one
    ``cdp.bootstrap.serving`` puts together from ``settings``, ``kafka`` and
    ``writer``: a writer is made if not given).

    With ``kafka`` the collector appends to the Kafka log topic instead of the
    embedded engine: a request is acknowledged once the broker acknowledged,
    nothing is folded here (the workers fold), dead letters go to the
    dead-letter topic, /health reports the broker and lookups read the
    compacted topics; the data directory still holds the sources and
    webhook/form configuration.

    The console (``cdp.console``) is served at ``/``; in Kafka mode its SQL
    screens read the Parquet archive ``archive`` when given.

    An erasure request filed over the API or the console is handed to
    ``on_erasure_filed`` in embedded mode (``cdp serve`` runs it in a pause:
    ``cdp.http.erasures``; without it the request waits for ``cdp privacy
    process``); in Kafka mode it runs at once in a thread."""
    platform = platform or bootstrap.serving(settings, kafka, writer)
    sources = SourceRegistry(settings.data_dir)
    the_writer = platform.writer
    profiles = platform.lookups
    audit_log = AuditLog(settings.data_dir)  # lookups and segment reads; both modes

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(platform.start)
        try:
            yield
        finally:
            try:
                await asyncio.to_thread(platform.stop)
            finally:
                await asyncio.to_thread(audit_log.close)  # the last second of lookups

    app = FastAPI(
        title="cdp collector",
        version="0.1.0",
        description="Segment-compatible HTTP tracking API of the event-sourced CDP.",
        lifespan=lifespan,
        responses=http_errors.DOCUMENTED,
        docs_url=None,  # FastAPI's pages load from a CDN; api_docs serves them locally
        redoc_url=None,
    )
    api_docs.install(app)
    app.add_middleware(cors.CorsMiddleware, sources=sources)  # browser routes: cdp/http/cors.py
    app.state.writer = the_writer
    app.state.sources = sources
    app.state.platform = platform
    app.state.kafka = platform.kafka
    app.state.reader = profiles
    app.state.audit = audit_log
    app.include_router(read_router(profiles, TokenRegistry(settings.data_dir), audit_log))
    # Kafka mode erases as soon as a request is filed (the API's or the console's).
    erase_now = (
        on_erasure_filed
        if platform.kafka is None
        else _erase_in_background(settings, platform.kafka)
    )
    app.state.on_privacy_filed = erase_now
    app.include_router(
        privacy.router(
            settings.data_dir,
            profiles,
            TokenRegistry(settings.data_dir),
            "embedded" if platform.kafka is None else "kafka",
            erase_now,
        )
    )

    console.install(
        app,
        settings,
        "embedded" if platform.kafka is None else "kafka",
        profiles,
        audit_log,
        console_data.embedded(profiles)
        if platform.kafka is None
        else console_data.ArchiveReads(settings, archive),
    )

    # Every write route submits through the intake, which drops suppressed people's events.
    intake = Intake(the_writer, platform.store_dead_letter, SuppressionGate.load(settings.data_dir))
    app.include_router(collect.router(sources, intake))
    app.include_router(bulk.router(sources, intake))
    app.include_router(webhooks.router(settings, sources, intake))
    app.include_router(sales_webhooks.router(settings, intake))
    app.include_router(forms.router(settings, intake))
    # Snowplow trackers: POST /com.snowplowanalytics.snowplow/tp2 and the GET /i pixel.
    snowplow.install(app, sources, intake.submit, intake.dead_letter)
    app.include_router(health.router(the_writer, platform.probe))
    # GET /metrics (Prometheus)
    metrics.install(app, the_writer, platform.metrics, lambda: intake.suppressions.refused)

    # Unknown routes, wrong methods, validation and unexpected errors answer in
    # the same error shape as the routes.
    http_errors.install(app, console.error_page)
    return app


def _erase_in_background(settings: Settings, kafka: KafkaSettings) -> Callable[[Any], None]:
    """Kafka mode: run an erasure request as soon as it is filed, in a thread (it
    reads the identity topics and writes the key topic; nothing here is exclusive).
    A failure is saved in the request; `cdp privacy process --bootstrap` re-runs it."""
    import threading  # noqa: PLC0415

    from cdp.adapters.kafka.erase import KafkaErasure  # noqa: PLC0415
    from cdp.services.privacy import erase  # noqa: PLC0415
    from connectors.destinations.erasure import erasure_steps  # noqa: PLC0415

    lock = threading.Lock()  # one erasure at a time, in filing order

    def run(request: Any) -> None:
        with lock, contextlib.suppress(Exception):  # recorded in the request by run()
            erase.run(
                settings, request, erasure_steps(settings, None), KafkaErasure(settings, kafka)
            )

    def start(request: Any) -> None:
        threading.Thread(target=run, args=(request,), name="cdp-erasure", daemon=True).start()

    return start
