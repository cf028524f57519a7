"""What an archive holds, and how far it is behind its topics (``cdp archive status``).

``archive_status(root)`` reads the manifest alone: per topic partition, the
files, the records, the first offset and ``next`` (one past the last archived
offset; every offset below it is in a recorded file). ``with_ends`` adds what
the broker says: the partition's ``end`` offset and the ``gap`` (``end -
next``: records written to the topic and not archived yet), per partition and
per topic. Partitions the broker has and the archive has not seen yet count
from offset 0. The broker is asked by the caller (the CLI), so this module
stays free of any Kafka client.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cdp.adapters.archive.layout import ArchiveTopics, resolve
from cdp.adapters.archive.manifest import Manifest

Where = tuple[str, int]
"""(topic, partition)."""


def archive_status(root: Path) -> dict[str, Any]:
    """The manifest's view of ``root``: rolls, files, bytes, missing files, partitions."""
    manifest = Manifest.read(root)
    partitions: dict[tuple[str, str, int], dict[str, Any]] = {}
    for roll in manifest.rolls:
        entry = partitions.setdefault(
            (roll.kind, roll.topic, roll.partition),
            _entry(roll.kind, roll.topic, roll.partition, first=roll.first),
        )
        entry["files"] += len(roll.files)
        entry["records"] += roll.records
        entry["first"] = min(entry["first"], roll.first)
        entry["next"] = max(entry["next"], roll.last + 1)
    recorded = manifest.files()
    present = {f for f in recorded if resolve(root, f).exists()}
    return {
        "archive": str(root),
        "rolls": len(manifest.rolls),
        "files": len(recorded),
        "bytes": sum(resolve(root, f).stat().st_size for f in present),
        "missing_files": [f for f in recorded if f not in present],
        "partitions": [partitions[k] for k in sorted(partitions)],
    }


def _entry(kind: str, topic: str, partition: int, first: int | None) -> dict[str, Any]:
    return {
        "kind": kind,
        "topic": topic,
        "partition": partition,
        "files": 0,
        "records": 0,
        "first": first,
        "next": 0,
    }


def topics_to_check(status: dict[str, Any], expected: ArchiveTopics) -> dict[str, str]:
    """``{kind: topic}`` to compare with the broker: the topic the archive holds for a
    kind, else the one ``expected`` names (a topic not archived yet)."""
    held = {p["kind"]: p["topic"] for p in status["partitions"]}
    return {kind: held.get(kind, topic) for kind, topic in expected.by_kind().items()}


def with_ends(
    status: dict[str, Any], topics: dict[str, str], ends: dict[Where, int]
) -> dict[str, Any]:
    """``status`` plus each partition's ``end`` and ``gap``, and a ``topics`` summary.

    ``ends`` holds the end offset of every partition of ``topics`` (``{kind:
    topic}``) that exists on the broker; a partition the archive has not seen
    yet is added with ``next`` 0, and one the broker no longer reports keeps
    ``end`` None.
    """
    by_where = {(p["topic"], p["partition"]): p for p in status["partitions"]}
    kind_of = {topic: kind for kind, topic in topics.items()}
    for topic, partition in sorted(ends):
        if (topic, partition) not in by_where and topic in kind_of:
            by_where[(topic, partition)] = _entry(kind_of[topic], topic, partition, first=None)
    summary: dict[str, dict[str, Any]] = {}
    for (topic, partition), entry in sorted(by_where.items()):
        end = ends.get((topic, partition))
        entry["end"] = end
        entry["gap"] = None if end is None else max(0, end - entry["next"])
        total = summary.setdefault(
            topic,
            {"kind": entry["kind"], "topic": topic, "partitions": 0, "next": 0, "end": 0, "gap": 0},
        )
        total["partitions"] += 1
        total["next"] += entry["next"]
        total["end"] += end or 0
        total["gap"] += entry["gap"] or 0
    ordered = sorted(by_where.values(), key=lambda p: (p["kind"], p["topic"], p["partition"]))
    return {
        **status,
        "partitions": ordered,
        "topics": list(summary.values()),
        "gap": sum(t["gap"] for t in summary.values()),
    }
