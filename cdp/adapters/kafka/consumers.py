"""How the platform builds its Kafka consumers, and how it tells where a partition ends.

Every kafka-python consumer of the platform (the log adapter's reader, the
profile reader of ``cdp serve --kafka``, the Parquet archiver, the test and
bench followers) is built by ``open_consumer``: no consumer group, nothing
committed (the reader keeps its own position: a checkpoint, a manifest, or
memory), no topic created by reading it, and a missing offset read from the
start unless the caller says otherwise. Callers name what differs (client id,
fetch sizes and waits) and what an unreachable broker is to them.

``known_ends`` is the end of each partition as far as the client can tell:
the broker's end offset, raised to the high watermark of the last fetch,
because tansu answers ``ListOffsets(latest)`` with the base offset of the last
batch + 1 when that batch holds several records.

kafka-python is imported only when a consumer is built, so importing this
module costs nothing in embedded mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

Unreachable = Callable[[Exception], Exception]
"""Turns kafka-python's error into the caller's own (``LogUnavailableError``,
``ArchiveError``...), raised without the kafka-python chain."""

CLIENT_DEFAULTS: dict[str, Any] = {"metrics_enabled": False}
"""What every kafka-python client of the platform shares: no client metrics.
Nothing reads them (the platform's own are at /metrics), and recording them
cost about an eighth of the CPU of each produce round trip (measured on the
key topic's writer: 480 → 420 µs per acknowledged write)."""

DEFAULTS: dict[str, Any] = {
    **CLIENT_DEFAULTS,
    "group_id": None,
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "allow_auto_create_topics": False,
}
"""What every consumer of the platform shares (see the module docstring)."""


def kafka_python() -> Any:
    """The kafka-python package (with ``kafka.errors``), imported on first use."""
    import kafka  # noqa: PLC0415  (kafka-python loads only when Kafka is used)
    import kafka.errors  # noqa: PLC0415

    return kafka


def open_consumer(
    bootstrap: str,
    *,
    client_id: str | None = None,
    unreachable: Unreachable | None = None,
    **options: Any,
) -> Any:
    """A kafka-python ``KafkaConsumer`` for ``bootstrap`` with ``DEFAULTS`` and ``options``.

    ``unreachable`` maps a ``KafkaError`` raised while connecting to the error
    to raise instead; without it the ``KafkaError`` propagates.
    """
    kafka = kafka_python()
    settings: dict[str, Any] = {"bootstrap_servers": bootstrap, **DEFAULTS}
    if client_id is not None:
        settings["client_id"] = client_id
    settings.update(options)
    try:
        return kafka.KafkaConsumer(**settings)
    except kafka.errors.KafkaError as error:
        if unreachable is None:
            raise
        raise unreachable(error) from None


def poll(consumer: Any, timeout_ms: int, **options: Any) -> dict[Any, list[Any]]:
    """``consumer.poll`` with one fetch round per call; when nothing came, it sleeps
    out the rest of ``timeout_ms`` instead of fetching again.

    kafka-python fetches again and again until ``timeout_ms`` runs out. A broker
    that answers an empty fetch at once instead of holding it ``fetch_max_wait_ms``
    (noida-db 0.2.3: ~250 fetches/s and 70% of a core for one idle consumer,
    ``python -m bench.idle_cpu``) makes every idle reader spin. Records that
    arrive during the sleep come with the next call: at most ``timeout_ms`` late."""
    started = time.monotonic()
    batches: dict[Any, list[Any]] = consumer.poll(timeout_ms=0, **options)
    if not batches:
        rest = timeout_ms / 1000 - (time.monotonic() - started)
        if rest > 0:
            time.sleep(rest)
    return batches


def known_ends(consumer: Any, partitions: Iterable[Any]) -> dict[Any, int]:
    """partition → its end: the broker's end offset or the last fetch's high
    watermark, whichever is higher (see the module docstring)."""
    wanted = list(partitions)
    ends = consumer.end_offsets(wanted) if wanted else {}
    return {tp: max(ends.get(tp, 0), consumer.highwater(tp) or 0) for tp in wanted}
