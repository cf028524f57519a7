"""kill -9 durability of the embedded engine.

A child process ingests numbered batches into one data directory and prints
``ACK <batch>`` only after ``append`` returned (and now and then checkpoints
its projections). The parent kills it with SIGKILL at chosen moments, several
rounds on the same directory; each round first re-sends the last acknowledged
batch (which must store nothing) and goes on with fresh batch numbers.

Afterwards every acknowledged batch must be stored whole and once, a batch cut
off by the kill must be all there or not at all, offsets must stay dense, and
the projections restored from the last checkpoint plus the log tail must equal
a replay from offset 0.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import pytest

from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.runtime.replay import rebuild

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENTS_PER_BATCH = 60
BATCHES_PER_ROUND = 40  # an upper bound: a round is normally killed long before
LINE_TIMEOUT = 15.0  # seconds to wait for any one line from the child
SEED = 20260101

CHILD = r"""
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from tests.factories import T0, raw_identify, raw_order, raw_page, raw_track

data_dir, first, count, resend, per_batch = sys.argv[1:6]
first, count, resend, per_batch = int(first), int(count), int(resend), int(per_batch)
RECEIVED = datetime(2026, 3, 1, tzinfo=UTC)


def batch(b):
    # Deterministic: a re-sent batch is byte-for-byte the same events.
    for i in range(per_batch):
        k = b * per_batch + i
        kw = {"message_id": f"m-{b}-{i}", "at": T0 + timedelta(minutes=(k * 37) % 5000)}
        user, anon = f"u{k % 40}", f"a{(k * 7) % 90}"
        match i % 5:
            case 0:  # links a browser to a user: merges customers
                raw = raw_identify(user_id=user, anonymous_id=anon,
                                   traits={"email": f"{user}@example.jp"}, **kw)
            case 1:
                raw = raw_page(f"/p/{k % 13}", anonymous_id=anon, **kw)
            case 2:
                raw = raw_order(f"o-{b}-{i}", 500 + k % 97, user_id=user, **kw)
            case 3:
                raw = raw_track("Button Clicked", {"k": k}, anonymous_id=anon, **kw)
            case _:
                raw = raw_identify(user_id=user, traits={"first_name": f"N{k % 7}"}, **kw)
        yield f"batch-{b}:{i}", raw


engine = Engine.open(Settings(Path(data_dir)))
print("READY", flush=True)
if resend >= 0:
    report = ingest(batch(resend), engine, received_at=RECEIVED, batch_size=per_batch)
    print(f"RESENT {resend} {report.accepted} {report.duplicates}", flush=True)
for b in range(first, first + count):
    report = ingest(batch(b), engine, received_at=RECEIVED, batch_size=per_batch)
    if report.accepted != per_batch:
        sys.exit(f"batch {b}: {report.as_dict()}")
    print(f"ACK {b}", flush=True)
    if b % 3 == 2:
        engine.checkpoint()
engine.close()
print("DONE", flush=True)
"""


@dataclass
class Round:
    """What one child run reported before it died."""

    first: int
    acked: list[int] = field(default_factory=list)
    resent: tuple[int, int, int] | None = None
    done: bool = False
    returncode: int | None = None


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line.strip())
    lines.put(None)


def _next_line(lines: queue.Queue[str | None], deadline: float) -> str | None:
    timeout = max(0.0, min(LINE_TIMEOUT, deadline - time.monotonic()))
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"child said nothing for {timeout:.0f} s")


def run_round(
    data_dir: Path,
    first: int,
    resend: int,
    *,
    kill_after_acks: int | None = None,
    kill_after_seconds: float | None = None,
    stderr_path: Path,
) -> Round:
    """Run one child, kill it as told, and collect everything it acknowledged."""
    result = Round(first)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [str(data_dir), str(first), str(BATCHES_PER_ROUND), str(resend), str(EVENTS_PER_BATCH)]
    with stderr_path.open("a") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    lines: queue.Queue[str | None] = queue.Queue()
    pump = threading.Thread(target=_pump, args=(proc.stdout, lines), daemon=True)
    pump.start()
    deadline = time.monotonic() + 30
    try:
        if _next_line(lines, deadline) != "READY":
            pytest.fail(f"child did not start: {stderr_path.read_text()[-2000:]}")
        if kill_after_seconds is not None:
            time.sleep(kill_after_seconds)
        else:
            acks = 0
            while acks < (kill_after_acks or 0):
                line = _next_line(lines, deadline)
                if line is None:
                    break
                result_line(result, line)
                acks += line.startswith("ACK ")
        proc.send_signal(signal.SIGKILL)
        result.returncode = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    pump.join(timeout=10)
    assert proc.stdout is not None
    proc.stdout.close()
    while (line := lines.get_nowait()) is not None:  # what was piped before it died
        result_line(result, line)
    return result


def result_line(result: Round, line: str) -> None:
    kind, *rest = line.split()
    if kind == "ACK":
        result.acked.append(int(rest[0]))
    elif kind == "RESENT":
        b, accepted, duplicates = map(int, rest)
        result.resent = (b, accepted, duplicates)
    elif kind == "DONE":
        result.done = True


def test_acknowledged_batches_survive_sigkill_whole_and_once(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data_dir = tmp_path / "data"
    stderr_path = tmp_path / "child-stderr.txt"
    plans: list[dict[str, float | int]] = [
        {"kill_after_acks": 1},
        {"kill_after_acks": 3},
        {"kill_after_acks": 7},
        {"kill_after_seconds": rng.uniform(0.02, 0.25)},  # lands anywhere, mid-batch
    ]
    started = time.monotonic()
    acked: set[int] = set()
    attempted: set[int] = set()
    next_batch = 0
    for plan in plans:
        resend = max(acked, default=-1)
        result = run_round(
            data_dir,
            next_batch,
            resend,
            stderr_path=stderr_path,
            **plan,  # type: ignore[arg-type]
        )
        assert result.done or result.returncode == -signal.SIGKILL, (
            f"child failed ({result.returncode}): {stderr_path.read_text()[-2000:]}"
        )
        if result.resent is not None:
            assert result.resent == (resend, 0, EVENTS_PER_BATCH), "a re-sent batch was stored"
        assert result.acked == list(range(next_batch, next_batch + len(result.acked)))
        acked.update(result.acked)
        attempted.update(range(next_batch, next_batch + BATCHES_PER_ROUND))
        next_batch += BATCHES_PER_ROUND
    assert len(acked) >= 11, f"only {len(acked)} batches acknowledged: {plans}"

    with Engine.open(Settings(data_dir)) as engine:
        per_batch = dict(
            engine.con.execute(
                "SELECT CAST(split_part(message_id, '-', 2) AS INTEGER), count(*) "
                "FROM event_log GROUP BY 1"
            ).fetchall()
        )
        total, distinct, low, high = engine.con.execute(
            'SELECT count(*), count(DISTINCT message_id), min("offset"), max("offset") '
            "FROM event_log"
        ).fetchone() or (0, 0, None, None)

        missing = {b: per_batch.get(b, 0) for b in acked if per_batch.get(b) != EVENTS_PER_BATCH}
        assert not missing, f"acknowledged batches not fully stored: {missing}"
        partial = {b: n for b, n in per_batch.items() if n != EVENTS_PER_BATCH}
        assert not partial, f"batches partially stored: {partial}"
        assert set(per_batch) <= attempted
        assert total == distinct == len(per_batch) * EVENTS_PER_BATCH
        assert (low, high) == (0, total - 1), "offsets are not dense"
        assert engine.log.high_water() == total

        report = rebuild(engine, verify=True)
        assert report.differences == []
        assert report.verified is True
        assert report.events == total
        assert report.customers > 0

    assert time.monotonic() - started < 60
