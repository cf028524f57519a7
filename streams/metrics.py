"""The worker's own numbers: ``GET /metrics``, ``GET /health/live`` and progress lines.

``install(wiring, port)`` adds to the faust app, before it starts:

- an aiohttp server on ``port`` (``cdp worker --metrics-port``, 6066; 0 = off)
  served from faust's own event loop, so ``/health/live`` answering proves
  that loop is turning, not merely that a thread is alive. ``/metrics`` is the
  Prometheus text format (prometheus_client), computed at each scrape from
  counters the process already keeps; nothing asks the broker.
- a timer that logs one INFO line per stage every ``every`` seconds (records
  taken, lag) and a WARNING when a stage has lag but took nothing for
  ``stall`` seconds: what was missing when a dead member held partitions for
  minutes in silence (issue 15).

The numbers, per stage (``identity`` reads the input log, ``profiles`` reads
``events.by-customer``):

- records taken: faust's monitor counts every record its consumer hands to
  the stage's stream (a record read again after a rebalance counts again);
- lag: for each partition assigned to this worker, the high watermark of the
  consumer's last fetch minus its committed offset (or, before the first
  commit, its last read offset + 1): the worker's own view, with no request;
- agent crashes: each exception that ended an agent (faust's supervisor
  restarts it and the records are processed again);
- dead letters: records sent to the dead-letter topic (``streams.outputs``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from mode import Service
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from cdp.adapters.kafka import topics as kafka_topics
from streams.app import Wiring

log = logging.getLogger(__name__)

DEFAULT_PORT = 6066
PROGRESS_EVERY = 30.0
"""Seconds between progress lines."""
STALL_AFTER = 60.0
"""Seconds a stage may have lag without taking a record before a stall is logged."""


@dataclass(slots=True)
class _Progress:
    """What the last progress line saw of one stage."""

    taken: int = 0
    moved_at: float = field(default_factory=time.monotonic)


class WorkerStats:
    """Reads the worker's numbers from the faust app (see the module docstring)."""

    def __init__(self, wiring: Wiring) -> None:
        self.app = wiring.app
        self.outputs = wiring.outputs
        self.stages = {
            "identity": wiring.config.topic(kafka_topics.LOG),
            "profiles": wiring.config.topic(kafka_topics.EVENTS_BY_CUSTOMER),
        }
        self.deadletters = wiring.config.topic(kafka_topics.DEADLETTERS)
        self.crashes: dict[str, int] = {}
        self._progress = {stage: _Progress() for stage in self.stages}

    def count_crashes(self) -> None:
        """Count each agent's crashes (faust calls ``on_error`` before it restarts one)."""
        for name, agent in self.app.agents.items():
            before = agent._on_error  # faust's own hook, set by its constructor
            self.crashes.setdefault(name, 0)

            async def on_error(
                failed: Any, error: BaseException, name: str = name, before: Any = before
            ) -> None:
                self.crashes[name] = self.crashes.get(name, 0) + 1
                log.error("agent %s crashed (%r); faust restarts it", name, error)
                if before is not None:
                    await before(failed, error)

            agent._on_error = on_error

    def taken(self, stage: str) -> int:
        """Records faust handed to ``stage`` since the worker started."""
        return int(self.app.monitor.messages_received_by_topic.get(self.stages[stage], 0))

    def lag(self, stage: str) -> int | None:
        """Records of ``stage``'s partitions assigned here that this worker has not
        committed; ``None`` when it has none of them (or no fetch answered yet)."""
        topic = self.stages[stage]
        try:
            assigned = [tp for tp in self.app.consumer.assignment() if tp.topic == topic]
        except Exception:  # the consumer is not started yet (or is stopping)
            return None
        monitor = self.app.monitor
        total, known = 0, False
        for tp in assigned:
            end = _highwater(self.app, tp)
            if end is None:
                end = monitor.tp_end_offsets.get(tp)
            done = monitor.tp_committed_offsets.get(tp)
            if done is None and tp in monitor.tp_read_offsets:
                done = monitor.tp_read_offsets[tp] + 1
            if end is None or done is None:
                continue
            known = True
            total += max(0, int(end) - int(done))
        return total if known else None

    def dead_letters(self) -> int:
        """Records this worker sent to the dead-letter topic."""
        return int(self.outputs.sent.get(self.deadletters, 0))

    def progress(self, stall_after: float = STALL_AFTER) -> None:
        """Log one line per stage, and a warning for a stage that stalls."""
        now = time.monotonic()
        for stage, seen in self._progress.items():
            taken, lag = self.taken(stage), self.lag(stage)
            if taken != seen.taken:
                seen.moved_at = now
            log.info(
                "%s: %d records taken (+%d), lag %s",
                stage,
                taken,
                taken - seen.taken,
                lag if lag is not None else "not known yet (no record fetched or committed here)",
            )
            if lag and now - seen.moved_at >= stall_after:
                log.warning(
                    "%s stalled: %d records waiting, none taken for %.0f s",
                    stage,
                    lag,
                    now - seen.moved_at,
                )
            seen.taken = taken


def _highwater(app: Any, tp: Any) -> int | None:
    try:
        value = app.consumer.highwater(tp)
    except Exception:  # no fetch for it yet
        return None
    return None if value is None else int(value)


class _Collector(Collector):
    def __init__(self, stats: WorkerStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        taken = CounterMetricFamily(
            "cdp_worker_records_taken",
            "Records faust handed to a stage (identity: input log; profiles: by-customer).",
            labels=["stage"],
        )
        lag = GaugeMetricFamily(
            "cdp_worker_lag_records",
            "Records of the partitions assigned here not committed yet, by stage.",
            labels=["stage"],
        )
        for stage in stats.stages:
            taken.add_metric([stage], stats.taken(stage))
            behind = stats.lag(stage)
            if behind is not None:
                lag.add_metric([stage], behind)
        crashes = CounterMetricFamily(
            "cdp_worker_agent_crashes", "Agent crashes (each one restarted).", labels=["agent"]
        )
        for agent, count in sorted(stats.crashes.items()):
            crashes.add_metric([agent], count)
        yield taken
        yield lag
        yield crashes
        yield CounterMetricFamily(
            "cdp_worker_dead_letters",
            "Records sent to the dead-letter topic.",
            stats.dead_letters(),
        )
        yield GaugeMetricFamily(
            "cdp_worker_assigned_partitions",
            "Partitions assigned to this worker (changelogs included).",
            _assigned(stats.app),
        )


def _assigned(app: Any) -> int:
    try:
        return len(app.consumer.assignment())
    except Exception:  # not started yet
        return 0


class MetricsServer(Service):
    """``/metrics`` and ``/health/live`` on ``port``, on the faust app's loop."""

    def __init__(self, stats: WorkerStats, port: int, host: str = "0.0.0.0", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.port = port
        self.host = host
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(stats))
        self._runner: web.AppRunner | None = None

    async def on_start(self) -> None:
        server = web.Application()
        server.router.add_get("/metrics", self._metrics)
        server.router.add_get("/health/live", self._live)
        self._runner = web.AppRunner(server, access_log=None)
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self.host, self.port).start()
        except OSError as error:  # a taken port must not stop the folding
            log.error("no /metrics: cannot listen on %s:%d (%s)", self.host, self.port, error)
            return
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def on_stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _live(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "live"})


def show_progress(loglevel: str) -> None:
    """Show the ``streams`` loggers at INFO (or ``loglevel`` when lower) whatever
    ``loglevel`` faust's own logs get: faust gives its handlers ``loglevel``, so
    above INFO the progress and stall lines get a handler of their own."""
    level = logging.getLevelName(loglevel.upper())
    level = level if isinstance(level, int) else logging.WARNING
    streams = logging.getLogger("streams")
    streams.setLevel(min(level, logging.INFO))
    if level > logging.INFO and not streams.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter("[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")
        )
        streams.addHandler(handler)
        streams.propagate = False  # faust's handlers would drop INFO anyway


def install(
    wiring: Wiring,
    port: int = DEFAULT_PORT,
    every: float = PROGRESS_EVERY,
    host: str = "0.0.0.0",  # every interface: scraped from outside the pod
) -> WorkerStats:
    """Count, log progress every ``every`` seconds, and serve ``port`` (0: no server).
    Call after ``streams.agents.register`` and before the app starts."""
    stats = WorkerStats(wiring)
    stats.count_crashes()

    @wiring.app.timer(interval=every)  # type: ignore[untyped-decorator]  # faust leaves it untyped
    async def progress() -> None:
        stats.progress()

    if port:
        wiring.app.add_dependency(MetricsServer(stats, port, host))
    return stats
