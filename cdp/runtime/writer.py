"""One writer thread that owns the appender, with group commit and backpressure.

The appender is the embedded ``Engine`` (log + projections in one DuckDB
file) or, in Kafka mode, a ``KafkaEventLog`` (no projections: workers fold).
DuckDB allows one writing connection, and a commit (an fsync, or a broker
acknowledgement) costs the same for one event as for thousands. So every request hands its validated records
to ``submit``, which returns a future; the writer thread takes everything
queued, appends it in ONE transaction, and only then resolves each request's
future with its own slice of the result. A request is answered 2xx only after
its events are durable.

When more than ``max_pending`` records are waiting, ``submit`` refuses at
once with ``Backpressure`` (HTTP 503 + Retry-After): the caller retries, and
nothing is ever accepted and then dropped.

``call(fn)`` runs any other work on the appender (dead letters, lookups) on
the same thread, in order with the appends. An ``Engine``'s runtime is
checkpointed every ``checkpoint_every`` seconds while there are changes, and
on ``stop``; other appenders have nothing to checkpoint.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from cdp.errors import CdpError, TransientError
from cdp.ports.log import AppendResult, Record
from cdp.runtime.engine import Engine

T = TypeVar("T")
log = logging.getLogger(__name__)


class Appender(Protocol):
    """What the writer thread owns: appends durably (``Engine``, any ``EventLog``)."""

    def append(self, records: Sequence[Record], /) -> AppendResult: ...

    def close(self) -> None: ...


A = TypeVar("A", bound=Appender)


class Backpressure(TransientError, CdpError):
    """The log cannot keep up right now; retry after ``retry_after`` seconds."""

    def __init__(self, pending: int, limit: int, retry_after: int = 1) -> None:
        super().__init__(
            f"{pending} events are waiting to be written (limit {limit}); retry in {retry_after}s"
        )
        self.retry_after = retry_after


@dataclass(slots=True)
class _Append:
    records: list[Record]
    future: Future[AppendResult]


@dataclass(slots=True)
class _Call:
    fn: Callable[[Any], Any]
    future: Future[Any]


_STOP = object()


class GroupCommitWriter(Generic[A]):
    """Owns an appender (``Engine`` or ``EventLog``) on a dedicated thread; see the
    module docstring."""

    def __init__(
        self,
        open_appender: Callable[[], A],
        *,
        max_pending: int = 100_000,
        max_group: int = 20_000,
        checkpoint_every: float = 10.0,
    ) -> None:
        self._open_appender = open_appender
        self.max_pending = max_pending
        self.max_group = max_group
        self.checkpoint_every = checkpoint_every
        self._queue: queue.Queue[Any] = queue.Queue()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="cdp-writer", daemon=True)
        self._ready: Future[None] = Future()
        self.groups = 0
        self.checkpoint_error: str | None = None
        self.last_error: str | None = None  # of the last group append; None once one succeeds

    # ---------------------------------------------------------------- control
    def start(self) -> None:
        """Open the appender on the writer thread; raise what opening raised."""
        self._thread.start()
        self._ready.result()

    def stop(self) -> None:
        """Finish queued work, checkpoint, close the appender."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    @property
    def pending(self) -> int:
        """Records waiting to be appended."""
        return self._pending

    # ------------------------------------------------------------------ input
    def submit(self, records: list[Record]) -> Future[AppendResult]:
        """Queue records for the next group commit; ``Backpressure`` if too many wait."""
        with self._lock:
            if self._pending and self._pending + len(records) > self.max_pending:
                raise Backpressure(self._pending, self.max_pending)
            self._pending += len(records)
        future: Future[AppendResult] = Future()
        self._queue.put(_Append(records, future))
        return future

    def call(self, fn: Callable[[A], T]) -> Future[T]:
        """Run ``fn(appender)`` on the writer thread, in order with the appends."""
        future: Future[T] = Future()
        self._queue.put(_Call(fn, future))
        return future

    # ----------------------------------------------------------------- thread
    def _run(self) -> None:
        try:
            appender = self._open_appender()
        except BaseException as error:
            self._ready.set_exception(error)
            return
        self._ready.set_result(None)
        last_checkpoint = time.monotonic()
        stopping = False
        try:
            while not stopping:
                try:
                    first = self._queue.get(timeout=self.checkpoint_every)
                except queue.Empty:
                    first = None
                items = [] if first is None else [first]
                size = len(first.records) if isinstance(first, _Append) else 0
                while size < self.max_group:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    items.append(item)
                    if isinstance(item, _Append):
                        size += len(item.records)
                stopping = any(item is _STOP for item in items)
                self._process(appender, [i for i in items if i is not _STOP])
                now = time.monotonic()
                # Only an Engine has projections to save; a Kafka log has none.
                if (
                    now - last_checkpoint >= self.checkpoint_every
                    and isinstance(appender, Engine)
                    and appender.runtime.dirty
                ):
                    last_checkpoint = now
                    try:
                        appender.checkpoint()
                        self.checkpoint_error = None
                    except Exception as error:  # the log is safe; say so on /health, go on
                        log.exception("checkpoint failed")
                        self.checkpoint_error = f"{type(error).__name__}: {error}"
        finally:
            try:
                appender.close()
            except Exception:
                log.exception("final checkpoint failed; the log is intact, a restart catches up")

    def _process(self, appender: A, items: list[Any]) -> None:
        appends = [i for i in items if isinstance(i, _Append)]
        if appends:
            self._append_group(appender, appends)
        for item in items:
            if isinstance(item, _Call):
                try:
                    item.future.set_result(item.fn(appender))
                except BaseException as error:
                    item.future.set_exception(error)

    def _append_group(self, appender: A, appends: list[_Append]) -> None:
        records = [r for a in appends for r in a.records]
        try:
            result = appender.append(records)
        except BaseException as error:
            log.exception("group append of %d records failed", len(records))
            self.last_error = f"{type(error).__name__}: {error}"
            for a in appends:
                a.future.set_exception(error)
        else:
            self.groups += 1
            self.last_error = None
            start = 0
            for a in appends:
                end = start + len(a.records)
                a.future.set_result(AppendResult(result.offsets[start:end], result.new[start:end]))
                start = end
        finally:
            with self._lock:
                self._pending -= len(records)
