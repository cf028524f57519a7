"""Erasing one person from the Parquet archive: ``erase_from_archive``.

Which rows are the person's (``customer_ids`` C, ``identifier_keys`` K):

- ``events``: an event whose identifiers are in K, by the platform's own rule
  (``projections.identity.identifiers_of`` on the decoded event; an event that
  links nothing beyond its envelope is judged from its ``user_id`` and
  ``anonymous_id`` columns, as the batch replay does: ``envelope_only``);
- ``profiles``, ``assignments``, ``merges``: a record whose key, or any string
  in its JSON value, is a customer id of C or an identifier key of K (its
  snapshots, its identity rows, the merges and refused links that name it).

Before the scan, C and K grow by what the archive's own identity records say:
every customer merged into one of C, and every identifier ever assigned to
one of them. So an identifier only the archive still holds (the topic's
retention shortened) is found too.

Only files holding such rows are rewritten, each one atomically: the new
version is written under ``<archive>/.erase/``, fsynced, made read-only and
renamed over the recorded name, then both directories are fsynced. File names
never change, so the manifest's file lists stay true; only each roll's
``records`` is set again to the rows its files now hold, counted from the
files themselves, and the manifest is replaced atomically. A crash leaves each
file old or new; running again skips the files already clean, recounts every
roll and completes: the erasure is idempotent.

**Two writers.** The archiver may run meanwhile. It never opens a recorded
file for writing, never looks under ``.erase/`` (its start-up clean-up covers
the dataset directories only) and appends manifest lines under
``manifest_lock``, the lock the rewrite of the manifest takes too, so no line
is lost. Erasures exclude each other with an ``flock`` on ``.erase/``. Files
the archiver records during an erasure are scanned before it ends; records
still in the topics are the topic erasure's job, which must come first.
"""

from __future__ import annotations

import fcntl
import os
import stat
import uuid
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cdp.adapters.archive.layout import (
    ASSIGNMENTS,
    ERASE_DIR,
    EVENTS,
    MANIFEST_FILE,
    resolve,
)
from cdp.adapters.archive.manifest import Manifest, Roll, manifest_lock
from cdp.atomic import fsync_directory, write_atomically
from cdp.errors import ArchiveError, EventValidationError
from projections.identity.extract import envelope_keys, envelope_only, identifiers_of
from schemas import decode_stored
from schemas.events import TYPED_EVENT_NAMES

COMPRESSION = "zstd"
"""As the archiver writes (``connectors.destinations.archive.files``)."""


@dataclass(slots=True)
class ArchiveErasure:
    """What an erasure did to an archive."""

    files: list[str] = field(default_factory=list)
    """Files rewritten (manifest-relative paths)."""
    rows_removed: dict[str, int] = field(default_factory=dict)
    """Rows removed per dataset kind."""
    files_scanned: int = 0
    rolls_recounted: int = 0
    """Manifest lines whose ``records`` changed."""
    customer_ids: int = 0
    identifier_keys: int = 0
    """How many the scan looked for (the given ones and those the archive added)."""

    @property
    def rows(self) -> int:
        """Rows removed in all."""
        return sum(self.rows_removed.values())

    def as_dict(self) -> dict[str, Any]:
        """Plain values (JSON output, request step records); no personal data."""
        return {
            "files": list(self.files),
            "rows_removed": dict(self.rows_removed),
            "rows": self.rows,
            "files_scanned": self.files_scanned,
            "rolls_recounted": self.rolls_recounted,
            "customer_ids": self.customer_ids,
            "identifier_keys": self.identifier_keys,
        }


def erase_from_archive(
    archive_dir: Path, customer_ids: AbstractSet[str], identifier_keys: AbstractSet[str]
) -> ArchiveErasure:
    """Remove every row of the person (module docstring) from ``archive_dir``.

    Raises ``ArchiveError`` when the directory is not an archive, a recorded
    file is missing, or another erasure holds the archive.
    """
    root = archive_dir.resolve()
    Manifest.read(root)  # not an archive: ArchiveError naming it
    with _erasing(root):
        customers, keys = _grown(root, set(customer_ids), set(identifier_keys))
        report = ArchiveErasure(customer_ids=len(customers), identifier_keys=len(keys))
        rows_of: dict[str, int] = {}  # file -> rows it holds now
        scanned: set[str] = set()
        while True:  # again for the rolls the archiver recorded meanwhile
            rolls = Manifest.read(root).rolls
            todo = [(r.kind, f) for r in rolls for f in r.files if f not in scanned]
            if not todo:
                break
            for kind, relative in todo:
                left, removed = _erase_file(root, kind, relative, customers, keys)
                rows_of[relative] = left
                scanned.add(relative)
                if removed:
                    report.files.append(relative)
                    report.rows_removed[kind] = report.rows_removed.get(kind, 0) + removed
        report.files_scanned = len(scanned)
        report.rolls_recounted = _recount(root, rows_of)
    return report


@contextmanager
def _erasing(root: Path) -> Iterator[None]:
    """Hold ``.erase/`` (one erasure at a time) and clear what a crash left there."""
    aside = root / ERASE_DIR
    aside.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(aside, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArchiveError(f"archive {root} is being erased by another process") from None
        # Half-written new versions of a crashed run: they hold no erased row, but
        # other people's rows, which a later erasure could not reach here.
        for leftover in aside.iterdir():
            leftover.unlink()
        fsync_directory(aside)
        yield
    finally:
        os.close(fd)


def _grown(
    root: Path, customers: set[str], keys: set[str]
) -> tuple[frozenset[str], frozenset[str]]:
    """C plus the customers merged into it, K plus every identifier assigned to C."""
    identity_rows: list[tuple[str, str, str]] = []  # (identifier, customer, merged_into)
    for relative in Manifest.read(root).files(ASSIGNMENTS):
        values = pq.ParquetFile(resolve(root, relative)).read(columns=["value"]).column(0)
        for value in values.to_pylist():
            if value is None:  # a tombstone
                continue
            body = orjson.loads(value)
            identity_rows.append(
                (
                    str(body.get("identifier") or ""),
                    str(body.get("customer_id") or ""),
                    str(body.get("merged_into") or ""),
                )
            )
    grown = set(customers)
    while True:  # merge chains: a loser of a loser
        losers = {c for i, c, into in identity_rows if not i and into in grown} - grown
        if not losers:
            break
        grown |= losers
    keys = keys | {i for i, c, _ in identity_rows if i and c in grown}
    return frozenset(grown), frozenset(keys)


def _erase_file(
    root: Path, kind: str, relative: str, customers: frozenset[str], keys: frozenset[str]
) -> tuple[int, int]:
    """Rewrite one file without the person's rows if it has any; (rows left, removed)."""
    path = resolve(root, relative)
    if not path.exists():
        raise ArchiveError(f"archive {root}: {relative} is in the manifest but missing")
    # ParquetFile, not pq.read_table: that would add the hive column from the path.
    table = pq.ParquetFile(path).read()
    events = kind == EVENTS
    theirs = _event_mask(table, keys) if events else _record_mask(table, customers | keys)
    removed = sum(theirs)
    if not removed:
        return table.num_rows, 0
    kept = table.filter(pc.invert(pa.array(theirs, pa.bool_())))
    _replace(root, path, kept)
    return kept.num_rows, removed


def _event_mask(table: pa.Table, keys: frozenset[str]) -> list[bool]:
    """Per row: does the event carry one of ``keys`` (``identifiers_of``)?"""
    if not keys:
        return [False] * table.num_rows
    # An alias's previousId is a user id if the graph knows it: asking K answers
    # for both readings, since either one in K makes the event the person's.
    known = keys.__contains__
    columns = (table.column(n).to_pylist() for n in ("type", "event", "user_id", "anonymous_id"))
    payloads = table.column("payload").to_pylist()
    mask: list[bool] = []
    for n, (kind, name, user_id, anonymous_id) in enumerate(zip(*columns, strict=True)):
        payload = payloads[n]
        tag = name if kind == "track" and name in TYPED_EVENT_NAMES else kind
        if envelope_only(tag, '"traits"' in payload):
            found = envelope_keys(user_id, anonymous_id)
        else:
            try:
                found = identifiers_of(decode_stored(payload), known)
            except EventValidationError as error:
                raise ArchiveError(f"archived event {n} no longer decodes: {error}") from None
        mask.append(any(k in keys for k in found))
    return mask


def _record_mask(table: pa.Table, needles: frozenset[str]) -> list[bool]:
    """Per row: is its key, or a string anywhere in its JSON value, one of ``needles``?"""
    if not needles:
        return [False] * table.num_rows
    keys = table.column("key").to_pylist()
    values = table.column("value").to_pylist()
    mask: list[bool] = []
    for key, value in zip(keys, values, strict=True):
        if key is not None and (key in needles or key.removeprefix("@") in needles):
            mask.append(True)
        elif value is None:
            mask.append(False)
        else:
            mask.append(_mentions(orjson.loads(value), needles))
    return mask


def _mentions(value: Any, needles: frozenset[str]) -> bool:
    if isinstance(value, str):
        return value in needles
    if isinstance(value, dict):
        return any(_mentions(v, needles) for v in value.values())
    if isinstance(value, list):
        return any(_mentions(v, needles) for v in value)
    return False


def _replace(root: Path, final: Path, table: pa.Table) -> None:
    """Write ``table`` beside (under ``.erase/``), fsync, then rename over ``final``."""
    aside = root / ERASE_DIR / f"{uuid.uuid4().hex}.parquet"
    try:
        with aside.open("wb") as handle:
            pq.write_table(table, handle, compression=COMPRESSION)
            handle.flush()
            os.fsync(handle.fileno())
        aside.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(aside, final)  # the old version's name goes: one atomic step
    except BaseException:
        aside.unlink(missing_ok=True)
        raise
    fsync_directory(final.parent)
    fsync_directory(aside.parent)


def _recount(root: Path, rows_of: dict[str, int]) -> int:
    """Set each roll's ``records`` to the rows its files hold; lines changed.

    Done under ``manifest_lock`` on the manifest as it is then (the archiver may
    have appended meanwhile); rolls not fully counted, and every unchanged line,
    are kept byte for byte, and so is a torn last line (the archiver's to cut).
    """
    path = root / MANIFEST_FILE
    with manifest_lock(root):
        data = path.read_bytes() if path.exists() else b""
        complete = data.rfind(b"\n") + 1
        lines = data[:complete].splitlines(keepends=True)
        changed = 0
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            roll = Roll.from_json(orjson.loads(line))
            if not all(f in rows_of for f in roll.files):
                continue
            records = sum(rows_of[f] for f in roll.files)
            if records != roll.records:
                lines[n] = replace(roll, records=records).to_line()
                changed += 1
        if changed:
            write_atomically(path, b"".join(lines) + data[complete:])
    return changed
