"""Push audiences to ad platform APIs and webhooks, incrementally and crash-safely.

- ``config``: destinations configured in ``<data dir>/destinations.toml``.
- ``http``: the HTTP transport with retries (backoff, jitter, Retry-After).
- ``journal``: the sync state files (synced set, pending plan, done marks).
- ``audience_sync``: diff, plan, execute, resume (``sync``, ``status``).
- ``google_ads``, ``meta``, ``line``, ``webhook``: each platform's protocol.

The payload formats (hashing, normalisation) come from the modules one level
up (``connectors.destinations.google_ads`` etc.); this package only moves them.
"""

from connectors.destinations.push.audience_sync import SyncReport, status, sync
from connectors.destinations.push.config import load, load_all

__all__ = ["SyncReport", "load", "load_all", "status", "sync"]
