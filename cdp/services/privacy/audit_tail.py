"""The newest lines of the audit log, read from the end (the console's audit tail).

``cdp.services.privacy.audit.entries`` reads whole day files, which is right for
``cdp audit --since``; a page that shows the last lines must not read a day of
profile lookups to do it. ``tail`` reads the day files backwards in blocks and
stops once it has ``limit`` matching lines, or after ``budget`` bytes (a filter
that matches nothing must not read the whole log either).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Final

from cdp.services.privacy import audit

BLOCK: Final = 64 * 1024
BUDGET: Final = 8 * 1024 * 1024
"""Bytes read at most per call."""


def _backwards(path: Path, budget: int) -> Iterator[bytes]:
    """The lines of ``path``, last first, reading at most ``budget`` bytes."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        rest = b""
        position = end
        read = 0
        while position > 0 and read < budget:
            start = max(0, position - BLOCK)
            f.seek(start)
            chunk = f.read(position - start) + rest
            read += position - start
            position = start
            lines = chunk.split(b"\n")
            rest = lines[0] if start > 0 else b""
            for line in reversed(lines[1:] if start > 0 else lines):
                if line:
                    yield line


def tail(
    data_dir: Path,
    limit: int = 50,
    action: str | tuple[str, ...] | None = None,
    budget: int = BUDGET,
) -> list[audit.Entry]:
    """The newest ``limit`` lines (whose action is ``action``, or one of them, or
    starts with it and a dot), newest first; reads at most ``budget`` bytes."""
    wanted = (action,) if isinstance(action, str) else action
    folder = audit.directory(data_dir)
    days = sorted(audit._day_files(folder), reverse=True)  # the log's own listing
    found: list[audit.Entry] = []
    for path in days:
        size = path.stat().st_size
        for line in _backwards(path, budget):
            try:
                entry = audit._parse(line)  # the log's own parser
            except (ValueError, KeyError, TypeError):
                continue  # a torn line; `cdp audit --verify` reports it
            if wanted is None or any(
                entry.action == a or entry.action.startswith(a + ".") for a in wanted
            ):
                found.append(entry)
                if len(found) >= limit:
                    return found
        budget -= size
        if budget <= 0:
            break
    return found
