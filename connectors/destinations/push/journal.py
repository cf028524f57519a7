"""Sync state of one (destination, segment): what was synced, and the pending plan.

Files under ``<data dir>/sync/<destination>/``, each written atomically
(temporary file, fsync, rename, fsync of the directory):

- ``<segment>.json``: the journal. The pending plan (id, target, the chunk
  list with a done mark per chunk, platform state such as Google job resource
  names or LINE audience group ids), the last sync's report and a short
  history. Rewritten after every acknowledged chunk; it stays small because
  the rows live in the next file.
- ``<segment>.plan.json``: the rows of the pending plan (customer id → the
  platform row sent), written once, before the plan's first request, and
  never changed: a resumed plan sends byte-identical chunks.
- ``<segment>.members.json``: the last successfully synced member set
  (customer id → row) with the id of the plan that produced it. Replaced
  only when a plan completes.

The completion order makes a crash at any point harmless: the members file
is written (tagged with the plan id) before the plan is cleared from the
journal, so a plan found complete on restart is applied to the members file
only if that file does not carry its id yet.

A ``<segment>.lock`` file held with ``flock`` keeps two syncs of the same
audience from running at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from cdp.atomic import write_atomically
from cdp.errors import ConfigError, LogUnavailableError

FORMAT_VERSION = 1
HISTORY = 20
_SAFE = re.compile(r"[^A-Za-z0-9_.-]")


def write_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` so that a reader sees the old or the new file, never half."""
    write_atomically(path, orjson.dumps(data, option=orjson.OPT_SORT_KEYS), 0o600)


def _read(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except orjson.JSONDecodeError as error:
        raise ConfigError(f"sync state {path} is not valid JSON: {error}") from None


@dataclass
class Chunk:
    """One request's worth of a plan: an action on some customers, and its done mark."""

    index: int
    action: str  # "add" | "remove"
    keys: list[str]
    done: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "action": self.action, "keys": self.keys, "done": self.done}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Chunk:
        return cls(int(data["index"]), str(data["action"]), list(data["keys"]), bool(data["done"]))


@dataclass
class Plan:
    """A computed change set for one destination, executed chunk by chunk."""

    id: str
    created_at: str
    target: str
    adds: list[str]
    removes: list[str]
    chunks: list[Chunk]
    rows: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def header(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "created_at": self.created_at,
            "target": self.target,
            "adds": len(self.adds),
            "removes": len(self.removes),
            "chunks": [c.to_json() for c in self.chunks],
            "state": self.state,
        }


@dataclass
class Synced:
    """The last successfully synced member set."""

    plan_id: str | None
    at: str | None
    members: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


class Journal:
    """The sync files of one (destination, segment)."""

    def __init__(self, data_dir: Path, destination: str, segment: str) -> None:
        self.data_dir = data_dir
        self.destination = destination
        self.segment = segment
        self.directory = data_dir / "sync" / _SAFE.sub("_", destination)
        stem = _SAFE.sub("_", segment)
        self.path = self.directory / f"{stem}.json"
        self.plan_path = self.directory / f"{stem}.plan.json"
        self.members_path = self.directory / f"{stem}.members.json"
        self.lock_path = self.directory / f"{stem}.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the audience's lock; ``LogUnavailableError`` if another sync holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.lock_path, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LogUnavailableError(
                    f"another sync of {self.segment!r} to {self.destination!r} is running"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # ------------------------------------------------------------ reading
    def document(self) -> dict[str, Any]:
        """The journal file as stored (empty skeleton when there is none)."""
        data = _read(self.path)
        if data is None:
            return {"version": FORMAT_VERSION, "plan": None, "last_sync": None, "history": []}
        if data.get("version") != FORMAT_VERSION:
            raise ConfigError(f"sync state {self.path} has unknown version {data.get('version')}")
        return dict(data)

    def pending(self) -> Plan | None:
        """The plan not yet completed, with its rows, if any."""
        header = self.document().get("plan")
        if not header:
            return None
        stored = _read(self.plan_path)
        if not stored or stored.get("plan_id") != header["id"]:
            raise ConfigError(
                f"sync state {self.path}: rows of plan {header['id']} are missing "
                f"({self.plan_path}); delete {self.path} to start over from the last synced set"
            )
        return Plan(
            id=header["id"],
            created_at=header["created_at"],
            target=header["target"],
            adds=list(stored["adds"]),
            removes=list(stored["removes"]),
            chunks=[Chunk.from_json(c) for c in header["chunks"]],
            rows=dict(stored["rows"]),
            state=dict(header.get("state") or {}),
        )

    def synced(self) -> Synced:
        """The last synced member set (empty before the first sync)."""
        data = _read(self.members_path)
        if data is None:
            return Synced(None, None, {})
        return Synced(
            data.get("plan_id"),
            data.get("at"),
            dict(data.get("members") or {}),
            dict(data.get("extra") or {}),
        )

    # ------------------------------------------------------------ writing
    def begin(self, plan: Plan) -> None:
        """Persist a new plan (rows first, then the journal) before any request."""
        write_atomic(
            self.plan_path,
            {"plan_id": plan.id, "adds": plan.adds, "removes": plan.removes, "rows": plan.rows},
        )
        self.save(plan)

    def save(self, plan: Plan) -> None:
        """Persist the plan's done marks and platform state."""
        document = self.document()
        document["plan"] = plan.header()
        write_atomic(self.path, document)

    def finish(self, plan: Plan, report: dict[str, Any], at: str) -> None:
        """Advance the synced set by a completed plan, then clear the plan."""
        synced = self.synced()
        if synced.plan_id != plan.id:  # not applied yet (a crash may have come between)
            members = dict(synced.members)
            for key in plan.removes:
                members.pop(key, None)
            for key in plan.adds:
                members[key] = plan.rows[key]
            extra = {**synced.extra, **plan.state.get("synced_extra", {})}
            write_atomic(
                self.members_path,
                {"plan_id": plan.id, "at": at, "members": members, "extra": extra},
            )
        document = self.document()
        document["plan"] = None
        document["last_sync"] = report
        document["history"] = [report, *document.get("history", [])][:HISTORY]
        write_atomic(self.path, document)
        self.plan_path.unlink(missing_ok=True)

    def forget(self, keys: set[str]) -> int:
        """Drop these customers from the pending plan, the synced set and every
        per-customer map of its platform state (an SFA's ``record_errors``),
        sending nothing: for destinations where leaving sends nothing (the SFAs).
        How many synced rows went. Idempotent, so a crash is finished by a re-run:
        the plan's header goes first, so its chunks never name a missing row."""
        plan = self.pending()
        if plan is not None and keys & plan.rows.keys():
            plan.adds = [k for k in plan.adds if k not in keys]
            plan.removes = [k for k in plan.removes if k not in keys]
            for chunk in plan.chunks:
                chunk.keys = [k for k in chunk.keys if k not in keys]
            plan.rows = {k: row for k, row in plan.rows.items() if k not in keys}
            self.save(plan)
            write_atomic(
                self.plan_path,
                {"plan_id": plan.id, "adds": plan.adds, "removes": plan.removes, "rows": plan.rows},
            )
        synced = self.synced()
        gone = keys & synced.members.keys()
        extra = {
            name: {k: v for k, v in value.items() if k not in keys}
            if isinstance(value, dict)
            else value
            for name, value in synced.extra.items()
        }
        if not gone and extra == synced.extra:
            return 0
        members = {k: row for k, row in synced.members.items() if k not in keys}
        write_atomic(
            self.members_path,
            {"plan_id": synced.plan_id, "at": synced.at, "members": members, "extra": extra},
        )
        return len(gone)

    def record(self, report: dict[str, Any]) -> None:
        """Record a sync that had nothing to send."""
        document = self.document()
        document["last_sync"] = report
        document["history"] = [report, *document.get("history", [])][:HISTORY]
        write_atomic(self.path, document)
