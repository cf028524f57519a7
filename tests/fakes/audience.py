"""A small shop for push tests: customers in the ``new_customers`` segment, with consent.

``Shop`` appends events to a real data directory and computes, independently
of the platform code, who should be in an audience (consenting members of
``new_customers``) and their identifiers as each platform must receive them
(SHA-256 of the lower-cased e-mail, computed here with hashlib).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from tests.factories import at_days, raw_identify, raw_order, raw_page, raw_track

SEGMENT = "new_customers"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def line_id(n: int) -> str:
    return "U" + hashlib.md5(f"line-{n}".encode()).hexdigest()


@dataclass
class Shop:
    """Customers known to the test, by user id: email, LINE id, consents."""

    settings: Settings
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    day: float = 100.0
    _n: int = 0

    def _feed(self, raws: list[dict[str, Any]]) -> None:
        with Engine.open(self.settings) as engine:
            report = ingest(
                [(f"item:{i}", r) for i, r in enumerate(raws)],
                engine,
                received_at=datetime(2027, 6, 1, tzinfo=UTC),  # after every event time
            )
            assert report.rejected == 0, report.errors

    def add(self, count: int, ads: bool = True, line: bool = True) -> list[str]:
        """``count`` new customers who ordered today (so in ``new_customers``)."""
        raws: list[dict[str, Any]] = []
        users = []
        for _ in range(count):
            self._n += 1
            n = self._n
            user = f"user-{n:05d}"
            users.append(user)
            email = f"Customer.{n}@Example.JP"
            self.customers[user] = {
                "email": email.lower(),
                "line": line_id(n),
                "ads": ads,
                "line_ok": line,
            }
            at = at_days(self.day)
            raws += [
                raw_identify(
                    user_id=user,
                    at=at,
                    traits={
                        "email": f" {email} ",
                        "phone": f"090-{n // 10000:04d}-{n % 10000:04d}",
                        "first_name": "花子",
                        "last_name": "山田",
                    },
                ),
                raw_track(
                    "Consent Updated", {"consents": {"ads": ads, "line": line}}, user_id=user, at=at
                ),
                raw_track(
                    "Message Received",
                    {"channel": "line", "channel_user_id": line_id(n), "text": "こんにちは"},
                    user_id=user,
                    at=at,
                ),
                raw_order(f"order-{n}", 1200, user_id=user, at=at),
            ]
        self._feed(raws)
        return users

    def withdraw(self, users: list[str], purpose: str = "ads") -> None:
        """These customers withdraw a consent (they must leave consent-filtered audiences)."""
        at = at_days(self.day)
        self._feed(
            [
                raw_track("Consent Updated", {"consents": {purpose: False}}, user_id=u, at=at)
                for u in users
            ]
        )
        for user in users:
            self.customers[user]["ads" if purpose == "ads" else "line_ok"] = False

    def tick(self) -> None:
        """Move the log clock (no membership change)."""
        self._feed([raw_page("/", anonymous_id=f"clock-{self.day}", at=at_days(self.day))])

    def expected(self, purpose: str = "ads") -> set[str]:
        """Users who must be in the audience: ordered (all did) and consented."""
        key = "ads" if purpose == "ads" else "line_ok"
        return {u for u, c in self.customers.items() if c[key]}

    def hashed_emails(self, purpose: str = "ads") -> set[str]:
        return {sha(self.customers[u]["email"]) for u in self.expected(purpose)}

    def line_ids(self) -> set[str]:
        return {self.customers[u]["line"] for u in self.expected("line")}

    def customer_ids(self) -> dict[str, str]:
        """user id → customer id, from the profiles table."""
        con = Engine.open_read_only(self.settings)
        try:
            rows = con.execute(
                "SELECT value, customer_id FROM identities WHERE kind = 'user_id'"
            ).fetchall()
        finally:
            con.close()
        return {str(r[0]): str(r[1]) for r in rows}
