"""Suppression: the people whose new events every door refuses.

``<data dir>/privacy/suppressions.json`` holds
``{"tokens": {token: {"since": iso, "request": id}}}``, where a token is
``files.token(pepper, identifier_key)``: the list names nobody in the clear
(an erased person may stay suppressed), and without the pepper a guessed
email cannot be checked against it.

- :class:`SuppressionList`: the list (``load``, ``suppressed``, ``add``,
  ``remove``, ``tokens``). Changes are atomic rewrites, durable before they
  return, serialised between processes by a lock file; a long-running reader
  (``cdp serve``) sees another process's change (the CLI, the privacy API of
  another replica) within a second: it compares the file's inode, size and
  mtime at most once a second.
- :class:`SuppressionGate`: the one check every door runs after validation
  and before the append (``cdp.http.intake.Intake.submit`` for the HTTP
  routes, ``cdp.services.ingest.ingest`` for files and ``/v1/bulk``). An event
  is refused when any identifier it carries (``identifiers_of``) is
  suppressed, so an identify with a suppressed email and a new anonymous id is
  refused whole and the person cannot come back linked to another id; within
  one request or file, events that share an identifier with a refused event
  are refused too. Refused events are counted, never stored; the client's
  request succeeds as if they were accepted (Segment and RudderStack do the
  same), so a tracker does not retry them forever.

Cost: with an empty list the gate is one clock read and a truthiness test per
batch; with tokens, one HMAC-SHA256 (~1 µs) and one dict lookup per
identifier key of each event.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import orjson

from cdp.atomic import write_atomically
from cdp.ports.log import Record
from cdp.services.privacy import files
from projections.identity.extract import every_identifier_of
from schemas.identifiers import parse_key

SUPPRESSIONS_FILE: Final = "suppressions.json"
LOCK_FILE: Final = ".suppressions.lock"
#: How often a reader looks at the file for another process's change.
RECHECK_SECONDS: Final = 1.0

Entry = Mapping[str, str]
_Stamp = tuple[int, int, int]  # inode, size, mtime (ns): a rename or a rewrite changes it


class SuppressionList:
    """The suppression list of one data directory (tokens of identifier keys)."""

    def __init__(self, data_dir: Path) -> None:
        """An unread list; use :meth:`load`."""
        self.data_dir = data_dir
        self.path = data_dir / files.DIRECTORY / SUPPRESSIONS_FILE
        self._tokens: dict[str, Entry] = {}
        self._stamp: _Stamp | None = None
        self._checked = 0.0
        self._pepper: bytes | None = None
        #: Seconds between looks at the file (read at creation: tests set the module's to 0).
        self.recheck_seconds = RECHECK_SECONDS

    @classmethod
    def load(cls, data_dir: Path) -> SuppressionList:
        """The list as the file holds it now (empty when there is no file).

        ``ValueError`` naming the file if it is not a suppression list."""
        loaded = cls(data_dir)
        loaded._reload(_stamp_of(loaded.path))
        return loaded

    def __len__(self) -> int:
        """How many identifier keys are suppressed (as last read)."""
        return len(self._tokens)

    @property
    def tokens(self) -> Mapping[str, Entry]:
        """token → ``{"since", "request"}``, read-only; refreshed as :meth:`suppressed` is."""
        self.refresh()
        return MappingProxyType(self._tokens)

    def token(self, identifier_key: str) -> str:
        """The token of a normalised identifier key (``email:a@b.jp``)."""
        if self._pepper is None:
            self._pepper = files.pepper(self.data_dir)
        return hmac.digest(self._pepper, identifier_key.encode(), hashlib.sha256).hex()

    def suppressed(self, identifier_keys: Iterable[str]) -> bool:
        """Whether any of these normalised identifier keys is suppressed."""
        self.refresh()
        tokens = self._tokens
        if not tokens:  # the usual case: nobody is suppressed, no HMAC at all
            return False
        return any(self.token(key) in tokens for key in identifier_keys)

    def add(self, identifier_keys: Iterable[str], request_id: str) -> int:
        """Suppress these identifier keys (typed forms are normalised: ``email:A@B.JP``)
        on behalf of privacy request ``request_id``; how many were not suppressed yet.

        Durable when it returns. ``ValueError`` for a key that is not an identifier."""
        keys = _normalised(identifier_keys)
        since = datetime.now(UTC).isoformat()
        with self._locked() as tokens:
            added = 0
            for key in keys:
                token = self.token(key)
                if token not in tokens:
                    tokens[token] = {"since": since, "request": request_id}
                    added += 1
            return added

    def remove(self, identifier_keys: Iterable[str]) -> int:
        """Unsuppress these identifier keys; how many were suppressed. Durable when it returns."""
        keys = _normalised(identifier_keys)
        with self._locked() as tokens:
            return sum(tokens.pop(self.token(key), None) is not None for key in keys)

    def refresh(self) -> None:
        """Reload if another process changed the file; looks at most once a second."""
        now = time.monotonic()
        if now - self._checked < self.recheck_seconds:
            return
        self._checked = now
        stamp = _stamp_of(self.path)
        if stamp != self._stamp:
            try:
                self._reload(stamp)
            except ValueError:
                # Only a hand edit can break the file (writes are atomic): keep the
                # list last read rather than let every suppressed person back in.
                self._stamp = stamp

    def _reload(self, stamp: _Stamp | None) -> None:
        self._tokens = _read(self.path) if stamp is not None else {}
        self._stamp = stamp

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Entry]]:
        """The tokens as the file holds them, under the lock; written back on exit."""
        directory = files.directory(self.data_dir)
        with open(directory / LOCK_FILE, "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            tokens = _read(self.path) if self.path.exists() else {}
            before = dict(tokens)
            yield tokens
            if tokens != before:
                data = orjson.dumps({"tokens": tokens}, option=orjson.OPT_SORT_KEYS)
                write_atomically(self.path, data, mode=0o600)
            self._reload(_stamp_of(self.path))
            self._checked = time.monotonic()


class SuppressionGate:
    """The check every door runs between validation and the append, and its count.

    Thread-safe: the HTTP routes call it on the event loop, ``/v1/bulk`` and
    file ingest on worker threads.
    """

    def __init__(self, suppressions: SuppressionList) -> None:
        self.suppressions = suppressions
        self._refused = 0
        self._lock = threading.Lock()

    @classmethod
    def load(cls, data_dir: Path) -> SuppressionGate:
        """The gate over ``data_dir``'s suppression list."""
        return cls(SuppressionList.load(data_dir))

    @property
    def refused(self) -> int:
        """Events refused since this gate was made (``cdp_suppressed_events_total``)."""
        return self._refused

    def keep(self, records: list[Record], linked: set[str] | None = None) -> list[Record]:
        """The records no suppressed person sent (``records`` itself when all are kept).

        ``linked``: identifier keys refused earlier in the same request or file;
        updated with the keys of the events refused here, so an anonymous id
        that arrived beside a suppressed email is refused in later batches too.
        """
        suppressions = self.suppressions
        suppressions.refresh()
        if not suppressions and not linked:
            return records
        refused_keys = set() if linked is None else linked
        kept: list[Record] = []
        for record in records:
            keys = _keys_of(record)
            if suppressions.suppressed(keys) or not refused_keys.isdisjoint(keys):
                refused_keys.update(keys)
            else:
                kept.append(record)
        if len(kept) == len(records):
            return records
        with self._lock:
            self._refused += len(records) - len(kept)
        return kept


def _keys_of(record: Record) -> Sequence[str]:
    # previousId is a user id or an anonymous id depending on the graph, which
    # the door does not read: check both readings.
    return every_identifier_of(record.event)


def _normalised(identifier_keys: Iterable[str]) -> list[str]:
    normal = []
    for text in identifier_keys:
        kind, value = parse_key(text)
        normal.append(f"{kind}:{value}")
    return normal


def _stamp_of(path: Path) -> _Stamp | None:
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return (status.st_ino, status.st_size, status.st_mtime_ns)


def _read(path: Path) -> dict[str, Entry]:
    try:
        document: Any = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return {}
    except orjson.JSONDecodeError as error:
        raise ValueError(f"{path} is not a suppression list: {error}") from None
    tokens = document.get("tokens") if isinstance(document, dict) else None
    if not isinstance(tokens, dict):
        raise ValueError(f'{path} is not a suppression list: no "tokens" object')
    return tokens
