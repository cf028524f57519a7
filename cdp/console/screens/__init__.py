"""The console's screens, one module each, mounted in this order by
``cdp.console.install``. Each module exposes ``router(ctx) -> APIRouter`` and
registers its words with ``cdp.console.i18n.register`` at import."""

from __future__ import annotations

SCREENS: tuple[str, ...] = ("overview", "customers", "audiences", "admin", "analytics", "segments")
