"""APPI Art. 29 records: every provision of personal data to a third party.

Every file export (``cdp export``) and every audience push (``cdp sync``, a
withdrawal after an erasure) appends one ``Provision`` to
``<data dir>/privacy/provisions/YYYY-MM.jsonl`` (the month of ``at``, UTC):
when, to whom (platform, destination name, account), which people, which data
items, under which consent purpose. Lines are appended under a lock and
fsynced, so an acknowledged record survives a power cut.

**Who, without keeping who.** People are stored as
``token(pepper, "customer:" + customer_id)``: never an identifier, nor a hash
of one (a SHA-256 of an email is still the email to anyone who guesses it).
When a person is erased, ``redact`` rewrites every file holding their token
(atomically: temporary file, fsync, rename) and replaces it by
``erased:<request id>``: the record still says that one person was provided
on that date, to that recipient, with those items, but no longer who.
``provided_to`` answers a data-subject access request from the same tokens.

**Retention.** APPI (Enforcement Rules Art. 14) asks for three years.
``prune`` deletes a month file only once its last day is more than
``RETENTION_YEARS`` old; nothing else in the platform deletes these files.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from cdp.atomic import append_durably, write_atomically
from cdp.services.privacy.files import directory, pepper, token

PROVISIONS: Final = "provisions"
RETENTION_YEARS: Final = 3
ERASED: Final = "erased:"
_MONTH_FILE = re.compile(r"^(\d{4})-(\d{2})\.jsonl$")
_LOCK = ".lock"


@dataclass(frozen=True)
class Provision:
    """One provision of personal data to a third party (one push plan, one file)."""

    at: str
    """When, UTC (``2026-05-01T09:30:00Z``)."""
    kind: str
    """``export`` (a file), ``sync`` (an audience push) or ``withdraw`` (a removal push)."""
    platform: str
    """The receiving platform (``meta``, ``google_ads``, ``line``, ``webhook``) or file format."""
    recipient: str
    """The destination's name in destinations.toml, or who receives an exported file."""
    account: str
    """The account or audience written to (``meta:<audience id>``), or the file's path."""
    segment: str
    items: tuple[str, ...]
    """The data items provided, in the platform's words (``hashedEmail``, ``EMAIL``...)."""
    consent: str
    """The consent purpose the audience was filtered on (``ads``, ``line``, ``none``)."""
    people: tuple[str, ...] = ()
    """Tokens of the people whose data was provided (``erased:<request>`` once erased)."""
    removed: tuple[str, ...] = ()
    """Tokens of people whose removal was sent (their match keys went out to do it)."""
    reference: str = ""
    """The sync plan id (a resumed plan may be recorded twice: same reference)."""
    id: str = field(default_factory=lambda: secrets.token_hex(8))

    def to_json(self) -> dict[str, Any]:
        """The record as stored (one JSON line)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Provision:
        """A stored line back as a ``Provision``."""
        values = dict(data)
        for name in ("items", "people", "removed"):
            values[name] = tuple(values.get(name) or ())
        return cls(**values)


def customer_token(secret: bytes, customer_id: str) -> str:
    """How a record names a person: the peppered token of ``customer:<id>``."""
    return token(secret, f"customer:{customer_id}")


def folder(data_dir: Path) -> Path:
    """``<data dir>/privacy/provisions``, created (mode 0700) when missing."""
    path = directory(data_dir) / PROVISIONS
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[Path]:
    # Appends and redactions exclude each other: a line appended to a file that
    # a redaction is about to replace would be lost with the old inode.
    path = folder(data_dir)
    with open(path / _LOCK, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _month_file(root: Path, at: str) -> Path:
    return root / f"{at[:7]}.jsonl"


def record(
    data_dir: Path,
    *,
    kind: str,
    platform: str,
    recipient: str,
    account: str,
    segment: str,
    items: Iterable[str],
    consent: str | None,
    customer_ids: Iterable[str],
    removed_ids: Iterable[str] = (),
    reference: str = "",
    now: datetime | None = None,
) -> Provision:
    """Append the record of one provision (durably) and return it.

    ``customer_ids`` are the people whose data was sent; they are stored as
    tokens only (``customer_token``).
    """
    secret = pepper(data_dir)
    provision = Provision(
        at=_stamp(now or datetime.now(UTC)),
        kind=kind,
        platform=platform,
        recipient=recipient,
        account=account,
        segment=segment,
        items=tuple(sorted(set(items))),
        consent=consent or "none",
        people=tuple(customer_token(secret, c) for c in customer_ids),
        removed=tuple(customer_token(secret, c) for c in removed_ids),
        reference=reference,
    )
    line = orjson.dumps(provision.to_json()) + b"\n"
    with _locked(data_dir) as root:
        append_durably(_month_file(root, provision.at), line)
    return provision


def _month_files(root: Path) -> list[tuple[int, int, Path]]:
    found = []
    for path in root.iterdir():
        match = _MONTH_FILE.match(path.name)
        if match:
            found.append((int(match[1]), int(match[2]), path))
    return sorted(found)


def _parse(path: Path) -> Iterator[Provision]:
    for line in path.read_bytes().splitlines():
        if line.strip():
            yield Provision.from_json(orjson.loads(line))


def read(data_dir: Path, since: datetime | None = None) -> list[Provision]:
    """Every record, oldest first; with ``since``, only those at or after it."""
    root = folder(data_dir)
    floor = _stamp(since) if since is not None else ""
    found: list[Provision] = []
    for year, month, path in _month_files(root):
        if floor and f"{year:04d}-{month:02d}" < floor[:7]:
            continue  # the whole month is older
        found.extend(p for p in _parse(path) if p.at >= floor)
    found.sort(key=lambda p: p.at)
    return found


def provided_to(data_dir: Path, *customer_ids: str) -> list[Provision]:
    """The records that include any of these customers (a data-subject access request).

    Pass every customer id the person had (a merge changes it) to find them all.
    """
    secret = pepper(data_dir)
    wanted = {customer_token(secret, c) for c in customer_ids}
    return [p for p in read(data_dir) if wanted & (set(p.people) | set(p.removed))]


def redact(data_dir: Path, customer_ids: Iterable[str], request_id: str) -> int:
    """Replace these customers' tokens by ``erased:<request_id>`` in every record file.

    Each file holding one is rewritten atomically; returns how many records
    changed. Running it again changes nothing (the tokens are gone).
    """
    secret = pepper(data_dir)
    tokens = {customer_token(secret, c) for c in customer_ids}
    if not tokens:
        return 0
    marker = f"{ERASED}{request_id}"
    changed = 0
    with _locked(data_dir) as root:
        for _, _, path in _month_files(root):
            raw = path.read_bytes()
            if not any(t.encode() in raw for t in tokens):
                continue
            lines = []
            for provision in _parse(path):
                people = tuple(marker if t in tokens else t for t in provision.people)
                removed = tuple(marker if t in tokens else t for t in provision.removed)
                kept = replace(provision, people=people, removed=removed)
                changed += kept != provision
                lines.append(orjson.dumps(kept.to_json()) + b"\n")
            write_atomically(path, b"".join(lines), mode=0o600)
    return changed


def expires(year: int, month: int) -> datetime:
    """When a month's records may go: ``RETENTION_YEARS`` after the month's end."""
    after_year, after_month = (year + 1, 1) if month == 12 else (year, month + 1)
    return datetime(after_year + RETENTION_YEARS, after_month, 1, tzinfo=UTC)


def prune(data_dir: Path, now: datetime) -> list[Path]:
    """Delete the month files whose every record is older than ``RETENTION_YEARS``.

    Returns the files deleted; a file younger than that is never touched.
    """
    removed = []
    with _locked(data_dir) as root:
        for year, month, path in _month_files(root):
            if now >= expires(year, month):
                path.unlink()
                removed.append(path)
    return removed
