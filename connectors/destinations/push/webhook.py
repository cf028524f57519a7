"""A generic signed webhook: any system can receive audience changes.

Each chunk is one ``POST`` to the configured URL with the JSON body::

    {"segment": "lapsed_repeaters", "action": "add" | "remove",
     "plan_id": "…", "chunk": 3, "members": [{"customer_id": …, "email": …, …}]}

Headers:

- ``Idempotency-Key: <plan id>:<chunk index>``, the same on every resend of
  the chunk (a resumed plan included): the receiver applies a key once.
- ``X-CDP-Timestamp``: Unix seconds when the request was signed.
- ``X-CDP-Signature: sha256=<hex>``: HMAC-SHA256 with the shared secret over
  ``<timestamp>.<raw body>``, so the receiver can check origin and integrity
  and refuse stale replays (compare the timestamp with its clock).

Members carry the normalised identifiers of ``connectors.destinations.members``
in clear (e-mail, phone in E.164, names, LINE user id...): the receiver is the
shop's own system, reached over HTTPS. The body holds only consenting members.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import asdict
from datetime import date
from typing import Any

import orjson

from connectors.destinations.members import Member
from connectors.destinations.push.base import Platform, Run
from connectors.destinations.push.config import Webhook
from connectors.destinations.push.http import Transport

SIGNATURE_HEADER = "X-CDP-Signature"
TIMESTAMP_HEADER = "X-CDP-Timestamp"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + hex HMAC-SHA256 of ``<timestamp>.<body>``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


class WebhookPlatform(Platform):
    """Push protocol of a generic signed webhook."""

    name = "webhook"
    max_chunk = 1_000

    def __init__(self, destination: Webhook) -> None:
        self.destination = destination

    def row(self, member: Member) -> Any | None:
        return {
            key: value.isoformat() if isinstance(value, date) else value
            for key, value in asdict(member).items()
            if value is not None
        }

    def push(self, run: Run) -> None:
        secret = self.destination.secret("secret_value")
        total = len(run.plan.chunks)
        for chunk in run.plan.chunks:
            if chunk.done:
                continue
            body = orjson.dumps(
                {
                    "segment": run.segment,
                    "action": chunk.action,
                    "plan_id": run.plan.id,
                    "chunk": chunk.index,
                    "members": run.rows(chunk),
                },
                option=orjson.OPT_SORT_KEYS,
            )
            stamp = str(int(time.time()))
            run.transport.request(
                "POST",
                self.destination.url,
                what=f"{chunk.action} chunk {chunk.index + 1} of {total}",
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": f"{run.plan.id}:{chunk.index}",
                    TIMESTAMP_HEADER: stamp,
                    SIGNATURE_HEADER: signature(secret, stamp, body),
                },
            )
            run.done(chunk)

    def check(self, transport: Transport) -> str:
        self.destination.secret("secret_value")
        return f"secret set; posts to {self.destination.url} (not called by check)"
