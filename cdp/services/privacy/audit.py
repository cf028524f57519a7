"""The audit log: who read or changed what, append-only and hash-chained.

``<data dir>/privacy/audit/YYYY-MM-DD.jsonl`` (one file per UTC day of writing)
holds one JSON object per line::

    {"at": "2025-06-01T09:30:00.123456Z", "actor": "crm-sync", "action": "profile.lookup",
     "target": "email:<token>", "details": {"status": 200}, "prev": "<sha256 hex>"}

- ``actor`` is a read token's NAME, a source name or ``cli:<os user>``, never a
  secret;
- ``target`` never holds personal data: an identifier is written as its kind
  and ``files.token(pepper, key)`` (``subject``), a customer id as the token of
  ``customer:<id>``;
- ``prev`` is the SHA-256 of the previous line's bytes (``GENESIS`` for the
  first line ever, the chain running across the day files in name order), so
  editing, inserting or deleting a line, or a whole day, breaks the chain and
  ``verify`` names where. Cutting lines off the END cannot be seen from the
  chain alone: ``verify`` prints the head hash for the operator to note elsewhere.

Appends are ``O_APPEND`` writes of whole lines under an exclusive ``flock`` of
``audit/.lock`` (several processes append: ``cdp serve`` and the CLI beside
it), each writer reading the file's last line under the lock to chain on it,
then ``fsync``. ``record`` appends one line durably at once (rare events:
exports, syncs, erasures, token changes); ``AuditLog`` buffers (the lookup
path: a list append) and a thread writes the buffer at least every
``FLUSH_EVERY`` seconds and on ``close``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson

from cdp.atomic import append_durably
from cdp.services.privacy import files
from schemas.identifiers import key, parse_key

SUBDIRECTORY: Final = "audit"
LOCK_FILE: Final = ".lock"
SUFFIX: Final = ".jsonl"
GENESIS: Final = "0" * 64
FLUSH_EVERY: Final = 1.0
"""Seconds a buffered line may wait before it is written (and fsynced)."""
CUSTOMER_PREFIX: Final = "cus_"
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.jsonl$")
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def directory(data_dir: Path) -> Path:
    """``<data dir>/privacy/audit``, created (mode 0700) when missing."""
    path = files.directory(data_dir) / SUBDIRECTORY
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def cli_actor() -> str:
    """``cli:<os user>``: the actor of a command run by hand (from the password
    database, not the environment, which anyone can set)."""
    try:
        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"
    except KeyError:  # a uid without an entry (containers)
        return f"cli:uid{os.getuid()}"


def subject(secret: bytes, text: str, *, normalised: bool = False) -> str:
    """What the log says instead of an identifier or ``cus_`` id: ``kind:token``.

    ``text`` is normalised first (``email:Hanako@Example.JP`` and
    ``email:hanako@example.jp`` give one token), unless the caller says it is
    already (a lookup's parsed key: normalising again costs more than the
    HMAC); a malformed one gives its kind alone (``email:?``), never its value."""
    if text.startswith(CUSTOMER_PREFIX):
        return f"customer:{files.token(secret, 'customer:' + text)}"
    if normalised:
        return f"{text.partition(':')[0]}:{files.token(secret, text)}"
    try:
        kind, value = parse_key(text)
        canonical = key(kind, value)
    except ValueError:
        kind = text.partition(":")[0]
        return f"{kind}:?" if kind.isidentifier() and len(kind) <= 20 else "?"
    return f"{kind}:{files.token(secret, canonical)}"


@dataclass(frozen=True)
class Entry:
    """One line of the audit log."""

    at: datetime
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev: str


def _now() -> datetime:
    return datetime.now(UTC)


def _line(at: datetime, actor: str, action: str, target: str, details: Any, prev: str) -> bytes:
    return orjson.dumps(
        {
            "at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor": actor,
            "action": action,
            "target": target,
            "details": details or {},
            "prev": prev,
        }
    )


def _day_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if _DAY_FILE.match(p.name))


def _last_line(path: Path) -> bytes | None:
    """The last line of ``path`` (without its newline; an unterminated tail counts)."""
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return None
        size = 4096
        while True:
            start = max(0, end - size)
            f.seek(start)
            chunk = f.read(end - start)
            body = chunk[:-1] if chunk.endswith(b"\n") else chunk
            cut = body.rfind(b"\n")
            if cut >= 0 or start == 0:
                return body[cut + 1 :]
            size *= 4


def _append(folder: Path, rows: list[tuple[datetime, str, str, str, Any]]) -> None:
    """Chain ``rows`` onto the log and write them in one fsynced ``O_APPEND`` write."""
    lock = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        days = _day_files(folder)
        today = _now().strftime("%Y-%m-%d") + SUFFIX
        # A clock set back must not write a day before the chain's head.
        name = max(today, days[-1].name) if days else today
        last = _last_line(days[-1]) if days else None
        prev = hashlib.sha256(last).hexdigest() if last is not None else GENESIS
        lines = []
        for at, actor, action, target, details in rows:
            line = _line(at, actor, action, target, details, prev)
            lines.append(line)
            prev = hashlib.sha256(line).hexdigest()
        # A torn last line (a crash mid-write) is ended first, so it stays one line.
        torn = last is not None and days[-1].name == name and not _ends_line(days[-1])
        data = (b"\n" if torn else b"") + b"\n".join(lines) + b"\n"
        append_durably(folder / name, data)
    finally:
        os.close(lock)  # releases the flock


def _ends_line(path: Path) -> bool:
    with path.open("rb") as f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return True
        f.seek(end - 1)
        return f.read(1) == b"\n"


def record(
    data_dir: Path,
    actor: str,
    action: str,
    target: str,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one line to the audit log of ``data_dir`` now, durably (fsynced).

    For the rare, weighty events: exports, syncs, privacy requests and
    erasures, source and token changes. ``target`` and ``details`` must hold no
    personal data: pass identifiers through ``subject``."""
    _append(directory(data_dir), [(_now(), actor, action, target, details)])


def record_cli(
    data_dir: Path, action: str, target: str, details: dict[str, Any] | None = None
) -> None:
    """``record`` with the actor ``cli:<os user>`` (a command run by hand)."""
    record(data_dir, cli_actor(), action, target, details)


@dataclass
class AuditLog:
    """A buffered audit log for the hot paths of ``cdp serve`` (profile lookups).

    ``record`` costs a clock read and a list append; a daemon thread, started
    with the first record, writes the buffer at least every ``interval``
    seconds, and ``close`` (at server shutdown) writes what is left. A crash
    loses at most the last ``interval`` seconds of lookup lines."""

    data_dir: Path
    interval: float = FLUSH_EVERY
    pepper: bytes = field(init=False, repr=False)
    _folder: Path = field(init=False, repr=False)
    _pending: list[tuple[datetime, str, str, str, Any]] = field(default_factory=list, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _flushing: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.pepper = files.pepper(self.data_dir)
        self._folder = directory(self.data_dir)

    def subject(self, text: str, *, normalised: bool = False) -> str:
        """``subject(pepper, text)`` with this installation's pepper."""
        return subject(self.pepper, text, normalised=normalised)

    def record(
        self, actor: str, action: str, target: str, details: dict[str, Any] | None = None
    ) -> None:
        """Buffer one line (see the class docstring for when it is written)."""
        row = (_now(), actor, action, target, details)
        with self._lock:
            self._pending.append(row)
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(
                    target=self._run, name="cdp-audit-flush", daemon=True
                )
                self._thread.start()

    def flush(self) -> None:
        """Write every buffered line now (fsynced)."""
        with self._flushing:  # keeps the buffer's order when two threads flush
            with self._lock:
                rows, self._pending = self._pending, []
            if rows:
                _append(self._folder, rows)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        """Stop the flushing thread and write what is left."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join()
        self.flush()


# ------------------------------------------------------------------ reading
def since_of(text: str, now: datetime | None = None) -> datetime:
    """The start of ``--since``: a duration back from now (``30m``, ``12h``,
    ``7d``, ``2w``) or an ISO date or time (UTC unless it names a zone)."""
    now = now or _now()
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since takes a duration (30m, 12h, 7d, 2w) or an ISO date/time, not {text!r}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse(line: bytes) -> Entry:
    item = orjson.loads(line)
    return Entry(
        datetime.fromisoformat(item["at"].replace("Z", "+00:00")),
        item["actor"],
        item["action"],
        item["target"],
        item.get("details") or {},
        item["prev"],
    )


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        for raw in f:
            yield raw.rstrip(b"\n")


def entries(
    data_dir: Path,
    since: datetime | None = None,
    action: str | None = None,
    limit: int | None = None,
) -> list[Entry]:
    """Lines at or after ``since`` (whose action is ``action`` or starts with
    ``action.``), oldest first; with ``limit`` the newest ``limit`` of them."""
    folder = directory(data_dir)
    days = _day_files(folder)
    if since is not None:
        first = since.astimezone(UTC).strftime("%Y-%m-%d") + SUFFIX
        days = [p for p in days if p.name >= first]
    chunks: list[list[Entry]] = []
    count = 0
    for path in reversed(days):  # newest day first: a limit stops early
        day: list[Entry] = []
        for line in _lines(path):
            try:
                entry = _parse(line)
            except (ValueError, KeyError, TypeError):
                continue  # a torn line; `verify` reports it
            if since is not None and entry.at < since:
                continue
            if action is not None and not (
                entry.action == action or entry.action.startswith(action + ".")
            ):
                continue
            day.append(entry)
        chunks.append(day)
        count += len(day)
        if limit is not None and count >= limit:
            break
    found = [entry for day in reversed(chunks) for entry in day]
    return found[-limit:] if limit is not None else found


@dataclass(frozen=True)
class Verification:
    """What ``verify`` found: lines and files checked, the head of the chain
    (SHA-256 of the last line) and every problem, as ``file:line: what``."""

    lines: int
    files: int
    head: str
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when the chain is whole."""
        return not self.problems


def verify(data_dir: Path) -> Verification:
    """Check the hash chain across every day file (see the module docstring)."""
    folder = directory(data_dir)
    days = _day_files(folder)
    prev = GENESIS
    count = 0
    problems: list[str] = []
    for path in days:
        for number, line in enumerate(_lines(path), start=1):
            count += 1
            where = f"{path.name}:{number}"
            try:
                claimed = orjson.loads(line)["prev"]
            except (ValueError, KeyError, TypeError):
                problems.append(f"{where}: not an audit line (torn by a crash, or edited)")
            else:
                if claimed != prev:
                    problems.append(
                        f"{where}: chain broken (a line before it was changed, inserted "
                        "or removed, or this one was)"
                    )
            prev = hashlib.sha256(line).hexdigest()
    return Verification(count, len(days), prev, tuple(problems))
