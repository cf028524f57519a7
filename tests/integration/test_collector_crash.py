"""kill -9 of ``cdp serve`` under sustained load: every 2xx is in the log exactly once.

``python -m cdp.cli serve`` runs as a subprocess on one data directory. Four
client threads post ``/v1/batch`` requests whose messageIds are deterministic
(``c{client}-b{batch}-e{item}``) and record every messageId that got a 2xx.
The server is killed with SIGKILL three times at seeded, varied moments (a
checkpoint runs every 2 s, so some kills land between checkpoints, some
mid-group-commit) and restarted on the same directory; clients retry on
connection errors, re-sending the batch that was not acknowledged (it may or
may not have been stored before the kill: dedup must make that harmless).
Finally the server is stopped with SIGTERM, and the directory must show:

- every acknowledged messageId stored, no messageId stored twice
  (``count(*) == count(DISTINCT message_id)``), every batch whole or absent,
  offsets dense;
- a graceful stop that checkpointed everything it folded;
- projections (restored from checkpoints plus the folded log tails of each
  restart) equal to a replay from offset 0 (``rebuild(verify=True)``).
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.runtime.replay import rebuild
from cdp.services.sources import SourceRegistry
from tests.loopback import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SEED = 20260601
CLIENTS = 4
EVENTS_PER_BATCH = 50
STARTUP_TIMEOUT = 30.0
TEST_BUDGET = 85.0  # seconds; every wait below is bounded by it


def batch_body(client: int, number: int) -> bytes:
    """Batch ``number`` of ``client``: byte-for-byte the same every time it is (re)sent."""
    items: list[dict[str, Any]] = []
    for i in range(EVENTS_PER_BATCH):
        k = (client * 7919 + number * EVENTS_PER_BATCH + i) % 10_000
        user, anonymous = f"u{k % 97}", f"a{(k * 13) % 211}"  # shared by all clients: merges
        envelope = {
            "messageId": f"c{client}-b{number}-e{i}",
            "timestamp": f"2026-05-{1 + k % 28:02d}T{k % 24:02d}:{k % 60:02d}:00Z",
        }
        match i % 4:
            case 0:  # links a browser to a user
                event = {"type": "identify", "userId": user, "anonymousId": anonymous,
                         "traits": {"email": f"{user}@shop.jp"}}  # fmt: skip
            case 1:
                event = {"type": "page", "anonymousId": anonymous, "properties": {"path": f"/p/{k % 17}"}}  # fmt: skip
            case 2:
                event = {"type": "track", "event": "Order Completed", "userId": user,
                         "properties": {"order_id": f"o-{client}-{number}-{i}", "revenue": 100 + k % 900}}  # fmt: skip
            case _:
                event = {"type": "track", "event": "Button Clicked", "anonymousId": anonymous}
        items.append({**envelope, **event})
    return orjson.dumps({"batch": items, "context": {"library": {"name": "crash-test"}}})


@dataclass
class LoadClient:
    """One client thread: posts its batches in order, retrying each until acknowledged."""

    index: int
    url: str
    key: str
    stop: threading.Event
    deadline: float
    acked: set[str] = field(default_factory=set)
    acked_batches: int = 0
    connection_errors: int = 0
    refusals: int = 0  # 429/503 with Retry-After: backpressure, retried
    unexpected: list[str] = field(default_factory=list)

    def run(self) -> None:
        headers = {"content-type": "application/json"}
        with httpx.Client(base_url=self.url, auth=(self.key, ""), timeout=5.0) as http:
            number = 0
            while not self.stop.is_set() and not self.unexpected:
                body = batch_body(self.index, number)
                while time.monotonic() < self.deadline:
                    try:
                        answer = http.post("/v1/batch", content=body, headers=headers)
                    except httpx.TransportError:  # killed or restarting: re-send the same batch
                        self.connection_errors += 1
                        time.sleep(0.02)
                        continue
                    if answer.status_code == 200:
                        prefix = f"c{self.index}-b{number}-e"
                        self.acked.update(f"{prefix}{i}" for i in range(EVENTS_PER_BATCH))
                        self.acked_batches += 1
                        break
                    if answer.status_code in (429, 503):
                        self.refusals += 1
                        time.sleep(min(float(answer.headers.get("retry-after", 1)), 0.2))
                        continue
                    self.unexpected.append(f"batch {number}: {answer.status_code} {answer.text}")
                    return
                else:
                    self.unexpected.append(f"batch {number}: not acknowledged before the deadline")
                    return
                number += 1


class ServerProcess:
    """``python -m cdp.cli --data-dir D serve --port P``, output appended to a log file."""

    def __init__(self, data_dir: Path, port: int, log_path: Path) -> None:
        self.data_dir, self.port, self.log_path = data_dir, port, log_path
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, deadline: float) -> None:
        command = [sys.executable, "-m", "cdp.cli", "--data-dir", str(self.data_dir)]
        command += ["serve", "--port", str(self.port)]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        limit = min(deadline, time.monotonic() + STARTUP_TIMEOUT)
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, f"cdp serve exited: {self.log_tail()}"
            assert time.monotonic() < limit, f"cdp serve did not come up: {self.log_tail()}"
            time.sleep(0.05)

    def stop(self, sig: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout=30)

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]


def test_acknowledged_events_survive_sigkill_of_the_server_exactly_once(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    deadline = started + TEST_BUDGET
    data_dir = tmp_path / "data"
    key = SourceRegistry(data_dir).add("load")
    server = ServerProcess(data_dir, free_port(), tmp_path / "serve.log")
    kill_after = [0.5, 1.5, rng.uniform(0.05, 0.4)]  # seconds of load before each SIGKILL

    stop = threading.Event()
    clients = [LoadClient(i, server.url, key, stop, deadline - 10) for i in range(CLIENTS)]
    threads = [threading.Thread(target=c.run, name=f"load-{c.index}") for c in clients]
    acked_per_phase: list[int] = []
    try:
        server.start(deadline)
        for thread in threads:
            thread.start()
        for delay in kill_after:
            time.sleep(delay)
            assert server.stop(signal.SIGKILL) == -signal.SIGKILL
            acked_per_phase.append(sum(c.acked_batches for c in clients))
            server.start(deadline)  # same data directory: replays the WAL, folds the tail
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic()))
        acked_per_phase.append(sum(c.acked_batches for c in clients))
        # uvicorn shuts down gracefully on SIGTERM, then re-raises it (exit -15).
        assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM), server.log_tail()
    finally:
        stop.set()
        server.ensure_stopped()
        for thread in threads:
            thread.join(timeout=10)

    assert not any(t.is_alive() for t in threads), "a client did not finish"
    problems = [p for c in clients for p in c.unexpected]
    assert not problems, f"unexpected answers: {problems[:5]}\n{server.log_tail()}"
    assert sum(c.connection_errors for c in clients) > 0, "no kill happened under load"
    phases = [b - a for a, b in itertools.pairwise([0, *acked_per_phase])]
    assert sum(1 for n in phases if n > 0) >= 3, f"load was not sustained: {phases}"
    acked = set().union(*(c.acked for c in clients))

    with Engine.open(Settings(data_dir)) as engine:
        con = engine.con
        total, distinct, low, high = con.execute(
            'SELECT count(*), count(DISTINCT message_id), min("offset"), max("offset") '
            "FROM event_log"
        ).fetchone() or (0, 0, None, None)
        stored = {row[0] for row in con.execute("SELECT message_id FROM event_log").fetchall()}
        saved_position = con.execute("SELECT max(next_offset) FROM positions").fetchone()

        assert total == distinct, f"{total - distinct} events stored twice"
        missing = acked - stored
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {sorted(missing)[:5]}"
        per_batch = Counter(message_id.rsplit("-e", 1)[0] for message_id in stored)
        partial = {b: n for b, n in per_batch.items() if n != EVENTS_PER_BATCH}
        assert not partial, f"batches stored in part: {partial}"
        assert (low, high) == (0, total - 1), "offsets are not dense"
        assert saved_position == (total,), "SIGTERM did not checkpoint what it had folded"

        report = rebuild(engine, verify=True)
        assert report.differences == []
        assert report.verified is True
        assert report.events == total
    assert time.monotonic() - started < TEST_BUDGET + 5
