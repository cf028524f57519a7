"""Where the archive keeps what, and the columns of its Parquet files.

An archive directory holds one Parquet dataset per archived topic, each
hive-partitioned by a date, plus the manifest (``manifest.jsonl``, see
``cdp.adapters.archive.manifest``) that says which files exist and which offsets each
holds::

    <archive>/events/event_date=2026-11-23/part-000000000000-000000049999.parquet
    <archive>/profiles/snapshot_date=2026-11-23/part-3-000000000120-000000000511.parquet
    <archive>/assignments/assigned_date=.../part-<partition>-<first>-<last>.parquet
    <archive>/merges/merged_date=.../part-<partition>-<first>-<last>.parquet
    <archive>/manifest.jsonl

``events`` (the ``cdp.log`` topic, one partition) has the columns of the
embedded ``event_log`` table, partitioned by the event's own date (UTC), and
``duplicate_of``: every offset of the topic is archived, but a record that
repeats an earlier ``messageId`` (the log topic can hold such copies, which
the worker skips) names the first copy's offset; readers skip it too.
The other topics are stored as the records they are (key, value, partition,
offset, publish time), partitioned by the date the record was published, and
interpreted when a session reads them (``cdp.adapters.archive.session``), so the
archive does not depend on the worker's snapshot format.

A file name carries the offset range of the *roll* it belongs to: one roll
is a contiguous range of one topic partition, split into one file per date,
so every offset of the range is in exactly one of the roll's files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

MANIFEST_FILE = "manifest.jsonl"
LOCK_FILE = ".archiver.lock"
TEMP_SUFFIX = ".tmp"
ERASE_DIR = ".erase"
"""Where an erasure writes a file's new version before it replaces the old one
(``cdp.adapters.archive.erase``): outside the dataset directories, whose
unrecorded files the archiver removes when it starts."""
OFFSET_DIGITS = 12

#: Columns of an events file, in order (those of the embedded ``event_log``
#: without its in-process dedup hash); ``event_date`` is the hive directory.
EVENT_SCHEMA = pa.schema(
    [
        ("offset", pa.int64()),
        ("message_id", pa.string()),
        ("type", pa.string()),
        ("event", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("user_id", pa.string()),
        ("anonymous_id", pa.string()),
        ("source", pa.string()),
        ("schema_version", pa.int32()),
        ("payload", pa.string()),
        # The offset of the first copy when this record repeats an earlier messageId
        # (two API replicas can both append one event); NULL for the first copy.
        ("duplicate_of", pa.int64()),
    ]
)

#: Columns of a file of any other topic: the record as published.
RECORD_SCHEMA = pa.schema(
    [
        ("kafka_partition", pa.int32()),
        ("kafka_offset", pa.int64()),
        ("key", pa.string()),
        ("value", pa.string()),  # NULL: a tombstone (the key was deleted)
        ("published_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True, slots=True)
class Dataset:
    """One archived topic: its kind, directory, hive date column and columns."""

    kind: str
    directory: str
    date_column: str
    schema: pa.Schema

    def part_name(self, partition: int, first: int, last: int) -> str:
        """File name of one roll's file (the partition is left out for ``events``)."""
        span = f"{first:0{OFFSET_DIGITS}d}-{last:0{OFFSET_DIGITS}d}"
        return f"part-{span}.parquet" if self.kind == EVENTS else f"part-{partition}-{span}.parquet"

    def relative_path(self, day: str, partition: int, first: int, last: int) -> str:
        """Path of one file relative to the archive directory (POSIX form)."""
        return f"{self.directory}/{self.date_column}={day}/{self.part_name(partition, first, last)}"


EVENTS = "events"
PROFILES = "profiles"
ASSIGNMENTS = "assignments"
MERGES = "merges"

DATASETS: dict[str, Dataset] = {
    EVENTS: Dataset(EVENTS, "events", "event_date", EVENT_SCHEMA),
    PROFILES: Dataset(PROFILES, "profiles", "snapshot_date", RECORD_SCHEMA),
    ASSIGNMENTS: Dataset(ASSIGNMENTS, "assignments", "assigned_date", RECORD_SCHEMA),
    MERGES: Dataset(MERGES, "merges", "merged_date", RECORD_SCHEMA),
}


@dataclass(frozen=True, slots=True)
class ArchiveTopics:
    """Which topic feeds which dataset (the defaults are the decided topic names)."""

    events: str = "cdp.log"
    profiles: str = "cdp.profiles"
    assignments: str = "cdp.identity.assignments"
    merges: str = "cdp.identity.merges"

    @classmethod
    def with_prefix(cls, prefix: str, input_prefix: str | None = None) -> ArchiveTopics:
        """The topics under another prefix than ``cdp.`` (``CDP_KAFKA_PREFIX``, tests);
        the input log under ``input_prefix`` when given (``CDP_KAFKA_INPUT_PREFIX``)."""
        return cls(
            f"{prefix if input_prefix is None else input_prefix}log",
            f"{prefix}profiles",
            f"{prefix}identity.assignments",
            f"{prefix}identity.merges",
        )

    @property
    def keys(self) -> str:
        """The key topic the events topic's sealed records open with (never archived)."""
        return self.events.removesuffix("log") + "keys"  # as cdp.adapters.kafka.topics names it

    def by_kind(self) -> dict[str, str]:
        """``{dataset kind: topic}``."""
        return {
            EVENTS: self.events,
            PROFILES: self.profiles,
            ASSIGNMENTS: self.assignments,
            MERGES: self.merges,
        }


def resolve(root: Path, relative: str) -> Path:
    """Absolute path of a manifest-relative file."""
    return root / Path(*relative.split("/"))
