"""Shared by the archive and profile-reader tests (no tests here).

The reference is the embedded runtime: a generated shop dataset is ingested
into a DuckDB data directory, then its log is produced to the log topic
record for record (so Kafka offsets are the embedded offsets) and its
projections are published as the faust worker publishes them
(``streams.messages``). Whatever the archive or the reader answers is
compared with the embedded data directory, computed independently.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson
from kafka import KafkaProducer

from cdp.adapters.duckdb import store
from cdp.adapters.duckdb.states import DuckDBStateStore
from cdp.adapters.kafka.admin import init_topics
from cdp.adapters.kafka.codec import encode
from cdp.config import Settings
from cdp.demo.generate import GenerateConfig, generate
from cdp.ports.log import Record
from cdp.runtime.customer import customer_row
from cdp.runtime.embedded import EmbeddedRuntime
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from connectors.sources.files import read_items
from projections import identity
from schemas import decode_stored
from streams.messages import (
    assignment_key,
    assignment_value,
    merge_value,
    profile_value,
    rejection_value,
)
from tests.factories import at_days, raw_identify


def build_reference(directory: Path, customers: int = 40, seed: int = 7) -> Settings:
    """An embedded data directory holding a generated shop's events and projections."""
    directory.mkdir(parents=True, exist_ok=True)
    events = directory / "events.jsonl"
    generate(events, GenerateConfig(seed=seed, customers=customers))
    # Two user ids on one browser: the second link is refused (an identity rejection).
    with events.open("ab") as handle:
        for n, user in enumerate(("u-rej-1", "u-rej-2")):
            raw = raw_identify(
                user_id=user, anonymous_id="anon-shared", at=at_days(n), message_id=f"rej-{n}"
            )
            handle.write(orjson.dumps(raw) + b"\n")
    settings = Settings(directory / "data")
    with Engine.open(settings) as engine:
        report = ingest(read_items(events), engine, source="file:events.jsonl")
        assert report.rejected == 0 and report.accepted > 0
        engine.checkpoint()
    return settings


def producer(bootstrap: str) -> KafkaProducer:
    return KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)


def create_topics(bootstrap: str, prefix: str, partitions: int = 3) -> None:
    report = init_topics(bootstrap, prefix=prefix, partitions=partitions)
    assert all(t.action != "missing" for t in report.topics), report


def log_rows(settings: Settings, start: int = 0) -> list[tuple[int, bytes, str | None]]:
    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        return [
            (int(o), bytes(p), s)
            for o, p, s in con.execute(
                'SELECT "offset", encode(payload), source FROM event_log '
                'WHERE "offset" >= ? ORDER BY "offset"',
                [start],
            ).fetchall()
        ]
    finally:
        con.close()


def produce_log(bootstrap: str, topic: str, settings: Settings, start: int = 0) -> int:
    """Produce the embedded log from ``start`` to the log topic; offsets must match."""
    rows = log_rows(settings, start)
    sender = producer(bootstrap)
    try:
        futures = []
        for offset, payload, source in rows:
            message = encode(Record(decode_stored(payload), payload, source))
            futures.append(
                (offset, sender.send(topic, message.value, message.key, message.headers))
            )
        sender.flush()
        for offset, future in futures:
            assert future.get(30).offset == offset
    finally:
        sender.close()
    return len(rows)


def send_rows(bootstrap: str, topic: str, rows: list[tuple[int, bytes, str | None]]) -> None:
    """Produce log rows (from ``log_rows``) to the log topic, in order, as the adapter does."""
    sender = producer(bootstrap)
    try:
        for _, payload, source in rows:
            message = encode(Record(decode_stored(payload), payload, source))
            sender.send(topic, message.value, message.key, message.headers)
        sender.flush()
    finally:
        sender.close()


def produce_events(bootstrap: str, topic: str, settings: Settings, count: int) -> None:
    """Produce the first ``count`` events of the reference to the log topic."""
    send_rows(bootstrap, topic, log_rows(settings)[:count])


def projections(settings: Settings) -> dict[str, Any]:
    """The embedded projections as the worker publishes them."""
    con = duckdb.connect(str(settings.database), read_only=True)
    try:
        config = settings.runtime_config()
        snapshot = store.load(con)
        runtime = EmbeddedRuntime.restore(
            DuckDBStateStore(con), snapshot.graph_rows, snapshot.next_offset, config
        )
        profiles, leads = runtime.profiles, runtime.leads
        customers = {
            c: customer_row(c, profiles[c], leads[c], config.scoring) for c in sorted(profiles)
        }
        merges = [
            identity.Merge(
                from_customer=r[0],
                into_customer=r[1],
                via=r[2],
                reason=r[3],
                message_id=r[4],
                offset=r[5],
                at=r[6],
            )
            for r in con.execute(
                'SELECT from_customer, into_customer, via, reason, message_id, "offset", "at" '
                'FROM merges ORDER BY "offset"'
            ).fetchall()
        ]
        rejections = [
            identity.Rejection(
                customer_id=r[0],
                identifier=r[1],
                reason=r[2],
                message_id=r[3],
                offset=r[4],
                at=r[5],
            )
            for r in con.execute(
                'SELECT customer_id, identifier, reason, message_id, "offset", "at" '
                'FROM identity_rejections ORDER BY "offset"'
            ).fetchall()
        ]
        return {
            "customers": customers,
            "rows": runtime.graph.to_rows(),
            "merges": merges,
            "rejections": rejections,
        }
    finally:
        con.close()


def publish_projections(
    bootstrap: str, prefix: str, settings: Settings, stale_first: bool = True
) -> dict[str, Any]:
    """Publish snapshots, assignments and merges as the worker does.

    With ``stale_first``, every customer first gets an outdated snapshot and a
    ghost customer is published then deleted (tombstone), so readers must keep
    the last value per key.
    """
    data = projections(settings)
    sender = producer(bootstrap)
    try:
        if stale_first:
            for customer, row in data["customers"].items():
                stale = {**row, "email": "stale@example.jp", "lead_score": -1.0}
                sender.send(f"{prefix}profiles", profile_value(stale), customer.encode())
            ghost = {**next(iter(data["customers"].values())), "customer_id": "cus_ghost"}
            sender.send(f"{prefix}profiles", profile_value(ghost), b"cus_ghost")
            sender.send(f"{prefix}profiles", None, b"cus_ghost")
        for customer, row in data["customers"].items():
            sender.send(f"{prefix}profiles", profile_value(row), customer.encode())
        for row in data["rows"]:
            sender.send(f"{prefix}identity.assignments", assignment_value(row), assignment_key(row))
        for merge in data["merges"]:
            sender.send(
                f"{prefix}identity.merges", merge_value(merge), merge.from_customer.encode()
            )
        for rejection in data["rejections"]:
            sender.send(
                f"{prefix}identity.merges",
                rejection_value(rejection),
                rejection.customer_id.encode(),
            )
        sender.flush()
    finally:
        sender.close()
    return data
