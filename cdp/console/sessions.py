"""Console sessions: signed-in browsers, kept server-side.

A session is a 256-bit random token in the ``cdp_session`` cookie (HttpOnly,
SameSite=Lax, Secure when the request came over TLS). Only its SHA-256 is
stored, in ``<data dir>/console/sessions.sqlite`` (SQLite, so that sessions
survive a restart of ``cdp serve`` and the CLI can end a user's sessions), with
the user's name, a per-session CSRF token, when it started and when it was last
used. A session ends after ``idle`` seconds without a request, ``absolute``
seconds after sign-in, at sign-out, or when its user is removed. The CSRF token
is compared in constant time on every form (``cdp.console.web``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cdp.services.users import SUBDIRECTORY

FILE_NAME: Final = "sessions.sqlite"
IDLE_SECONDS: Final = 30 * 60
ABSOLUTE_SECONDS: Final = 12 * 60 * 60
_TOUCH_EVERY: Final = 30.0
"""Seconds between writes of ``last_seen`` for one session (reads are most requests)."""


@dataclass(frozen=True, slots=True)
class Session:
    """One signed-in browser."""

    user: str
    csrf: str
    started: float
    last_seen: float

    def csrf_ok(self, given: str | None) -> bool:
        """Whether a form's CSRF field is this session's token (constant time)."""
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionStore:
    """The sessions of one data directory (one SQLite connection per thread)."""

    def __init__(
        self, data_dir: Path, idle: float = IDLE_SECONDS, absolute: float = ABSOLUTE_SECONDS
    ) -> None:
        self.path = data_dir / SUBDIRECTORY / FILE_NAME
        self.idle = idle
        self.absolute = absolute
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            con = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self.path.chmod(0o600)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS sessions (digest TEXT PRIMARY KEY, user TEXT NOT NULL,"
                " csrf TEXT NOT NULL, started REAL NOT NULL, last_seen REAL NOT NULL)"
            )
            self._local.con = con
        return con

    def start(self, user: str, now: float | None = None) -> str:
        """A new session for ``user``; the token for the cookie (stored only hashed)."""
        at = time.time() if now is None else now
        token = secrets.token_urlsafe(32)
        db = self._db()
        db.execute("DELETE FROM sessions WHERE last_seen < ?", (at - self.idle,))
        db.execute(
            "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
            (_digest(token), user, secrets.token_urlsafe(32), at, at),
        )
        return token

    def get(self, token: str | None, now: float | None = None) -> Session | None:
        """The live session of ``token`` (its last use recorded), else ``None``
        (unknown, idle too long, too old: ended)."""
        if not token:
            return None
        at = time.time() if now is None else now
        db = self._db()
        digest = _digest(token)
        row = db.execute(
            "SELECT user, csrf, started, last_seen FROM sessions WHERE digest = ?", (digest,)
        ).fetchone()
        if row is None:
            return None
        session = Session(*row)
        if at - session.last_seen > self.idle or at - session.started > self.absolute:
            db.execute("DELETE FROM sessions WHERE digest = ?", (digest,))
            return None
        if at - session.last_seen > _TOUCH_EVERY:
            db.execute("UPDATE sessions SET last_seen = ? WHERE digest = ?", (at, digest))
        return session

    def end(self, token: str | None) -> None:
        """Sign out: the session is gone."""
        if token:
            self._db().execute("DELETE FROM sessions WHERE digest = ?", (_digest(token),))

    def end_user(self, user: str) -> int:
        """End every session of ``user`` (removed, password changed); how many ended."""
        return self._db().execute("DELETE FROM sessions WHERE user = ?", (user,)).rowcount

    def close(self) -> None:
        """Close this thread's connection."""
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None
