"""The signed SNS webhooks that share one shape: verify a header, map a body.

LINE, Meta (Instagram) and X each sign the raw body with a shared secret
and send batches of events; the HTTP routes and the dead-letter retry look
them up here instead of repeating the same wiring per platform. (Shopify needs
its topic header and the generic order JSON a write key, so they stay apart.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.sources.webhooks import Mapped, line, meta, x


@dataclass(frozen=True, slots=True)
class SignedWebhook:
    """How one platform's webhook is checked and mapped."""

    platform: str
    signature_header: str
    default_source: str
    verify: Callable[[bytes, str | None, str], None]
    to_events: Callable[[dict[str, Any]], Mapped]


SIGNED: dict[str, SignedWebhook] = {
    hook.platform: hook
    for hook in (
        SignedWebhook("line", "x-line-signature", "line", line.verify, line.to_events),
        SignedWebhook("meta", "x-hub-signature-256", "instagram", meta.verify, meta.to_events),
        SignedWebhook("x", "x-twitter-webhooks-signature", "x", x.verify, x.to_events),
    )
}
