"""Privacy requests about a person and their status: ``<data dir>/privacy/requests.json``.

A request names a person by one identifier (``email:a@b.jp``, ``user_id:u1``,
``cus_...``) and asks for one of Segment's regulation types:

============================ =======================================================
type                         what it does
============================ =======================================================
``delete``                   erase the person everywhere the platform writes
``suppress``                 refuse their new events at every door, keep their data
``suppress-with-delete``     both
``unsuppress``               accept their events again
============================ =======================================================

Status: ``received`` → ``running`` → ``finished``, or ``partial`` (done here,
but named destinations failed: ``failed``), or ``failed`` (with the error; run
again). The plain identifier is kept only while the request is not finished
(a crashed erasure must know whom to finish), and so is ``person``: every
customer id and identifier key the erasure found, saved before it deletes
anything, since a run resumed after the deletes can no longer find them in the
database and still owes the copies (exports, archive, audiences, APPI records)
their removal. Then only its kind and its token (``files.token``) remain, so
the list of requests holds no personal data.
The file is rewritten atomically under a lock (the server and the CLI may both
write it).
"""

from __future__ import annotations

import fcntl
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import orjson

from cdp.atomic import write_atomically
from cdp.errors import ConfigError, NotFoundError
from cdp.services.privacy import files

FILE: Final = "requests.json"
LOCK: Final = "requests.lock"
DELETE: Final = "delete"
SUPPRESS: Final = "suppress"
SUPPRESS_WITH_DELETE: Final = "suppress-with-delete"
UNSUPPRESS: Final = "unsuppress"
TYPES: Final = (DELETE, SUPPRESS, SUPPRESS_WITH_DELETE, UNSUPPRESS)
RECEIVED: Final = "received"
RUNNING: Final = "running"
FINISHED: Final = "finished"
PARTIAL: Final = "partial"
FAILED: Final = "failed"
OPEN: Final = (RECEIVED, RUNNING, FAILED)
"""Statuses of a request that still has work to do."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass(frozen=True, slots=True)
class PrivacyRequest:
    """One request and how far it got."""

    id: str
    type: str
    subject_kind: str
    """``email``, ``phone``, ``user_id``, ``customer``...: what kind of identifier named them."""
    subject_token: str
    actor: str
    """Who asked: ``token:<read token name>`` or ``cli:<user>``."""
    received_at: str
    status: str = RECEIVED
    updated_at: str = ""
    subject: str | None = None
    """The identifier itself, only until the request is done."""
    steps: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    """Destinations (or stores) that could not be reached, with the reason."""
    error: str | None = None
    runtime: str = "embedded"
    """Where the person's data is: ``embedded`` (this data directory) or ``kafka``
    (filed to ``cdp serve --kafka``; erasure there is not built yet: docs/privacy.md)."""

    person: dict[str, list[str]] | None = None
    """What the erasure found (``customers``, ``identifiers``), only until it is done."""

    @property
    def erases(self) -> bool:
        return self.type in (DELETE, SUPPRESS_WITH_DELETE)

    def public(self) -> dict[str, Any]:
        """The request as the API and ``--json`` show it (never the identifier)."""
        shown = asdict(self)
        shown.pop("subject")
        shown.pop("person")
        return shown


def subject_kind(identifier: str) -> str:
    return "customer" if identifier.startswith("cus_") else identifier.partition(":")[0]


class Requests:
    """The requests of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.directory = files.directory(data_dir)
        self.path = self.directory / FILE

    @contextmanager
    def _locked(self) -> Iterator[list[PrivacyRequest]]:
        with (self.directory / LOCK).open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                found = self._read()
                before = list(found)
                yield found
                if found != before:
                    body = {"requests": [asdict(r) for r in found]}
                    write_atomically(self.path, orjson.dumps(body), mode=0o600)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read(self) -> list[PrivacyRequest]:
        try:
            raw = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return []
        return [PrivacyRequest(**r) for r in raw.get("requests", [])]

    def file(
        self, kind: str, identifier: str, actor: str, runtime: str = "embedded"
    ) -> PrivacyRequest:
        """Record a new request (``received``) for the identifier key or ``cus_`` id."""
        if kind not in TYPES:
            raise ConfigError(f"request type {kind!r} is not one of {', '.join(TYPES)}")
        secret = files.pepper(self.data_dir)
        request = PrivacyRequest(
            id="pr_" + secrets.token_hex(8),
            type=kind,
            subject_kind=subject_kind(identifier),
            subject_token=files.token(secret, identifier),
            actor=actor,
            received_at=_now(),
            updated_at=_now(),
            subject=identifier,
            runtime=runtime,
        )
        with self._locked() as found:
            found.append(request)
        return request

    def update(self, request: PrivacyRequest, **changes: Any) -> PrivacyRequest:
        """Save ``request`` with ``changes``; a finished one forgets whom it was about."""
        changed = replace(request, **changes, updated_at=_now())
        if changed.status in (FINISHED, PARTIAL):
            changed = replace(changed, subject=None, person=None)
        with self._locked() as found:
            for i, r in enumerate(found):
                if r.id == request.id:
                    found[i] = changed
                    break
            else:
                raise NotFoundError(f"no privacy request {request.id!r}")
        return changed

    def all(self, status: str | None = None) -> list[PrivacyRequest]:
        """Every request, oldest first (``status``: only those)."""
        with self._locked() as found:
            return [r for r in found if status is None or r.status == status]

    def get(self, request_id: str) -> PrivacyRequest:
        for request in self.all():
            if request.id == request_id:
                return request
        raise NotFoundError(f"no privacy request {request_id!r}")

    def open(self) -> list[PrivacyRequest]:
        """Requests with work left (received, running after a crash, failed)."""
        return [r for r in self.all() if r.status in OPEN and r.subject is not None]
