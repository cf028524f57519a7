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
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from cdp.atomic import write_atomically
from cdp.errors import AuthError, ConfigError
from cdp.services import origins as web_origins

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
    # Browser origins allowed to send with this key (cdp/http/cors.py); "*" only if asked.
    origins: tuple[str, ...] = ()
    # Snowplow tracker app ids (``aid``) whose events belong to this source.
    snowplow_app_ids: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _from_json(item: dict[str, Any]) -> Source:
    # JSON has no tuples: list fields (origins, ...) come back as tuples so a
    # Source stays immutable; fields missing from older files take defaults.
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}
    return Source(**fields)


class SourceRegistry:
    """The sources of one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._stamp: tuple[int, int] | None = None
        self._sources: dict[str, Source] = {}
        self._by_hash: dict[str, Source] = {}
        self._by_app_id: dict[str, Source] = {}

    def _reload(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._sources, self._by_hash, self._by_app_id = None, {}, {}, {}
            return
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        try:
            data = orjson.loads(self.path.read_bytes())
            sources = [_from_json(item) for item in data["sources"]]
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError) as error:
            raise ConfigError(f"{self.path} is unreadable: {error}") from None
        self._sources = {s.name: s for s in sources}
        self._by_hash = {s.key_hash: s for s in sources}
        self._by_app_id = _app_id_index(sources)
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

    def add(
        self,
        name: str,
        now: datetime | None = None,
        origins: Iterable[str] = (),
        snowplow_app_ids: Iterable[str] = (),
    ) -> str:
        """Register a source; return its write key (shown once, never stored).

        ``origins`` are the browser origins allowed to send with the key
        (``cdp.services.origins.normalize`` checks and canonicalises each).
        ``snowplow_app_ids`` are the Snowplow tracker app ids (``aid``) whose
        events belong to this source; each may belong to one active source."""
        allowed = _origin_list((), origins, ())
        app_ids = _app_id_list(snowplow_app_ids)
        if not _NAME.match(name):
            raise ConfigError(
                f"source name {name!r} must be 1-63 lower-case letters, digits, '_', '.' or '-'"
            )
        self._reload()
        if name in self._sources:
            raise ConfigError(f"source {name!r} exists already (revoke it or pick another name)")
        for app_id in app_ids:
            owner = self._by_app_id.get(app_id)
            if owner is not None and owner.active:
                raise ConfigError(
                    f"Snowplow app id {app_id!r} belongs to source {owner.name!r} already"
                )
        key = KEY_PREFIX + secrets.token_urlsafe(24)
        created = (now or datetime.now(UTC)).isoformat()
        self._sources[name] = Source(
            name, _hash(key), created, origins=allowed, snowplow_app_ids=app_ids
        )
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
        revoked = replace(source, revoked_at=(now or datetime.now(UTC)).isoformat())
        self._sources[name] = revoked
        self._save()
        return revoked

    def rotate(self, name: str) -> str:
        """Give an active source a new write key (returned, shown once); the old key
        is refused from now on. Events keep the source's name."""
        self._reload()
        source = self._sources.get(name)
        if source is None:
            raise ConfigError(f"no source named {name!r}")
        if not source.active:
            raise ConfigError(f"source {name!r} was revoked; add a new source instead")
        key = KEY_PREFIX + secrets.token_urlsafe(24)
        self._sources[name] = replace(source, key_hash=_hash(key))
        self._save()
        return key

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

    def source_for_app_id(self, app_id: str | None) -> str:
        """The active source a Snowplow app id (``aid``) belongs to; ``AuthError`` otherwise.

        App ids are public (they are in every page), so they only route events
        and keep strangers' traffic out; they are not secrets like write keys.
        """
        if not app_id:
            raise AuthError("missing Snowplow app id (aid)")
        self._reload()
        source = self._by_app_id.get(app_id)
        if source is None:
            raise AuthError(
                f"unknown Snowplow app id {app_id[:100]!r} "
                "(register it with `cdp sources add NAME --snowplow-app-id AID`)"
            )
        if not source.active:
            raise AuthError(f"source {source.name!r} of Snowplow app id {app_id!r} was revoked")
        return source.name

    def set_origins(self, name: str, add: Iterable[str] = (), remove: Iterable[str] = ()) -> Source:
        """Allow ``add`` and stop allowing ``remove`` for a source's key; the new source.

        Removing an origin the source does not have is an error naming it (a
        typo must not look like a successful removal). Takes effect at once in
        a running ``cdp serve``, like every change to this file.
        """
        self._reload()
        source = self._sources.get(name)
        if source is None:
            raise ConfigError(f"no source named {name!r}")
        updated = replace(source, origins=_origin_list(source.origins, add, remove, name))
        if updated != source:
            self._sources[name] = updated
            self._save()
        return updated


def _origin_list(
    current: tuple[str, ...], add: Iterable[str], remove: Iterable[str], name: str = ""
) -> tuple[str, ...]:
    """``current`` plus ``add`` minus ``remove``, each normalised, in the order given."""
    result = list(current)
    for origin in map(web_origins.normalize, add):
        if origin not in result:
            result.append(origin)
    for text in remove:
        origin = web_origins.normalize(text)
        if origin not in result:
            raise ConfigError(f"source {name!r} does not allow origin {origin!r}")
        result.remove(origin)
    return tuple(result)


MAX_APP_ID_LENGTH = 200


def _app_id_list(app_ids: Iterable[str]) -> tuple[str, ...]:
    """Checked Snowplow app ids, duplicates dropped, in the order given."""
    result: list[str] = []
    for app_id in app_ids:
        if not app_id or len(app_id) > MAX_APP_ID_LENGTH or not app_id.isprintable():
            raise ConfigError(
                f"Snowplow app id {app_id!r} must be 1-{MAX_APP_ID_LENGTH} printable characters"
            )
        if app_id not in result:
            result.append(app_id)
    return tuple(result)


def _app_id_index(sources: Iterable[Source]) -> dict[str, Source]:
    """App id → source; an active source wins over a revoked one that had the id."""
    index: dict[str, Source] = {}
    for source in sources:
        for app_id in source.snowplow_app_ids:
            if app_id not in index or source.active:
                index[app_id] = source
    return index
