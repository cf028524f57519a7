"""Suite-wide ordering: the slowest modules start first.

With ``pytest -n 4`` (``make test``) xdist hands tests out in collection
order, so a module of several minutes collected last (the Kafka worker tests,
the full-demo parity above all) would run alone at the end and set the wall
time. Moving whole modules keeps each module's own order, so its module-scoped
fixtures (the brokers) are set up as often as before.
"""

from __future__ import annotations

import pytest

SLOW_FIRST = (
    "tests/integration/kafka/test_streams_worker.py",
    "tests/integration/kafka/test_worker_failover.py",
    "tests/integration/kafka/test_erase_kafka.py",
    "tests/integration/kafka/test_lag_visible.py",
    "tests/integration/kafka/test_serve_kafka.py",
)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Stable sort: the ``SLOW_FIRST`` modules first, in that order, then the rest."""
    rank = {path: i for i, path in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(SLOW_FIRST)))
