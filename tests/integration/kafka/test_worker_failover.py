"""Two ``cdp worker`` processes, one killed with SIGKILL: the survivor takes over, and
the killed one comes back into a working group (issue 15, item 11).

The workers are real subprocesses (``Worker`` of ``test_streams_worker``), so the
kill is a real ``kill -9``: no LeaveGroup, no commit, no flush. "Takes over" is
shown by results, not by timings: events produced after the kill must be folded
exactly as the embedded runtime folds them (``wait_for``), which needs every
partition the dead worker held, the identity stage's ``log`` included. The
timeouts below only bound how long a broken run holds the test.

noida-db 0.2.3 never expires a killed member's session (``bench/group_failover.py``
shows it with the Kafka client alone), so the plain failover is excused there; its
static-membership path, which it does implement, is tested on both brokers.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from cdp.adapters.kafka import topics as kafka_topics
from cdp.adapters.kafka.groups import GroupReader, GroupStatus
from cdp.ports.log import Record
from tests.brokers import Broker
from tests.integration.kafka.test_streams_worker import (
    SMALL,
    Worker,
    _excuse_noida_rejoin,
    _init,
    embedded,
    generated,
    produce,
    wait_for,
)

pytestmark = pytest.mark.integration

NOIDA_NEVER_EXPIRES = (
    "noida-db 0.2.3 never expires the session of a member killed with SIGKILL: its "
    "partitions stay assigned to the dead member with the group Stable, and a member "
    "joining later leaves the group in CompletingRebalance for good. Reproduced with "
    "two aiokafka consumers and nothing else: python -m bench.group_failover --broker noida"
)

TANSU_STATIC = (
    "tansu with group.instance.id: members get ids like 'first-<uuid>' and generation 0, "
    "and a second static member sometimes rejoins every session timeout without ever "
    "being synced (2 of 4 runs here), so static membership stays off in its profile"
)

BOUND = 180.0
"""Seconds a phase may take before the test gives up (not a speed assertion)."""


@pytest.fixture(scope="module")
def records() -> list[Record]:
    return generated(SMALL, seed=11)


def stable_with(broker: Broker, prefix: str, members: int, timeout: float = BOUND) -> GroupStatus:
    """Wait until the workers' group is Stable with ``members`` members, each holding
    partitions where the broker reports assignments (tansu does not)."""
    group = kafka_topics.group_id(prefix)
    reader = GroupReader(broker.bootstrap)
    deadline = time.monotonic() + timeout
    status = None
    try:
        while time.monotonic() < deadline:
            status = reader.status(group)
            if (
                status.state == "Stable"
                and len(status.members) == members
                and all(m.assignment is None or m.assignment for m in status.members)
            ):
                return status
            time.sleep(1.0)
    finally:
        reader.close()
    raise AssertionError(f"group {group} not Stable with {members} members: {status}")


def thirds(records: list[Record]) -> tuple[list[Record], list[Record], list[Record]]:
    n = len(records) // 3
    return records[:n], records[n : 2 * n], records[2 * n :]


def test_a_killed_worker_fails_over_then_rejoins(
    broker: Broker,
    topic_prefix: str,
    tmp_path: Path,
    records: list[Record],
) -> None:
    """SIGKILL one of two workers: the survivor folds what comes next on every
    partition; the killed one, restarted, rejoins a Stable group and both fold on."""
    if broker.kind == "noida":
        # Not run: it cannot pass there and took a minute of the suite to fail. The
        # defect is shown with the Kafka client alone: python -m bench.group_failover.
        pytest.xfail(NOIDA_NEVER_EXPIRES)
    before, during, after = thirds(records)
    _init(broker, topic_prefix, 4)
    first = Worker(broker, topic_prefix, None, tmp_path, "first").start()
    second = Worker(broker, topic_prefix, None, tmp_path, "second").start()
    try:
        produce(broker, topic_prefix, before)
        wait_for(broker, topic_prefix, embedded(before), [first, second], timeout=BOUND)
        stable_with(broker, topic_prefix, 2)
        first.stop(signal.SIGKILL)
        produce(broker, topic_prefix, during)
        wait_for(broker, topic_prefix, embedded(before + during), [second], timeout=BOUND)
        first.start()
        stable_with(broker, topic_prefix, 2)
        produce(broker, topic_prefix, after)
        wait_for(broker, topic_prefix, embedded(records), [first, second], timeout=BOUND)
        assert first.alive() and second.alive()
    finally:
        first.stop()
        second.stop()


def test_a_killed_static_member_restarted_at_once_takes_its_partitions_back(
    broker: Broker,
    topic_prefix: str,
    tmp_path: Path,
    records: list[Record],
    request: pytest.FixtureRequest,
) -> None:
    """Workers with ``--instance-id``: one is killed and restarted at once under its
    id; the group ends Stable with both and every event is folded exactly. On
    noida-db (static members kept) there is no rebalance at all. On tansu static
    joins are unreliable (``TANSU_STATIC``) and static membership is off in its
    profile: the test is skipped there (it measured only tansu's defect, for 85 s of
    the suite). (noida-db's occasional stalled join of two workers, before any kill,
    is excused as in ``test_streams_worker``.)"""
    if broker.kind == "tansu":
        pytest.skip(TANSU_STATIC)
    _excuse_noida_rejoin(broker, request)
    before, during, after = thirds(records)
    _init(broker, topic_prefix, 4)
    first, second = (
        Worker(broker, topic_prefix, None, tmp_path, name, extra=["--instance-id", name])
        for name in ("first", "second")
    )
    first.start()
    second.start()
    try:
        produce(broker, topic_prefix, before)
        wait_for(broker, topic_prefix, embedded(before), [first, second], timeout=BOUND)
        stable_with(broker, topic_prefix, 2)
        first.stop(signal.SIGKILL)
        first.start()
        produce(broker, topic_prefix, during)
        stable_with(broker, topic_prefix, 2)
        produce(broker, topic_prefix, after)
        wait_for(broker, topic_prefix, embedded(records), [first, second], timeout=BOUND)
        status = stable_with(broker, topic_prefix, 2)
        if broker.kind == "noida":  # it reports members' instance ids
            assert sorted(m.instance_id or "" for m in status.members) == ["first", "second"]
    finally:
        first.stop()
        second.stop()
