"""Filing a privacy request while a server runs: what ``POST /v1/privacy/requests``
and the console's admin screen both do.

``file_request`` records the request (``cdp.services.privacy.requests``) and
applies what needs no exclusive access at once: a suppression (or its
lifting) covers every identifier the person has, found through the profile
lookups, from the next request on. An erasure stays ``received``: in embedded
mode it needs the data directory to itself (``cdp privacy process`` with the
server stopped, or the server's next start runs it); in Kafka mode the server
passes ``on_filed``, which starts it at once (docs/privacy.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import orjson

from cdp.errors import ConfigError, NotFoundError
from cdp.ports.lookups import ProfileLookups
from cdp.read.keys import CUSTOMER_PREFIX, parse
from cdp.services.privacy import requests as privacy_requests
from cdp.services.privacy.requests import PrivacyRequest, Requests
from cdp.services.privacy.suppressions import SuppressionList


def identifiers_of(reader: ProfileLookups, key: str) -> list[str]:
    """Every identifier of the person ``key`` names, ``key`` itself included
    (a ``cus_`` id is not an identifier: only the profile's are given)."""
    try:
        body, _ = reader.profile(key, 0)
    except (NotFoundError, ValueError):
        return [] if key.startswith(CUSTOMER_PREFIX) else [key]
    found = orjson.loads(body).get("identifiers") or []
    keys = {str(k) for k in found if isinstance(k, str)}
    if not key.startswith(CUSTOMER_PREFIX):
        keys.add(key)
    return sorted(keys)


def file_request(
    data_dir: Path,
    reader: ProfileLookups,
    kind: str,
    identifier: str,
    actor: str,
    runtime: str = "embedded",
    on_filed: Callable[[PrivacyRequest], None] | None = None,
) -> PrivacyRequest:
    """File a ``kind`` request about whoever ``identifier`` (``email:a@b.jp``,
    ``cus_...``) names, on behalf of ``actor``; the saved request.

    ``ConfigError`` names a bad type or a malformed identifier. Suppression
    requests finish here; erasures stay ``received`` (``on_filed`` is given them)."""
    if kind not in privacy_requests.TYPES:
        raise ConfigError(f"`type` must be one of {', '.join(privacy_requests.TYPES)}")
    if not identifier:
        raise ConfigError("`identifier` must be an identifier key such as email:a@b.jp")
    try:
        key = parse(identifier)
    except ValueError as error:
        raise ConfigError(f"`identifier`: {error}") from None
    registry = Requests(data_dir)
    filed = registry.file(kind, key, actor, runtime)
    keys = identifiers_of(reader, key)
    steps = dict(filed.steps)
    if kind in (privacy_requests.SUPPRESS, privacy_requests.SUPPRESS_WITH_DELETE):
        SuppressionList.load(data_dir).add(keys, filed.id)
        steps["suppress"] = "done"
    elif kind == privacy_requests.UNSUPPRESS:
        SuppressionList.load(data_dir).remove(keys)
        steps["unsuppress"] = "done"
    status = privacy_requests.RECEIVED if filed.erases else privacy_requests.FINISHED
    saved = registry.update(filed, steps=steps, status=status)
    if filed.erases and on_filed is not None:
        on_filed(saved)
    return saved
