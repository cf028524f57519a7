"""Shared helpers of the benchmarks: timing and printing figures."""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parents[1]

T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Run ``fn`` once; its result and wall-clock seconds."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def machine() -> str:
    """One line about where the figures were measured."""
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores"


def line(label: str, events: int, seconds: float) -> str:
    rate = events / seconds if seconds else float("inf")
    return f"{label:<44} {events:>10,} events {seconds:>8.2f} s {rate:>12,.0f} events/s"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Server:
    """``cdp serve`` in a subprocess on one data directory and one port, restartable
    (the collector benchmarks run it; the soak benchmark kills and restarts it)."""

    data_dir: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    extra: tuple[str, ...] = ()
    """More ``cdp serve`` options (``--kafka HOST:PORT --prefix P``)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start it and wait until ``/health`` answers (three tries, then give up)."""
        for _attempt in range(3):
            command = [sys.executable, "-m", "cdp.cli", "--data-dir", str(self.data_dir)]
            command += ["serve", "--port", str(self.port), *self.extra]
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    command, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            deadline = time.monotonic() + 120
            while self.process.poll() is None and time.monotonic() < deadline:
                try:
                    if httpx.get(f"{self.url}/health", timeout=2).status_code < 500:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            self.kill()
            print(f"cdp serve did not come up; log tail:\n{self.tail()}", file=sys.stderr)
        sys.exit("cdp serve did not start three times in a row")

    def kill(self) -> None:
        """SIGKILL: no drain, no checkpoint, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM: drains and checkpoints."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]
