"""Real servers on loopback for tests: a free port, an ASGI app under uvicorn,
and ``cdp serve`` as a real subprocess."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_app(app: Any, log_level: str = "warning") -> Iterator[str]:
    """Run ``app`` with uvicorn on a free loopback port in a thread; yield its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level=log_level))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@dataclass
class ServeProcess:
    """A ``cdp serve`` subprocess on a loopback port; its output goes to ``log_path``."""

    process: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM and wait (the server checkpoints on the way out); its exit code.

        uvicorn re-raises the SIGTERM it handled once it has shut down cleanly,
        so a clean stop is 0 or -SIGTERM. A server that does not stop is killed
        and the test fails with its output."""
        if self.process.poll() is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            raise AssertionError(f"cdp serve did not stop on SIGTERM:\n{self.log()}") from None


def start_cdp_serve(
    data_dir: Path, *args: str, log_path: Path | None = None, timeout: float = 60
) -> ServeProcess:
    """``python -m cdp.cli --data-dir DIR serve`` on a free loopback port, once
    ``/health`` answers 200 (the test fails with the server's output if it exits
    or does not come up within ``timeout`` seconds). Stop it with ``.stop()``."""
    port = free_port()
    log_path = log_path or data_dir.parent / f"{data_dir.name}-serve-{port}.log"
    command = [sys.executable, "-m", "cdp.cli", "--data-dir", str(data_dir), "serve"]
    with log_path.open("wb") as sink:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port), *args],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ},
        )
    server = ServeProcess(process, f"http://127.0.0.1:{port}", data_dir, log_path)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise AssertionError(f"cdp serve exited {process.returncode}:\n{server.log()}")
        if time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"cdp serve did not come up in {timeout:.0f}s:\n{server.log()}")
        time.sleep(0.1)


@contextmanager
def cdp_serve(data_dir: Path, *args: str, log_path: Path | None = None) -> Iterator[ServeProcess]:
    """``start_cdp_serve`` for the ``with`` block, stopped (SIGTERM) at its end."""
    server = start_cdp_serve(data_dir, *args, log_path=log_path)
    try:
        yield server
    finally:
        server.stop()
