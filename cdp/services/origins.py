"""Web origins: the browser pages a source lets send events with its write key.

An origin is ``scheme://host[:port]`` exactly as a browser writes it in the
``Origin`` request header (RFC 6454): lower-case scheme and host, IDN hosts in
punycode, no path, and no port when it is the scheme's default. Entries given
by an operator are normalised to that form when they are saved, so matching a
request is a plain string comparison of the header against stored entries.

``*`` allows any origin. It is never implied: a source without origins accepts
no browser request that carries an ``Origin`` header.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from cdp.errors import ConfigError

WILDCARD = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$")


class Grant(enum.Enum):
    """How an origin is allowed: by name (echoed, credentials allowed) or by ``*``."""

    EXPLICIT = "explicit"
    WILDCARD = "wildcard"


def normalize(text: str) -> str:
    """The canonical form of an origin an operator typed; ``ConfigError`` says what is wrong.

    ``HTTPS://Shop.Example.jp:443/`` becomes ``https://shop.example.jp``; a
    path, query, fragment or user name is refused rather than dropped, because
    it suggests the operator meant something an origin cannot express.
    """
    value = text.strip()
    if value == WILDCARD:
        return WILDCARD
    problem = f"origin {text!r} must look like https://shop.example.jp (scheme://host[:port])"
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as error:  # a port that is not a number or out of range
        raise ConfigError(f"{problem}: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ConfigError(f"{problem}: the scheme must be http or https")
    if not parts.hostname:
        raise ConfigError(f"{problem}: the host is missing")
    if parts.username is not None or parts.password is not None:
        raise ConfigError(f"{problem}: it must not contain a user name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{problem}: it must not have a path, query or fragment")
    if "*" in parts.hostname:
        raise ConfigError(
            f"{problem}: wildcard host names are not supported; list each origin, or give '*'"
        )
    if ":" in parts.hostname:  # an IPv6 literal keeps its brackets in an origin
        host = f"[{parts.hostname}]"
    else:
        try:
            host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError as error:
            raise ConfigError(f"{problem}: the host is not a valid name ({error})") from None
        if not _HOST.match(host):
            raise ConfigError(f"{problem}: the host {host!r} is not a valid name")
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def grant(allowed: Iterable[str], origin: str) -> Grant | None:
    """Whether ``origin`` (the request's header, verbatim) is in ``allowed``, and how."""
    wildcard = False
    for entry in allowed:
        if entry == origin:
            return Grant.EXPLICIT
        wildcard = wildcard or entry == WILDCARD
    return Grant.WILDCARD if wildcard else None
