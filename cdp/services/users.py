"""Console users: who may sign in to the console, with which role.

``<data dir>/console/users.json`` (written atomically, mode 0600) holds each
user's name, role, Argon2id password hash (``argon2-cffi``, the maintained
binding of the Password Hashing Competition winner; memory-hard: 64 MiB, 3
passes by default, its parameters stored in the hash so they can be raised
later and old hashes re-hashed on the next sign-in), when they were created,
and the sign-in failures counted against them.

Roles, each including the one below it:

- ``viewer``: reads every screen;
- ``marketer``: also builds and saves segments and downloads exports (CSV,
  audience files) and starts audience syncs;
- ``admin``: also manages sources, write keys, read tokens, users and privacy
  requests.

Lock-out: after ``MAX_FAILURES`` wrong passwords in a row a user is locked for
``LOCK_SECONDS``; a right password inside that time is refused too (so the lock
cannot be probed), and ``cdp users unlock NAME`` ends it. An unknown name costs
a hash like a known one, so timing does not tell which names exist.

The file is re-read when it changes, so a user removed or re-roled with the CLI
while ``cdp serve`` runs loses that access on the next request. Writers hold an
exclusive ``flock`` of ``console/.users.lock`` (the CLI and the server both write:
the server counts failures).
"""

from __future__ import annotations

import fcntl
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from cdp.atomic import write_atomically
from cdp.errors import AuthError, ConfigError, NotFoundError

SUBDIRECTORY: Final = "console"
FILE_NAME: Final = "users.json"
LOCK_NAME: Final = ".users.lock"
ROLES: Final = ("viewer", "marketer", "admin")
"""Least to most: each role may do what the ones before it may."""
MAX_FAILURES: Final = 5
LOCK_SECONDS: Final = 15 * 60
MIN_PASSWORD: Final = 10
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.@-]{0,62}$")
_DECOY_PASSWORD: Final = "decoy password, never a user's"


@dataclass(frozen=True, slots=True)
class User:
    """One console user (the hash is kept, never shown)."""

    name: str
    role: str
    password_hash: str
    created_at: str
    failures: int = 0
    locked_until: str | None = None
    last_sign_in: str | None = None

    def may(self, role: str) -> bool:
        """Whether this user has ``role`` or a higher one."""
        return ROLES.index(self.role) >= ROLES.index(role)

    def locked(self, now: datetime) -> bool:
        """Whether sign-in is refused now because of repeated failures."""
        return self.locked_until is not None and datetime.fromisoformat(self.locked_until) > now

    def as_dict(self) -> dict[str, Any]:
        """What is stored."""
        return {
            "name": self.name,
            "role": self.role,
            "password_hash": self.password_hash,
            "created_at": self.created_at,
            "failures": self.failures,
            "locked_until": self.locked_until,
            "last_sign_in": self.last_sign_in,
        }


def check_role(role: str) -> str:
    """``role`` if known, else ``ConfigError`` naming the choices."""
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    return role


def check_password(password: str) -> str:
    """``password`` if long enough, else ``ConfigError`` saying how long it must be."""
    if len(password) < MIN_PASSWORD:
        raise ConfigError(f"a console password needs at least {MIN_PASSWORD} characters")
    return password


def _now() -> datetime:
    return datetime.now(UTC)


class UserStore:
    """The console users of one data directory (safe to share between threads)."""

    def __init__(self, data_dir: Path, hasher: PasswordHasher | None = None) -> None:
        """``hasher``: Argon2id with other parameters (tests use cheap ones); by
        default argon2-cffi's RFC 9106 low-memory profile: 64 MiB, t=3, p=4."""
        self.hasher = hasher or PasswordHasher()
        #: Verified against when the name is unknown, so both paths cost one hash.
        self._decoy = ""
        self.directory = data_dir / SUBDIRECTORY
        self.path = self.directory / FILE_NAME
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------- reading
    def _load(self) -> dict[str, User]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return self._users
        try:
            data = orjson.loads(self.path.read_bytes())
            users = {item["name"]: User(**item) for item in data["users"]}
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise ConfigError(f"{self.path} is unreadable: {error}") from None
        self._stamp, self._users = stamp, users
        return users

    def list(self) -> list[User]:
        """Every user, in the order they were added."""
        with self._lock:
            return list(self._load().values())

    def get(self, name: str) -> User | None:
        """The user called ``name`` now (``None`` if removed)."""
        with self._lock:
            return self._load().get(name)

    # ------------------------------------------------------------- writing
    @contextmanager
    def _editing(self) -> Iterator[dict[str, User]]:
        """The users under the file lock; what the block leaves in the dict is saved."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._lock, open(self.directory / LOCK_NAME, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._stamp = None  # another process may have written: read afresh
            users = dict(self._load())
            yield users
            data = orjson.dumps(
                {"users": [u.as_dict() for u in users.values()]}, option=orjson.OPT_INDENT_2
            )
            write_atomically(self.path, data, 0o600)
            self._stamp = None

    def add(self, name: str, role: str, password: str, now: datetime | None = None) -> User:
        """A new user; ``ConfigError`` for a taken or malformed name, a role or a short
        password."""
        if not _NAME.match(name):
            raise ConfigError(
                f"user name {name!r}: lower-case letters, digits and . _ - @, up to 63 characters"
            )
        check_role(role)
        check_password(password)
        with self._editing() as users:
            if name in users:
                raise ConfigError(f"console user {name!r} already exists")
            user = User(name, role, self.hasher.hash(password), (now or _now()).isoformat())
            users[name] = user
        return user

    def remove(self, name: str) -> None:
        """Delete a user; their sessions end on their next request."""
        with self._editing() as users:
            if users.pop(name, None) is None:
                raise NotFoundError(f"no console user {name!r}")

    def set_role(self, name: str, role: str) -> User:
        """Change a user's role (effective on their next request)."""
        check_role(role)
        return self._change(name, role=role)

    def set_password(self, name: str, password: str) -> User:
        """Replace a user's password (and lift a lock-out)."""
        check_password(password)
        return self._change(
            name, password_hash=self.hasher.hash(password), failures=0, locked_until=None
        )

    def unlock(self, name: str) -> User:
        """Lift a lock-out and reset the failure count."""
        return self._change(name, failures=0, locked_until=None)

    def _change(self, name: str, **changes: Any) -> User:
        with self._editing() as users:
            user = users.get(name)
            if user is None:
                raise NotFoundError(f"no console user {name!r}")
            users[name] = replace(user, **changes)
            return users[name]

    # ------------------------------------------------------------- signing in
    def authenticate(self, name: str, password: str, now: datetime | None = None) -> User:
        """The user if ``password`` is theirs and they are not locked out; else
        ``AuthError`` with one message for every refusal except the lock-out
        (which says to wait or ask an admin)."""
        at = now or _now()
        user = self.get(name)
        if user is None:
            self._verify(self._decoy_hash(), password)
            raise AuthError("wrong user name or password")
        if user.locked(at):
            self._verify(self._decoy_hash(), password)
            raise AuthError(
                "this user is locked after repeated failures: wait "
                f"{LOCK_SECONDS // 60} minutes or ask an admin (cdp users unlock {name})"
            )
        if not self._verify(user.password_hash, password):
            failures = user.failures + 1
            locked = (at + timedelta(seconds=LOCK_SECONDS)).isoformat()
            self._change(
                name,
                failures=0 if failures >= MAX_FAILURES else failures,
                locked_until=locked if failures >= MAX_FAILURES else None,
            )
            raise AuthError("wrong user name or password")
        changes: dict[str, Any] = {
            "failures": 0,
            "locked_until": None,
            "last_sign_in": at.isoformat(),
        }
        if self.hasher.check_needs_rehash(user.password_hash):
            changes["password_hash"] = self.hasher.hash(password)
        return self._change(name, **changes)

    def _decoy_hash(self) -> str:
        if not self._decoy:
            self._decoy = self.hasher.hash(_DECOY_PASSWORD)
        return self._decoy

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
