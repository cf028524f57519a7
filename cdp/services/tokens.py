"""Read tokens: who may read profiles and segments through the HTTP API.

Read tokens are separate from write keys (``cdp.services.sources``): a write key can
only add events, a read token can only read, and neither works as the other.
``cdp tokens add NAME --scope profiles:read`` prints the token once; only its
SHA-256 is stored, in ``<data dir>/tokens.json`` (written atomically, mode
0600). Each token carries scopes:

- ``profiles:read``: ``GET /v1/profiles/{type}:{value}``;
- ``segments:read``: ``GET /v1/segments`` and ``GET /v1/segments/{name}``.

The tokens are 192-bit random values, so a plain SHA-256 makes a leaked file
useless and keeps authentication O(1). The file is re-read when it changes,
so a token revoked while ``cdp serve`` runs is refused from its next request.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cdp.atomic import write_atomically
from cdp.errors import AuthError, ConfigError, ForbiddenError

FILE_NAME = "tokens.json"
TOKEN_PREFIX = "rt_"
WRITE_KEY_PREFIX = "wk_"  # cdp.sources.KEY_PREFIX, named here to give a clearer refusal
PROFILES_READ = "profiles:read"
SEGMENTS_READ = "segments:read"
PRIVACY_WRITE = "privacy:write"
"""Files and reads privacy requests (erase, suppress, unsuppress): ``/v1/privacy/requests``."""
SCOPES: tuple[str, ...] = (PROFILES_READ, SEGMENTS_READ, PRIVACY_WRITE)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Token:
    """One read token (never the token itself: only its hash)."""

    name: str
    token_hash: str
    scopes: tuple[str, ...]
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def as_dict(self) -> dict[str, Any]:
        """What is stored and listed (the hash is stored, never printed)."""
        return {
            "name": self.name,
            "token_hash": self.token_hash,
            "scopes": list(self.scopes),
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def token_hash(token: str) -> str:
    """SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def check_scopes(scopes: Sequence[str]) -> tuple[str, ...]:
    """Validated, de-duplicated scopes in canonical order; ``ConfigError`` names a bad one."""
    if not scopes:
        raise ConfigError(f"a read token needs at least one --scope ({', '.join(SCOPES)})")
    for scope in scopes:
        if scope not in SCOPES:
            raise ConfigError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
    return tuple(s for s in SCOPES if s in scopes)


@dataclass(slots=True)
class _Loaded:
    stamp: tuple[int, int] | None = None
    by_name: dict[str, Token] = field(default_factory=dict)
    by_hash: dict[str, Token] = field(default_factory=dict)


class TokenRegistry:
    """The read tokens of one data directory (safe to share between threads)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._loaded = _Loaded()
        self._lock = threading.Lock()

    def _current(self) -> _Loaded:
        """The tokens as the file holds them now (re-read only when it changed)."""
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return _Loaded()
        stamp = (stat.st_mtime_ns, stat.st_size)
        loaded = self._loaded
        if stamp == loaded.stamp:
            return loaded
        with self._lock:
            try:
                data = orjson.loads(self.path.read_bytes())
                tokens = [
                    Token(
                        name=item["name"],
                        token_hash=item["token_hash"],
                        scopes=tuple(item["scopes"]),
                        created_at=item["created_at"],
                        revoked_at=item.get("revoked_at"),
                    )
                    for item in data["tokens"]
                ]
            except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as error:
                raise ConfigError(f"{self.path} is unreadable: {error}") from None
            loaded = _Loaded(stamp, {t.name: t for t in tokens}, {t.token_hash: t for t in tokens})
            self._loaded = loaded
        return loaded

    def _save(self, tokens: dict[str, Token]) -> None:
        data = orjson.dumps(
            {"tokens": [t.as_dict() for t in tokens.values()]}, option=orjson.OPT_INDENT_2
        )
        write_atomically(self.path, data, 0o600)
        self._loaded = _Loaded()

    def list(self) -> list[Token]:
        """Every token, in the order they were added."""
        return list(self._current().by_name.values())

    def add(self, name: str, scopes: Sequence[str], now: datetime | None = None) -> str:
        """Create a token with ``scopes``; return it (shown once, stored only hashed)."""
        if not _NAME.match(name):
            raise ConfigError(
                f"token name {name!r} must be 1-63 lower-case letters, digits, '_', '.' or '-'"
            )
        checked = check_scopes(scopes)
        tokens = dict(self._current().by_name)
        if name in tokens:
            raise ConfigError(f"token {name!r} exists already (revoke it or pick another name)")
        token = TOKEN_PREFIX + secrets.token_urlsafe(24)
        created = (now or datetime.now(UTC)).isoformat()
        tokens[name] = Token(name, token_hash(token), checked, created)
        self._save(tokens)
        return token

    def revoke(self, name: str, now: datetime | None = None) -> Token:
        """Refuse the token from now on (a running server too, from its next request)."""
        tokens = dict(self._current().by_name)
        token = tokens.get(name)
        if token is None:
            raise ConfigError(f"no read token named {name!r}")
        if not token.active:
            return token
        revoked = Token(
            token.name,
            token.token_hash,
            token.scopes,
            token.created_at,
            (now or datetime.now(UTC)).isoformat(),
        )
        tokens[name] = revoked
        self._save(tokens)
        return revoked

    def identify(self, token: str | None) -> Token:
        """The active token ``token`` is; ``AuthError`` (401) if missing, unknown, revoked."""
        if not token:
            raise AuthError("missing read token: send `Authorization: Bearer <token>`")
        found = self._current().by_hash.get(token_hash(token))
        if found is None:
            if token.startswith(WRITE_KEY_PREFIX):
                raise AuthError(
                    "a write key cannot read: create a read token with `cdp tokens add`"
                )
            raise AuthError("unknown read token")
        if not found.active:
            raise AuthError(f"read token {found.name!r} was revoked")
        return found

    @staticmethod
    def require(token: Token, scope: str) -> None:
        """``ForbiddenError`` (403) unless ``token`` holds ``scope``."""
        if scope not in token.scopes:
            raise ForbiddenError(
                f"read token {token.name!r} lacks the {scope!r} scope "
                f"(it has: {', '.join(token.scopes)})"
            )

    def authenticate(self, token: str | None, scope: str) -> Token:
        """The active token ``token`` is, if it holds ``scope`` (``identify`` + ``require``)."""
        found = self.identify(token)
        self.require(found, scope)
        return found
