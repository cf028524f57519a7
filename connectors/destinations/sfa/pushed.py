"""The SFA records a push created, and the deletions an erasure still owes.

One file per SFA destination, ``<data dir>/sync/<destination>/sfa/records.json``
(written atomically, under an ``flock`` of ``records.lock`` beside it, since
pushes of two segments to one destination may run at once)::

    {"version": 1,
     "records": {"cus_...": ["00Q5g00000AbCdE"]},
     "deletions": {"<token>": {"request": "pr_...", "ids": ["00Q5g00000AbCdE"],
                               "since": "2026-05-20T06:12:00Z", "error": "..."}}}

- ``records``: customer id → the vendor's record ids (Salesforce Id, HubSpot
  ``hs_object_id``, kintone ``$id``) that upserts of that customer answered,
  kept as each chunk is acknowledged and before it is marked done (a crash
  in between resends the chunk and gets the same ids). Usually one id; a
  HubSpot contact keyed by a changed e-mail is a second record. This is who
  was handed to sales (``pushed_people``) and what an erasure deletes.
- ``deletions``: what an erasure took out of ``records`` and has not yet
  deleted in the SFA, keyed by ``token(pepper, "customer:" + id)``
  (``cdp.services.privacy.provisions.customer_token``), never by the
  customer id: this part outlives the erasure, so it must not name the
  person. Entries leave it once the SFA confirms the deletion.

It sits in a ``sfa/`` folder so that the segment journals beside it
(``<segment>.json``) never mistake it for one.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from cdp.errors import ConfigError
from cdp.services.privacy import files
from cdp.services.privacy.provisions import customer_token
from connectors.destinations.push.journal import Journal, write_atomic

FORMAT_VERSION: Final = 1
FOLDER: Final = "sfa"
FILE: Final = "records.json"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def folder_of(destination_directory: Path) -> Path:
    """Where a destination's record file lives, given its sync directory."""
    return destination_directory / FOLDER


class PushedRecords:
    """The record file of one SFA destination; see the module docstring."""

    def __init__(self, data_dir: Path, destination: str) -> None:
        self.data_dir = data_dir
        self.destination = destination
        self.directory = folder_of(Journal(data_dir, destination, "x").directory)
        self.path = self.directory / FILE

    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, Any]]:
        """The document, locked; written back (atomically) if the block changed it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "records.lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            try:
                document = self.read()
                before = orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
                yield document
                if orjson.dumps(document, option=orjson.OPT_SORT_KEYS) != before:
                    write_atomic(self.path, document)
            finally:
                fcntl.flock(lock.fileno(), fcntl.LOCK_UN)

    def read(self) -> dict[str, Any]:
        """The file as stored (an empty document when there is none)."""
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"version": FORMAT_VERSION, "records": {}, "deletions": {}}
        except orjson.JSONDecodeError as error:
            raise ConfigError(f"SFA record file {self.path} is not valid JSON: {error}") from None
        if data.get("version") != FORMAT_VERSION:
            raise ConfigError(
                f"SFA record file {self.path} has unknown version {data.get('version')}"
            )
        data.setdefault("records", {})
        data.setdefault("deletions", {})
        return dict(data)

    def records(self) -> dict[str, list[str]]:
        """Customer id → the record ids the SFA answered for them."""
        return {k: list(v) for k, v in self.read()["records"].items()}

    def deletions(self) -> dict[str, dict[str, Any]]:
        """Token → ``{"request", "ids", "since", "error"}``: deletions still owed."""
        return dict(self.read()["deletions"])

    def add(self, ids: Mapping[str, str]) -> None:
        """Keep the record id each customer's upsert answered (idempotent)."""
        if not ids:
            return
        with self._changing() as document:
            kept: dict[str, list[str]] = document["records"]
            for customer_id, record_id in ids.items():
                known = kept.setdefault(customer_id, [])
                if record_id not in known:
                    known.append(record_id)

    def owe(self, customer_ids: Iterable[str], request_id: str) -> int:
        """Move these customers' record ids from ``records`` to ``deletions``, under
        their tokens; how many record ids are now owed for them."""
        wanted = set(customer_ids)
        if not wanted or not self.path.exists():
            return 0
        secret = files.pepper(self.data_dir)
        owed = 0
        with self._changing() as document:
            for customer_id in sorted(wanted & document["records"].keys()):
                ids = document["records"].pop(customer_id)
                entry = document["deletions"].setdefault(
                    customer_token(secret, customer_id),
                    {"request": request_id, "ids": [], "since": _now(), "error": None},
                )
                entry["ids"] = sorted(set(entry["ids"]) | set(ids))
                owed += len(entry["ids"])
        return owed

    def settle(self, token: str, deleted: Iterable[str], error: str | None) -> None:
        """Record a deletion attempt: ``deleted`` ids leave the entry (the entry
        leaves when empty); ``error`` is kept for what is still owed."""
        gone = set(deleted)
        with self._changing() as document:
            entry = document["deletions"].get(token)
            if entry is None:
                return
            entry["ids"] = [i for i in entry["ids"] if i not in gone]
            if not entry["ids"]:
                del document["deletions"][token]
            else:
                entry["error"] = error


def record_folders(data_dir: Path) -> list[Path]:
    """Every destination's record folder under ``<data dir>/sync`` (configured or not)."""
    root = data_dir / "sync"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob(f"*/{FOLDER}") if (p / FILE).is_file())


def pushed_people(data_dir: Path) -> set[str]:
    """Customer ids whose record reached any SFA destination: handed to sales."""
    people: set[str] = set()
    for directory in record_folders(data_dir):
        data = orjson.loads((directory / FILE).read_bytes())
        people |= set(data.get("records") or {})
    return people
