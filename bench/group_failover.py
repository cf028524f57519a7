"""Consumer-group failover with the Kafka client alone: does a broker move a killed
member's partitions, and does the group settle when it comes back?

No faust and nothing of this project runs in the group: two ``aiokafka``
consumers (one subprocess each, as the workers are) share a two-partition
topic with the worker's settings (no auto-commit; session 6 s, heartbeat 2 s,
rebalance timeout 6 s). The script kills one with SIGKILL and watches, through the
survivor's own assignment callbacks, whether it gets both partitions within
three session timeouts; then it restarts the killed one and waits for each to
hold one partition again (and for ``DescribeGroups`` to say ``Stable`` with
two members where the broker names members).

    python -m bench.group_failover --broker noida      # or tansu, or --bootstrap HOST:PORT
    python -m bench.group_failover --broker noida --static   # with group.instance.id

With ``--static`` it first kills one member and restarts it at once under the same
``group.instance.id``: a broker with static membership gives it its partition back
while the survivor goes on without a rebalance.

It prints one line per phase and exits 1 when a phase did not finish:
a broker defect when Apache Kafka passes the same script (docs/operations.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

SESSION_MS = 6000
HEARTBEAT_MS = 2000
REBALANCE_MS = 6000


async def member(bootstrap: str, topic: str, group: str, instance_id: str | None) -> None:
    """One group member: prints ``assigned p,q`` on every assignment, until killed."""
    from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener  # noqa: PLC0415

    class Report(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped here
        def on_partitions_revoked(self, revoked: object) -> None:
            print("revoked", flush=True)

        def on_partitions_assigned(self, assigned: object) -> None:
            parts = sorted(tp.partition for tp in assigned)  # type: ignore[attr-defined]
            print("assigned " + ",".join(map(str, parts)), flush=True)

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        group_instance_id=instance_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=HEARTBEAT_MS,
        rebalance_timeout_ms=REBALANCE_MS,
    )
    consumer.subscribe([topic], listener=Report())
    await consumer.start()
    try:
        while True:
            await consumer.getmany(timeout_ms=1000)
    finally:
        await consumer.stop()


class Member:
    """A member subprocess and the last assignment it printed."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args, self.log = args, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log.write_text("")
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)

    def assignment(self) -> tuple[int, ...] | None:
        """The partitions of its last ``assigned`` line; None while revoked or never assigned."""
        lines = [
            ln
            for ln in self.log.read_text().splitlines()
            if ln.split(" ")[0] in {"assigned", "revoked"}
        ]
        if not lines or lines[-1] == "revoked":
            return None
        rest = lines[-1].partition(" ")[2]
        return tuple(int(p) for p in rest.split(",") if p)

    def rebalances(self) -> int:
        """How many times it was told to give up its partitions."""
        return self.log.read_text().splitlines().count("revoked")


def group_state(bootstrap: str, group: str) -> str:
    """``DescribeGroups``: state and member count, as the broker reports them."""
    from cdp.adapters.kafka.groups import GroupReader  # noqa: PLC0415

    reader = GroupReader(bootstrap)
    try:
        status = reader.status(group)
        return f"{status.state}, {len(status.members)} members"
    except Exception as error:
        return f"describe failed: {error}"
    finally:
        reader.close()


def wait(what: str, done: object, seconds: float) -> float | None:
    """Poll ``done()`` every 0.5 s; seconds it took, or None after ``seconds``."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if done():  # type: ignore[operator]
            return time.monotonic() - started
        time.sleep(0.5)
    return None


def run(bootstrap: str, static: bool, workdir: Path) -> bool:
    """The three phases; True when all finished."""
    from kafka.admin import KafkaAdminClient, NewTopic  # noqa: PLC0415

    topic, group = f"failover-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    members = [
        Member(
            [sys.executable, "-m", "bench.group_failover", "member", bootstrap, topic, group]
            + ([f"m{i}"] if static else []),
            workdir / f"m{i}.log",
        )
        for i in range(2)
    ]
    a, b = members
    try:
        for m in members:
            m.start()
        took = wait("join", lambda: {a.assignment(), b.assignment()} == {(0,), (1,)}, 120)
        print(f"two members, one partition each: {fmt(took)}; {group_state(bootstrap, group)}")
        if took is None:
            return False
        if static:
            # Back within the session timeout under the same id: the broker should
            # hand the old assignment back with no rebalance (KIP-345).
            before, held = b.rebalances(), a.assignment()
            a.kill()
            a.start()
            took = wait("static rejoin", lambda: a.assignment() == held, 60)
            print(
                f"killed and restarted at once, own partition back: {fmt(took)}; "
                f"survivor rebalanced {b.rebalances() - before} times"
            )
        a.kill()
        bound = 3 * SESSION_MS / 1000 + REBALANCE_MS / 1000
        took = wait("failover", lambda: b.assignment() == (0, 1), bound)
        print(
            f"after SIGKILL of one, the survivor holds both: {fmt(took)} (bound {bound:.0f} s); "
            f"{group_state(bootstrap, group)}"
        )
        failed_over = took is not None
        a.start()
        took = wait("rejoin", lambda: {a.assignment(), b.assignment()} == {(0,), (1,)}, 120)
        print(f"restarted, one partition each again: {fmt(took)}; {group_state(bootstrap, group)}")
        return failed_over and took is not None
    finally:
        for m in members:
            print(f"--- {m.log.name}: " + " | ".join(m.log.read_text().splitlines()[-6:]))
        for m in members:
            m.kill()


def fmt(seconds: float | None) -> str:
    return "NEVER" if seconds is None else f"{seconds:.1f} s"


def main() -> None:
    if sys.argv[1:2] == ["member"]:
        bootstrap, topic, group, *instance = sys.argv[2:]
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(member(bootstrap, topic, group, instance[0] if instance else None))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=("tansu", "noida"), default="noida")
    parser.add_argument("--bootstrap", help="HOST:PORT of a running broker instead")
    parser.add_argument("--static", action="store_true", help="members set group.instance.id")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="group-failover-") as tmp:
        workdir = Path(tmp)
        broker = None
        if args.bootstrap:
            bootstrap = args.bootstrap
        else:
            from tests.brokers import start  # noqa: PLC0415

            broker = start(args.broker, workdir / "broker")
            bootstrap = broker.bootstrap
        print(f"{args.bootstrap or args.broker}, static membership: {args.static}")
        try:
            ok = run(bootstrap, args.static, workdir)
        finally:
            if broker is not None:
                broker.stop()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
