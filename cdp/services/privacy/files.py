"""Where the privacy records live, and the installation's secret pepper.

``<data dir>/privacy/`` holds:

- ``pepper``: 32 random bytes, created once (mode 0600). Identifiers that must
  be remembered without being kept (a suppressed person's email, phone, ids)
  are stored as ``token(pepper, key)``, an HMAC-SHA256: unlike a plain SHA-256
  of an email, which anyone can compute from a guess, it cannot be matched
  without the pepper;
- the suppression list, the privacy requests and their status, the APPI
  provision records (``provisions/``) and the audit log (``audit/``): small
  append-mostly files, never inside ``cdp.duckdb`` (whose freed pages keep old
  bytes: a record there could not be erased for real).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Final

from cdp.atomic import write_atomically

DIRECTORY: Final = "privacy"
PEPPER_FILE: Final = "pepper"
PEPPER_BYTES: Final = 32


def directory(data_dir: Path) -> Path:
    """``<data dir>/privacy``, created (mode 0700) when missing."""
    path = data_dir / DIRECTORY
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def pepper(data_dir: Path) -> bytes:
    """The installation's pepper, created on first use (atomically, mode 0600)."""
    path = directory(data_dir) / PEPPER_FILE
    if not path.exists():
        # Written aside, then linked into place: link fails if another process won
        # the race, and both then read the one pepper that is there.
        aside = path.with_name(f".{PEPPER_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        write_atomically(aside, secrets.token_bytes(PEPPER_BYTES), mode=0o600)
        try:
            os.link(aside, path)
        except FileExistsError:
            pass
        finally:
            aside.unlink()
    value = path.read_bytes()
    if len(value) != PEPPER_BYTES:
        raise ValueError(f"{path} is not a {PEPPER_BYTES}-byte pepper; restore it from backup")
    return value


def token(secret: bytes, identifier_key: str) -> str:
    """The pseudonymous token of an identifier key (``email:a@b.jp``, ``user_id:u1``),
    its value normalised as ``projections.identity`` does."""
    return hmac.new(secret, identifier_key.encode(), hashlib.sha256).hexdigest()


def mode_of(path: Path) -> int:
    """Permission bits of ``path`` (tests check the pepper is private)."""
    return os.stat(path).st_mode & 0o777
