"""Customers erased in Kafka mode whose derived copies are not rebuilt yet.

In Kafka mode an erasure destroys the person's keys at once (their events in
``cdp.log`` can never be read again), but the topics the workers derived from
the log (profiles, identity assignments, merges, changelogs) still hold their
last values until the next rebuild drops that generation of topics
(docs/privacy.md, "Erasure in Kafka mode"). Until then the API must not serve
them: this list names the erased customers, by token, and the Kafka lookups
answer "not found" for every customer on it.

``<data dir>/privacy/erased.json`` = ``{"tokens": {token: {"since", "request"}}}``
with ``token = HMAC-SHA256(pepper, "customer:" + customer id)``: it names nobody.
Written atomically under a lock file, like the suppression list; read again
when the file changes (checked at most once a second).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cdp.atomic import write_atomically
from cdp.services.privacy import files

FILE = "erased.json"
RECHECK_SECONDS = 1.0


class ErasedCustomers:
    """The erased-customers list of one data directory (see the module docstring)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = files.directory(data_dir) / FILE
        self._pepper = files.pepper(data_dir)
        self._lock = threading.Lock()
        self._tokens: frozenset[str] = frozenset()
        self._stamp: tuple[int, int, int] | None = None
        self._checked = 0.0
        self._reload()

    def add(self, customer_ids: Iterable[str], request_id: str) -> int:
        """Put these customers on the list; how many were not on it."""
        with self._file_lock():
            body = self._read()
            tokens: dict[str, Any] = body.setdefault("tokens", {})
            since = datetime.now(UTC).isoformat()
            added = 0
            for customer in customer_ids:
                token = self._token(customer)
                if token not in tokens:
                    tokens[token] = {"since": since, "request": request_id}
                    added += 1
            if added:
                write_atomically(self.path, orjson.dumps(body), mode=0o600)
        self._reload()
        return added

    def clear(self) -> int:
        """Empty the list (after the generation that held them was dropped); how many."""
        with self._file_lock():
            count = len(self._read().get("tokens", {}))
            write_atomically(self.path, orjson.dumps({"tokens": {}}), mode=0o600)
        self._reload()
        return count

    def __contains__(self, customer_id: object) -> bool:
        if not isinstance(customer_id, str):
            return False
        now = time.monotonic()
        if now - self._checked >= RECHECK_SECONDS:
            self._checked = now
            if self._stat() != self._stamp:
                self._reload()
        return self._token(customer_id) in self._tokens

    def __len__(self) -> int:
        return len(self._tokens)

    def _token(self, customer_id: str) -> str:
        return files.token(self._pepper, "customer:" + customer_id)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read(self) -> dict[str, Any]:
        try:
            body = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"tokens": {}}
        except orjson.JSONDecodeError as error:
            raise ValueError(f"{self.path} is not valid JSON ({error}); restore it") from None
        return body if isinstance(body, dict) else {"tokens": {}}

    def _reload(self) -> None:
        with self._lock:
            self._stamp = self._stat()
            # A broken file keeps the last list read: it must not serve the erased.
            with contextlib.suppress(ValueError):
                self._tokens = frozenset(self._read().get("tokens", {}))

    @contextmanager
    def _file_lock(self) -> Iterator[None]:
        with open(self.path.with_suffix(".lock"), "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
