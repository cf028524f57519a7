"""Streaming the simulated shop out: events in chunks, JSON Lines on disk.

Customers are simulated ``CHUNK_CUSTOMERS`` at a time; each chunk's events are
sorted by timestamp and handed on before the next chunk starts, so memory
stays bounded whatever the total. Every customer lives in exactly one chunk,
so each customer's events are in time order in the output; the output as a
whole is in time order within each chunk.

Each customer draws from its own ``random.Random``, seeded from the master
``random.Random(config.seed)`` in customer order: the same config gives the
same bytes, and a customer's events do not depend on the chunk size.

``generate`` serialises each customer's events as soon as they are simulated
and sorts the chunk as ``(time, line)`` pairs: a third of the memory of the
dicts, which are freed while still in the CPU cache. With ``workers > 1`` the
chunks are rendered in worker processes and written in order: the same bytes,
faster on a multi-core machine.
"""

from __future__ import annotations

import multiprocessing
import random
from collections import Counter, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

import orjson

from cdp.demo.generate.clock import JST, IsoFormatter, Window, monthly_campaigns
from cdp.demo.generate.config import GenerateConfig, GenerateStats
from cdp.demo.generate.journey import World
from cdp.demo.generate.shop import simulate

CHUNK_CUSTOMERS: Final = 1_000
"""Customers simulated (and events held in memory) at a time: ~40,000 events,
~30 MB as serialised lines. Part of the output's shape (time order restarts
at each chunk), so changing it changes the bytes."""

Chunk = tuple[int, list[int]]
"""The first customer index of a chunk and the seeds of its customers."""
Rendered = tuple[bytes, int, Counter[str]]
"""A chunk as JSON Lines, its number of events, and its events by tag."""

_by_time = itemgetter(0)


@lru_cache(maxsize=4)
def _world(config: GenerateConfig) -> World:
    window = Window.ending(config.end, config.months)
    return World(
        window=window,
        campaigns=monthly_campaigns(window),
        iso=IsoFormatter(window),
        digits=max(4, len(str(config.customer_count))),
        today=datetime.fromtimestamp(window.end, JST).date(),
    )


def _chunks(config: GenerateConfig) -> Iterator[Chunk]:
    master = random.Random(config.seed)
    total = config.customer_count
    for low in range(0, total, CHUNK_CUSTOMERS):
        yield low, [master.getrandbits(64) for _ in range(low, min(total, low + CHUNK_CUSTOMERS))]


def iter_events(config: GenerateConfig) -> Iterator[dict[str, Any]]:
    """Raw events in Segment wire form (camelCase envelope, ISO-8601 ``Z`` times).

    Every event has ``messageId``, ``timestamp`` and ``receivedAt`` and passes
    ``schemas.decode``; ``schemaVersion`` is left out (current version). The
    order is the order ``generate`` writes. Every dict, nested ones included,
    belongs to one event only: callers may mutate them.
    """
    world = _world(config)
    for low, seeds in _chunks(config):
        timed: list[tuple[float, dict[str, Any]]] = []
        for offset, seed in enumerate(seeds):
            timed += simulate(world, low + offset, seed)
        timed.sort(key=_by_time)  # stable: simultaneous events keep their order
        for _, raw in timed:
            yield raw


def render(config: GenerateConfig, low: int, seeds: list[int]) -> Rendered:
    """One chunk as JSON Lines, in the same order as ``iter_events``."""
    world = _world(config)
    dumps = orjson.dumps
    counts: Counter[str] = Counter()
    lines: list[tuple[float, bytes]] = []
    for offset, seed in enumerate(seeds):
        events = simulate(world, low + offset, seed)
        # By tag: a track's event name (only tracks have one), else the message type.
        counts.update([raw.get("event") or raw["type"] for _, raw in events])
        # ``+ b"\n"`` also copies orjson's over-allocated (8 KiB) buffer down to size.
        lines += [(t, dumps(raw) + b"\n") for t, raw in events]
    lines.sort(key=_by_time)  # the same stable sort as iter_events
    return b"".join([line for _, line in lines]), len(lines), counts


def _rendered(config: GenerateConfig, workers: int) -> Iterator[Rendered]:
    if workers == 1:
        for low, seeds in _chunks(config):
            yield render(config, low, seeds)
        return
    # spawn, not fork: the caller may hold threads (Kafka clients, a web server).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque[Future[Rendered]] = deque()
        try:
            for low, seeds in _chunks(config):
                pending.append(pool.submit(render, config, low, seeds))
                if len(pending) > workers:  # bounded: at most workers + 1 chunks in flight
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # the caller failed or stopped early: don't render what nobody will write
            for future in pending:
                future.cancel()


def generate(
    path: Path,
    config: GenerateConfig,
    progress: Callable[[int], None] | None = None,
    *,
    workers: int = 1,
) -> GenerateStats:
    """Write the data set to ``path`` as JSON Lines (one orjson event per line).

    Streams chunk by chunk; ``progress`` is called after each chunk with the
    number of events written so far. ``workers > 1`` renders chunks in that
    many processes (about 100 MB each); the file is the same. The parent
    directory is created if missing; an existing file is replaced.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    path.parent.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    written = size = 0
    with path.open("wb") as out:
        for data, events, chunk_counts in _rendered(config, workers):
            out.write(data)
            counts.update(chunk_counts)
            written += events
            size += len(data)
            if progress is not None:
                progress(written)
    window = _world(config).window
    return GenerateStats(
        events=written,
        customers=config.customer_count,
        by_type=dict(sorted(counts.items())),
        start=datetime.fromtimestamp(window.start, UTC),
        end=datetime.fromtimestamp(window.end, UTC),
        bytes=size,
    )
