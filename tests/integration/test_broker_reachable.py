"""``broker_reachable`` (the /health check of Kafka mode) reads a broker list as
operators write it, against real sockets on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from cdp.adapters.kafka.log import broker_reachable

pytestmark = pytest.mark.integration


@pytest.fixture
def listening() -> Iterator[int]:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


def closed_port() -> int:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = int(probe.getsockname()[1])
    probe.close()
    return port


def test_one_broker(listening: int) -> None:
    assert broker_reachable(f"127.0.0.1:{listening}")
    assert not broker_reachable(f"127.0.0.1:{closed_port()}")


def test_a_list_needs_one_broker_that_answers(listening: int) -> None:
    dead = closed_port()
    assert broker_reachable(f"127.0.0.1:{dead}, 127.0.0.1:{listening}")
    assert broker_reachable(f"127.0.0.1:{listening},127.0.0.1:{dead},")
    assert not broker_reachable(f"127.0.0.1:{dead},127.0.0.1:{closed_port()}")


def test_bad_entries_are_unreachable_not_errors() -> None:
    assert not broker_reachable("")
    assert not broker_reachable("kafka-1")
    assert not broker_reachable("127.0.0.1:port")


def test_an_ipv6_address_in_brackets() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    server = socket.socket(socket.AF_INET6)
    try:
        server.bind(("::1", 0))
    except OSError:
        server.close()
        pytest.skip("no IPv6 loopback on this machine")
    server.listen()
    try:
        assert broker_reachable(f"[::1]:{server.getsockname()[1]}")
    finally:
        server.close()
