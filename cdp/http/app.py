"""The HTTP service (``cdp serve``): the Segment-compatible collector.

Composition module: builds a FastAPI app around one ``GroupCommitWriter``
(which owns the engine), the source registry and the collector semantics in
``cdp.services.collector``. Routes only parse, call, and format.

Why FastAPI on uvicorn: an ASGI stack that holds thousands of concurrent
keep-alive connections on one core, serves OpenAPI docs, and is the most
widely deployed Python web stack; the request bodies are read raw and parsed
with orjson (not FastAPI's pydantic body models) because the collector's
contracts, limits and error shapes are Segment's, not the framework's.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from cdp.adapters.kafka.codec import DeadLetterMessage
from cdp.adapters.kafka.log import KafkaEventLog, broker_reachable
from cdp.adapters.kafka.read import KafkaLookups
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.adapters.socket.server import serve_local
from cdp.config import Settings
from cdp.errors import AuthError, CdpError, UnmappableError
from cdp.http import cors
from cdp.http import docs as api_docs
from cdp.http import errors as http_errors
from cdp.http.errors import error_body, error_response
from cdp.http.read import read_router
from cdp.ports.log import AppendResult, Record
from cdp.read.reader import ProfileReader, engine_connection
from cdp.runtime.engine import Engine
from cdp.runtime.writer import Backpressure, GroupCommitWriter
from cdp.services import collector, deadletters, webhook_settings
from cdp.services.ingest import IngestReport, ingest
from cdp.services.message_ids import form_seed
from cdp.services.sources import SourceRegistry
from cdp.services.tokens import TokenRegistry
from connectors.sources import forms, snowplow_routes
from connectors.sources.webhooks import Mapped, meta, orders, shopify, x
from connectors.sources.webhooks.registry import SIGNED, SignedWebhook

log = logging.getLogger("cdp.api")
SUCCESS = {"success": True}
MAX_BULK_BYTES = 100 * 1024 * 1024  # decompressed JSONL per bulk request
MAX_WEBHOOK_BYTES = 1024 * 1024
MAX_FORM_BYTES = 256 * 1024


# Every 4xx/5xx of every route has one shape: cdp.http_errors says which.
_error = error_response


def _health_problem(body: dict[str, Any]) -> str:
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


def basic_username(header: str | None) -> str | None:
    """The username of an HTTP Basic ``Authorization`` header (Segment's write key)."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):  # binascii.Error, and non-ASCII text
        raise AuthError("Authorization header is not valid Basic credentials") from None
    return decoded.partition(":")[0] or None


async def _read_body(request: Request, limit: int) -> bytes:
    """The raw body, refusing more than ``limit`` bytes on the wire."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise collector.RequestRejected(
            [collector.Problem(None, "", f"request is over the {limit // 1024} KB limit")], 413
        )
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise collector.RequestRejected(
                [collector.Problem(None, "", f"request is over the {limit // 1024} KB limit")], 413
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _store_dead_letter(
    appender: Any,
    *,
    received_at: datetime,
    source: str | None,
    endpoint: str,
    reason: str,
    body: bytes,
) -> None:
    """Keep a rejected request: the dead_letters table (embedded) or topic (Kafka)."""
    if isinstance(appender, KafkaEventLog):
        appender.add_dead_letter(DeadLetterMessage(received_at, source, endpoint, reason, body))
    else:
        deadletters.add(
            appender.con,
            received_at=received_at,
            source=source,
            endpoint=endpoint,
            reason=reason,
            body=body,
        )


def _bulk_import(
    writer: GroupCommitWriter[Any], body: bytes, source: str, received_at: datetime
) -> IngestReport:
    """Run a JSONL body through ``ingest`` on a worker thread, appending via the writer."""

    class WriterSink:
        def append(self, records: list[Record], /) -> AppendResult:
            while True:
                try:
                    return writer.submit(records).result()
                except Backpressure as error:
                    time.sleep(error.retry_after)  # a bulk import waits instead of failing

    rejected: list[tuple[str, bytes, str]] = []

    def keep(location: str, raw: bytes | str | dict[str, Any], reason: str) -> None:
        data = (
            raw
            if isinstance(raw, bytes)
            else orjson.dumps(raw)
            if isinstance(raw, dict)
            else raw.encode()
        )
        rejected.append((location, data, reason))

    lines = ((f"line {n}", line.strip()) for n, line in enumerate(body.split(b"\n"), 1))
    report = ingest(
        ((loc, line) for loc, line in lines if line),
        WriterSink(),
        source=source,
        received_at=received_at,
        on_reject=keep,
    )
    if rejected:

        def store(appender: Any) -> None:
            for location, data, reason in rejected:
                _store_dead_letter(
                    appender,
                    received_at=received_at,
                    source=source,
                    endpoint="bulk",
                    reason=f"{location}: {reason}",
                    body=data,
                )

        writer.call(store).result()
    return report


def create_app(
    settings: Settings,
    writer: GroupCommitWriter[Any] | None = None,
    *,
    kafka: KafkaSettings | None = None,
    reader: Any = None,
) -> FastAPI:
    """The collector app for one data directory (a writer is made if not given).

    With ``kafka`` the collector appends to the Kafka log topic instead of the
    embedded engine: a request is acknowledged once the broker acknowledged,
    nothing is folded here (the workers fold), dead letters go to the
    dead-letter topic, and /health reports the broker. ``reader`` (kept on
    ``app.state.reader``) is the distributed runtime's profile reader for the
    read routes; the data directory still holds the sources and webhook/form
    configuration."""
    sources = SourceRegistry(settings.data_dir)
    own_writer = writer is None
    the_writer: GroupCommitWriter[Any] = writer or (
        GroupCommitWriter(lambda: KafkaEventLog.open(kafka))
        if kafka is not None
        else GroupCommitWriter(lambda: Engine.open(settings))
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if own_writer:
            await asyncio.to_thread(the_writer.start)
            await asyncio.to_thread(profiles.warm)  # lookup indexes made at start-up
        # The CLI's door to this data directory while the server owns it (embedded).
        embedded = own_writer and kafka is None
        local = await asyncio.to_thread(serve_local, settings.data_dir, the_writer, embedded)
        try:
            yield
        finally:
            if local is not None:
                await asyncio.to_thread(local.close)
            profiles.close()
            if own_writer:
                await asyncio.to_thread(the_writer.stop)

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
    app.state.kafka = kafka
    # Lookups: from the engine's database in embedded mode; from the compacted
    # profile/identity topics in Kafka mode (any replica answers for any customer).
    profiles: Any = reader
    if profiles is None and kafka is not None:
        profiles = KafkaLookups(kafka, settings.runtime_config().scoring)
    if profiles is None:
        profiles = ProfileReader(settings, lambda: the_writer.call(engine_connection).result())
    app.state.reader = profiles
    app.include_router(read_router(profiles, TokenRegistry(settings.data_dir)))

    async def run(fn: Callable[[Any], Any]) -> Any:
        return await asyncio.wrap_future(the_writer.call(fn))

    async def dead_letter(
        source: str, endpoint: str, reason: str, body: bytes, received_at: datetime
    ) -> None:
        await run(
            lambda appender: _store_dead_letter(
                appender,
                received_at=received_at,
                source=source,
                endpoint=endpoint,
                reason=reason,
                body=body,
            )
        )

    async def collect(endpoint: str, request: Request) -> Response:
        received_at = datetime.now(UTC)
        try:
            header_key = basic_username(request.headers.get("authorization"))
            raw = await _read_body(request, collector.MAX_REQUEST_BYTES)
            # Limits and parsing come before authentication only as far as needed
            # to find a key in the body; nothing is stored for unknown callers.
            body = collector.decompress(raw, request.headers.get("content-encoding"))
        except AuthError as error:
            return _error(401, str(error))
        except collector.RequestRejected as error:
            return _error(error.status, str(error), errors=[p.as_dict() for p in error.problems])
        parse_error: collector.RequestRejected | None = None
        items: list[dict[str, Any]] = []
        body_key: str | None = None
        try:
            items, body_key = collector.parse(endpoint, body)
        except collector.RequestRejected as error:
            parse_error = error
        try:
            source = sources.authenticate(header_key or body_key)
            cors.check_source_origin(request.scope, sources, source)
        except cors.OriginNotAllowedError as error:  # a page the source does not allow
            return _error(403, str(error))
        except AuthError as error:
            return _error(401, str(error))
        try:
            if parse_error is not None:
                raise parse_error
            records = collector.to_records(
                items,
                received_at,
                source,
                single=endpoint in collector.SINGLE_TYPES,
                server_received_at=True,
            )
        except collector.RequestRejected as error:
            await dead_letter(source, endpoint, str(error), body, received_at)
            return _error(error.status, str(error), errors=[p.as_dict() for p in error.problems])
        try:
            await asyncio.wrap_future(the_writer.submit(records))
        except Backpressure as error:
            return _error(503, str(error), headers={"Retry-After": str(error.retry_after)})
        return JSONResponse(SUCCESS)

    def route(endpoint: str) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            return await collect(endpoint, request)

        handler.__name__ = f"collect_{endpoint}"
        handler.__doc__ = (
            f"Segment `{endpoint}` call. Write key as HTTP Basic username or `writeKey`. "
            '200 `{"success": true}` once durable; 400/413 name each bad item; '
            "401 bad key; 503 + Retry-After when the log is saturated."
        )
        return handler

    body_doc = {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "A Segment-spec event (see "
                        'schemas/jsonschema/); /v1/batch takes {"batch": [events], "context", '
                        '"integrations", "sentAt"}.',
                    }
                }
            },
        }
    }
    for endpoint in (*collector.SINGLE_TYPES, *collector.BATCH_ENDPOINTS):
        app.post(f"/v1/{endpoint}", openapi_extra=body_doc, tags=["collector"])(route(endpoint))
    for short, endpoint in collector.SHORT_PATHS.items():  # analytics.js: /v1/t, ..., /v1/b
        app.post(f"/v1/{short}", include_in_schema=False)(route(endpoint))

    @app.post(
        "/v1/bulk",
        tags=["collector"],
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            }
        },
    )
    async def bulk(request: Request) -> Response:
        """Bulk import: JSON Lines of Segment events (gzip allowed, up to 100 MB).

        Like `cdp ingest`: bad lines are listed by line number and kept as dead
        letters, good lines are appended; re-sending the file adds nothing
        (dedup by messageId, or a hash of a line's content and position when it
        has none, so two identical lines are still two events), so an
        interrupted import is resumed by sending it again. 200 when every line
        was accepted, 422 (with the same report) when some were rejected.
        """
        received_at = datetime.now(UTC)
        try:
            source = sources.authenticate(basic_username(request.headers.get("authorization")))
            raw = await _read_body(request, MAX_BULK_BYTES)
            body = collector.decompress(
                raw, request.headers.get("content-encoding"), MAX_BULK_BYTES
            )
        except AuthError as error:
            return _error(401, str(error))
        except collector.RequestRejected as error:
            return _error(error.status, str(error))
        report = await asyncio.to_thread(_bulk_import, the_writer, body, source, received_at)
        if report.rejected:
            return _error(
                422,
                f"{report.rejected} of {report.read} lines were rejected (see errors)",
                **report.as_dict(),
            )
        return JSONResponse({"success": True, **report.as_dict()})

    # ------------------------------------------------------------ webhooks
    hooks = webhook_settings.load(settings.data_dir)

    async def webhook(
        platform: str,
        request: Request,
        verify: Callable[[bytes], None],
        mapper: Callable[[Any], list[dict[str, Any]] | Mapped],
        source: str,
        endpoint: str | None = None,
    ) -> Response:
        received_at = datetime.now(UTC)
        endpoint = endpoint or f"webhook:{platform}"
        try:
            body = await _read_body(request, MAX_WEBHOOK_BYTES)
            verify(body)  # unverifiable requests are refused and never stored
        except AuthError as error:
            return _error(401, str(error))
        except collector.RequestRejected as error:
            return _error(error.status, str(error))
        letters: list[tuple[str, bytes]] = []
        records: list[Record] = []
        try:
            payload = orjson.loads(body)
            if not isinstance(payload, dict):
                raise UnmappableError("payload is not a JSON object")
            mapped = mapper(payload)
            events, skipped = mapped if isinstance(mapped, Mapped) else (mapped, [])
            letters.extend((str(s), orjson.dumps(s.item)) for s in skipped)
            records = collector.to_records(events, received_at, source)
        except (orjson.JSONDecodeError, CdpError) as error:
            records, letters = [], [(f"{type(error).__name__}: {error}", body)]
        if records:
            try:
                await asyncio.wrap_future(the_writer.submit(records))
            except Backpressure as error:  # the platform retries; nothing was stored
                return _error(503, str(error), headers={"Retry-After": str(error.retry_after)})
        for reason, data in letters:
            await dead_letter(source, endpoint, reason, data, received_at)
        # Verified input is acknowledged even when it could not be mapped: it is
        # safe in the dead-letter store, and a 4xx would only make the platform
        # resend it forever.
        return JSONResponse(
            {"success": True, "events": len(records), "dead_lettered": len(letters)}
        )

    told_unconfigured: set[str] = set()

    def disabled(platform: str) -> Response:
        # The caller is not authenticated: the answer names no file; the
        # operator learns where to configure it from the server log (once).
        if platform not in told_unconfigured:
            told_unconfigured.add(platform)
            log.warning(
                "a request came for the %s webhook, which is not configured: add [%s] to %s",
                platform,
                platform,
                settings.data_dir / webhook_settings.FILE_NAME,
            )
        return _error(404, f"the {platform} webhook is not configured")

    @app.post("/v1/webhooks/shopify", tags=["webhooks"])
    async def shopify_webhook(request: Request) -> Response:
        """Shopify orders/create, orders/paid, refunds/create (X-Shopify-Hmac-Sha256)."""
        if hooks.shopify is None:
            return disabled("shopify")
        conf = hooks.shopify
        topic = request.headers.get("x-shopify-topic", "")
        return await webhook(
            "shopify",
            request,
            lambda body: shopify.verify(
                body, request.headers.get("x-shopify-hmac-sha256"), conf.secret
            ),
            lambda payload: shopify.to_events(topic, payload),
            conf.source or "shopify",
            endpoint=f"webhook:shopify:{topic}",
        )

    @app.post("/v1/webhooks/orders", tags=["webhooks"])
    async def orders_webhook(request: Request) -> Response:
        """The generic order JSON (connectors/sources/webhooks/orders.py); write key auth."""
        try:
            source = sources.authenticate(basic_username(request.headers.get("authorization")))
        except AuthError as error:
            return _error(401, str(error))
        return await webhook("orders", request, lambda _body: None, orders.to_events, source)

    @app.get("/v1/webhooks/meta", tags=["webhooks"])
    async def meta_challenge(request: Request) -> Response:
        """Meta's subscription check: echo hub.challenge when hub.verify_token matches."""
        if hooks.meta is None:
            return disabled("meta")
        try:
            challenge = meta.verify_challenge(request.query_params, hooks.meta.verify_token)
        except AuthError as error:
            return _error(403, str(error))
        return Response(challenge, media_type="text/plain")

    @app.get("/v1/webhooks/x", tags=["webhooks"])
    async def x_crc(crc_token: str = "") -> Response:
        """X Account Activity CRC check: the HMAC of crc_token as response_token."""
        if hooks.x is None:
            return disabled("x")
        try:
            return JSONResponse(x.crc_response(crc_token, hooks.x.consumer_secret))
        except AuthError as error:
            return _error(400, str(error))

    def signed_route(hook: SignedWebhook) -> Callable[[Request], Awaitable[Response]]:
        async def handler(request: Request) -> Response:
            conf = hooks.signed(hook.platform)
            if conf is None:
                return disabled(hook.platform)
            header = request.headers.get(hook.signature_header)
            return await webhook(
                hook.platform,
                request,
                lambda body: hook.verify(body, header, conf.secret),
                hook.to_events,
                conf.source or hook.default_source,
            )

        handler.__name__ = f"{hook.platform}_webhook"
        handler.__doc__ = f"{hook.platform} webhook events (signed in {hook.signature_header})."
        return handler

    for hook in SIGNED.values():
        app.post(f"/v1/webhooks/{hook.platform}", tags=["webhooks"])(signed_route(hook))

    # --------------------------------------------------------------- forms
    form_config = forms.load_forms(settings.data_dir / "forms.toml")

    @app.post("/v1/forms/{form_id}", tags=["forms"])
    async def form_post(form_id: str, request: Request) -> Response:
        """An HTML form post (urlencoded or multipart) or JSON, mapped by forms.toml to
        Form Submitted + the identify it implies (+ Consent Updated). 303 to the form's
        redirect when configured, else JSON."""
        received_at = datetime.now(UTC)
        try:
            mapping = form_config.mapping_for(form_id)
        except UnmappableError as error:  # unconfigured: an unauthenticated caller, not stored
            log.info("form post refused: %s", error)  # the hint (a file name) stays here
            return _error(404, f"the form {form_id!r} is not configured")
        source = f"form:{form_id}"
        try:
            body = await _read_body(request, MAX_FORM_BYTES)
        except collector.RequestRejected as error:
            return _error(error.status, str(error))
        try:
            fields = forms.parse_body(request.headers.get("content-type", ""), body)
            seed = form_seed()  # every post its own events, as Segment gives every message an id
            events = forms.to_events(form_id, fields, mapping, received_at, seed)
            records = collector.to_records(events, received_at, source)
        except (CdpError, ValueError) as error:
            status = error.status if isinstance(error, collector.RequestRejected) else 400
            await dead_letter(source, f"form:{form_id}", str(error), body, received_at)
            return _error(status, str(error))
        try:
            await asyncio.wrap_future(the_writer.submit(records))
        except Backpressure as error:
            return _error(503, str(error), headers={"Retry-After": str(error.retry_after)})
        if mapping.redirect:
            return RedirectResponse(mapping.redirect, status_code=303)
        return JSONResponse({"success": True, "events": len(records)})

    # Snowplow trackers: POST /com.snowplowanalytics.snowplow/tp2 and the GET /i pixel.
    snowplow_routes.install(
        app, sources, lambda records: asyncio.wrap_future(the_writer.submit(records)), dead_letter
    )

    @app.get("/health", tags=["ops"])
    async def health() -> JSONResponse:
        """Liveness, the writer's queue depth and whether projections are being saved.

        503 when the last projection checkpoint failed: events are still durable
        in the log, but lookups and SQL would be stale."""
        error = the_writer.checkpoint_error
        body: dict[str, Any] = {
            "ok": error is None,
            "pending": the_writer.pending,
            "group_commits": the_writer.groups,
            "checkpoint_error": error,
        }
        if kafka is not None:  # Kafka mode: no checkpoints; the broker is what matters
            reachable = await asyncio.to_thread(broker_reachable, kafka.bootstrap)
            body["kafka"] = {
                "bootstrap": kafka.bootstrap,
                "topic": kafka.topic("log"),
                "reachable": reachable,
                "last_append_error": the_writer.last_error,
            }
            body["ok"] = reachable and the_writer.last_error is None
            if isinstance(profiles, KafkaLookups):
                lag = profiles.lag_seconds()
                body["profile_reader_lag_seconds"] = None if lag == float("inf") else lag
        if body["ok"]:
            return JSONResponse(body)
        # Unhealthy answers carry the error shape too, with the details beside it.
        return JSONResponse(error_body(503, _health_problem(body), **body), status_code=503)

    # Unknown routes, wrong methods, validation and unexpected errors answer in
    # the same error shape as the routes.
    http_errors.install(app)
    return app
