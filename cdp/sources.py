"""Sources and their write keys.

A source is a named producer (a website's tracker, a Shopify store, a form):
``cdp sources add NAME`` prints its write key once; only the key's SHA-256 is
stored, in ``<data dir>/sources.json`` (written atomically). Events record the
name of the source that sent them. A revoked key is refused from then on.

The keys are 192-bit random tokens, so a plain SHA-256 is enough to make a
leaked file useless (no password-style key stretching is needed), and lookup
by hash keeps authentication O(1). The file is re-read when it changes, so
keys added or revoked while ``cdp serve`` runs take effect at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson

from cdp.atomic import write_atomically
from cdp.errors import AuthError, ConfigError

FILE_NAME = "sources.json"
KEY_PREFIX = "wk_"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Source:
    """One registered source (never its key)."""

    name: str
    key_hash: str
    created_at: str
    revoked_at: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class SourceRegistry:
    """The sources of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._stamp: tuple[int, int] | None = None
        self._sources: dict[str, Source] = {}
        self._by_hash: dict[str, Source] = {}

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._sources, self._by_hash = None, {}, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            data = orjson.loads(self.path.read_bytes())
            sources = [Source(**item) for item in data["sources"]]
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise ConfigError(f"{self.path} is unreadable: {error}") from None
        self._sources = {s.name: s for s in sources}
        self._by_hash = {s.key_hash: s for s in sources}
        self._stamp = stamp

    def _save(self) -> None:
        data = orjson.dumps(
            {"sources": [asdict(s) for s in self._sources.values()]}, option=orjson.OPT_INDENT_2
        )
        write_atomically(self.path, data, 0o600)
        self._stamp = None

    def list(self) -> list[Source]:
        """Every source, in the order they were added."""
        self._reload()
        return list(self._sources.values())

    def add(self, name: str, now: datetime | None = None) -> str:
        """Register a source; return its write key (shown once, never stored)."""
        if not _NAME.match(name):
            raise ConfigError(
                f"source name {name!r} must be 1-63 lower-case letters, digits, '_', '.' or '-'"
            )
        self._reload()
        if name in self._sources:
            raise ConfigError(f"source {name!r} exists already (revoke it or pick another name)")
        key = KEY_PREFIX + secrets.token_urlsafe(24)
        created = (now or datetime.now(UTC)).isoformat()
        self._sources[name] = Source(name, _hash(key), created)
        self._save()
        return key

    def revoke(self, name: str, now: datetime | None = None) -> Source:
        """Refuse the source's key from now on."""
        self._reload()
        source = self._sources.get(name)
        if source is None:
            raise ConfigError(f"no source named {name!r}")
        if not source.active:
            return source
        revoked = Source(
            source.name, source.key_hash, source.created_at, (now or datetime.now(UTC)).isoformat()
        )
        self._sources[name] = revoked
        self._save()
        return revoked

    def authenticate(self, key: str | None) -> str:
        """The name of the active source whose key this is; ``AuthError`` otherwise."""
        if not key:
            raise AuthError("missing write key: send it as the HTTP Basic username or `writeKey`")
        self._reload()
        source = self._by_hash.get(_hash(key))
        if source is None:
            raise AuthError("unknown write key")
        if not source.active:
            raise AuthError(f"the write key of source {source.name!r} was revoked")
        return source.name
