"""Writing one roll's Parquet files so that a crash never leaves a half-truth.

For each file of a roll: write ``<name>.tmp``, fsync it, rename it to its
final name, fsync the directory (and its parent when the date directory is
new). Only then is the roll recorded in the manifest (``Manifest.append``,
fsynced). Whatever a crash leaves behind, ``clean_unrecorded`` removes on the
next start: temp files, and complete files the manifest does not name. Files
are made read-only once written: the archive never changes a file.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cdp.adapters.archive.layout import DATASETS, TEMP_SUFFIX, resolve
from cdp.atomic import fsync_directory
from cdp.errors import ArchiveError

#: Called after a roll's files are in place and before the manifest records
#: them (tests inject a crash here).
BeforeRecord = Callable[[list[str]], None]

COMPRESSION = "zstd"


def write_roll(root: Path, files: dict[str, pa.Table]) -> None:
    """Write each ``relative path → table`` atomically, then make the renames durable.

    Every file is written to a temp name, fsynced and renamed; each directory
    touched is fsynced once at the end (and the parent of each new one).
    """
    touched: set[Path] = set()
    for relative, table in files.items():
        final = resolve(root, relative)
        if final.exists():  # the archive never overwrites: a name clash is a bug
            raise ArchiveError(f"{final} already exists; the archive never overwrites a file")
        directory = final.parent
        if not directory.exists():
            directory.mkdir(parents=True)
            touched.add(directory.parent)
        touched.add(directory)
        temp = final.with_name(final.name + TEMP_SUFFIX)
        try:
            with temp.open("wb") as handle:
                pq.write_table(table, handle, compression=COMPRESSION)
                handle.flush()
                os.fsync(handle.fileno())
            temp.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
            temp.rename(final)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    for directory in sorted(touched, key=lambda d: len(d.parts), reverse=True):
        fsync_directory(directory)


def clean_unrecorded(root: Path, recorded: Iterable[str]) -> list[str]:
    """Remove temp files and Parquet files the manifest does not name; return them.

    Also reports (as an ``ArchiveError``) a recorded file that is missing: that
    would be a gap nobody can fill from the manifest alone.
    """
    keep = set(recorded)
    removed: list[str] = []
    for dataset in DATASETS.values():
        base = root / dataset.directory
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            if not path.is_file():
                continue
            relative = path.relative_to(root).as_posix()
            if path.name.endswith(TEMP_SUFFIX) or relative not in keep:
                path.unlink()
                removed.append(relative)
    missing = [f for f in sorted(keep) if not resolve(root, f).exists()]
    if missing:
        raise ArchiveError(
            f"archive {root}: {len(missing)} file(s) named by the manifest are missing, "
            f"first {missing[0]}; restore them from a backup"
        )
    return removed
