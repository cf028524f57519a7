"""The console of ``cdp serve --kafka``: profiles from the compacted topics, the
SQL screens from the Parquet archive (``--archive``), or a page saying how to
give one.

The archive and the topics come from ``test_archive_query``'s fixture (a
generated shop produced to the log topic, its projections published as the
workers publish them, then archived); the expected figures are computed over
the same archive with the services the CLI runs (``cdp segment run --archive``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cdp.adapters.archive.session import ArchiveSession
from cdp.adapters.kafka.topics import KafkaSettings
from cdp.config import Settings
from cdp.http.app import create_app
from cdp.services.segment_lang import SegmentCatalog
from cdp.services.users import UserStore
from tests.brokers import Broker
from tests.integration.console.conftest import SignedIn, sign_in_as
from tests.integration.kafka.test_archive_query import archived  # noqa: F401  (fixture)
from tests.loopback import serve_app

pytestmark = pytest.mark.integration

USER, PASSWORD = "kafka-marketer", "marketer password 1"


def served(broker: Broker, data_dir: Path, archive: Path | None) -> Iterator[SignedIn]:
    settings = Settings(data_dir)
    UserStore(settings.data_dir).add(USER, "marketer", PASSWORD)
    kafka = KafkaSettings(broker.bootstrap, f"q{broker.kind}.", 3, timeout=10)
    for url in serve_app(create_app(settings, kafka=kafka, archive=archive)):
        client = sign_in_as(url, USER, PASSWORD)
        try:
            yield client
        finally:
            client.close()


def a_customer(reference: Settings) -> tuple[str, str, str]:
    """(customer id, email, last name) of a customer with both, from the reference."""
    import duckdb  # noqa: PLC0415

    con = duckdb.connect(str(reference.database), read_only=True)
    try:
        row = con.execute(
            "SELECT customer_id, email, last_name FROM profiles "
            "WHERE email IS NOT NULL AND last_name IS NOT NULL ORDER BY customer_id LIMIT 1"
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return row[0], row[1], row[2]


def test_profiles_come_from_the_topics_and_sql_screens_ask_for_an_archive(
    broker: Broker,
    archived: tuple[Settings, Path],  # noqa: F811  (the imported fixture)
    tmp_path: Path,
) -> None:
    reference, _ = archived
    customer, email, last_name = a_customer(reference)
    for client in served(broker, tmp_path / "api", None):
        deadline = time.monotonic() + 30
        while True:  # the follower catches up with the topics after start-up
            found = client.get("/console/customers", params={"q": email}, follow_redirects=True)
            if customer in found.text:
                break
            assert time.monotonic() < deadline, found.text[:2000]
            time.sleep(0.2)
        page = client.get(f"/console/customers/{customer}")
        assert page.status_code == 200, page.text[:2000]
        assert last_name in page.text and email in page.text
        assert client.get("/console/segments").status_code == 200  # the catalog itself
        members = client.get("/console/segments/hot_leads")
        assert members.status_code == 503
        assert "--archive" in members.text
        rfm = client.get("/console/analytics/rfm")
        assert rfm.status_code == 503 and "--archive" in rfm.text
        assert client.get("/console/").status_code in (200, 503)


def test_with_an_archive_segments_and_analytics_read_it(
    broker: Broker,
    archived: tuple[Settings, Path],  # noqa: F811  (the imported fixture)
    tmp_path: Path,
) -> None:
    reference, root = archived
    with ArchiveSession.open(root, reference.runtime_config().scoring) as session:
        expected = SegmentCatalog(tmp_path / "api").run(session.con, "hot_leads").count
    for client in served(broker, tmp_path / "api", root):
        page = client.get("/console/segments/hot_leads")
        assert page.status_code == 200, page.text[:2000]
        shown = re.search(r'id="segment-count"[^>]*data-count="(\d+)"', page.text)
        assert shown and int(shown.group(1)) == expected
        assert client.get("/console/segments").status_code == 200
        rfm = client.get("/console/analytics/rfm")
        assert rfm.status_code == 200, rfm.text[:2000]
