"""``GET /metrics``: the API's numbers in the Prometheus text format (prometheus_client).

What every mode exports:

- ``cdp_http_requests_total{route,method,code}``: requests answered, by route
  *template* (``/v1/batch``, ``/v1/profiles/{identifier:path}``), so the collector's
  accepted (2xx) and refused (4xx, 503) requests and the lookups served are
  counted without ever naming an identifier;
- ``cdp_writer_pending_events``, ``cdp_writer_group_commits_total``,
  ``cdp_writer_checkpoint_failing`` and ``cdp_writer_append_failing``: the
  writer's queue and whether its last checkpoint (embedded) or append (Kafka)
  failed;
- ``cdp_suppressed_events_total``: events the write routes refused because
  they carry a suppressed person's identifier (docs/privacy.md), answered as
  accepted but never stored.

A mode adds its own gauges through :data:`ModeMetrics` from the wiring (Kafka:
the workers' lag per topic and its age, their member count, the profile
reader's lag); this module does not know which mode it serves. Values are read
when Prometheus scrapes, from what the process already holds: a scrape never
waits on the broker.

No token: Prometheus scrapes usually carry none, and nothing here is personal
(labels are route templates, topic names and status codes). Restrict the port
at the network level if even the counts are sensitive.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cdp.runtime.writer import GroupCommitWriter


@dataclass(frozen=True, slots=True)
class ModeGauge:
    """One sample of a mode's gauge; samples of one ``name`` share ``doc`` and label names."""

    name: str
    doc: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


#: The mode's own gauges, read at each scrape; must not block on I/O.
ModeMetrics = Callable[[], Iterable[ModeGauge]]


class _WriterCollector(Collector):
    """The writer's numbers and the mode's gauges, read at scrape time."""

    def __init__(
        self,
        writer: GroupCommitWriter[Any],
        mode: ModeMetrics | None,
        suppressed: Callable[[], int] | None = None,
    ) -> None:
        self.writer = writer
        self.mode = mode
        self.suppressed = suppressed

    def collect(self) -> Iterator[Metric]:
        writer = self.writer
        yield GaugeMetricFamily(
            "cdp_writer_pending_events", "Events waiting for the writer.", writer.pending
        )
        yield CounterMetricFamily(
            "cdp_writer_group_commits", "Group appends the writer made.", writer.groups
        )
        yield GaugeMetricFamily(
            "cdp_writer_checkpoint_failing",
            "1 when the last projection checkpoint failed (embedded mode).",
            int(writer.checkpoint_error is not None),
        )
        yield GaugeMetricFamily(
            "cdp_writer_append_failing",
            "1 when the last group append failed.",
            int(writer.last_error is not None),
        )
        if self.suppressed is not None:
            yield CounterMetricFamily(
                "cdp_suppressed_events",
                "Events refused (answered as accepted, not stored): a suppressed person's.",
                self.suppressed(),
            )
        if self.mode is not None:
            yield from _families(self.mode())


def _families(gauges: Iterable[ModeGauge]) -> Iterator[Metric]:
    families: dict[str, GaugeMetricFamily] = {}
    for gauge in gauges:
        family = families.get(gauge.name)
        if family is None:
            family = GaugeMetricFamily(gauge.name, gauge.doc, labels=sorted(gauge.labels))
            families[gauge.name] = family
        family.add_metric([gauge.labels[k] for k in sorted(gauge.labels)], gauge.value)
    yield from families.values()


class _CountRequests:
    """ASGI middleware: count each answered request by route template, method and code."""

    def __init__(self, app: ASGIApp, requests: Counter) -> None:
        self.app = app
        self.requests = requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        code = 500

        async def sending(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")
            # The template, never the path: a path may carry an identifier.
            template = getattr(route, "path", None) or "(unmatched)"
            self.requests.labels(template, scope.get("method", ""), str(code)).inc()


def install(
    app: FastAPI,
    writer: GroupCommitWriter[Any],
    mode: ModeMetrics | None = None,
    suppressed: Callable[[], int] | None = None,
) -> CollectorRegistry:
    """Mount ``GET /metrics`` on ``app`` and count its requests; the app's own registry
    (not prometheus_client's global one: several apps may live in one process).
    ``suppressed``: how many events the suppression gate refused so far."""
    registry = CollectorRegistry(auto_describe=False)
    requests = Counter(
        "cdp_http_requests",
        "HTTP requests answered, by route template, method and status code.",
        ["route", "method", "code"],
        registry=registry,
    )
    registry.register(_WriterCollector(writer, mode, suppressed))
    app.add_middleware(_CountRequests, requests=requests)

    @app.get("/metrics", tags=["ops"], include_in_schema=True)
    async def metrics() -> Response:
        """Prometheus text format: request counts, the writer, and the mode's gauges
        (Kafka: the workers' lag). No token; nothing personal (see docs/api.md)."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return registry
