"""The demo shop's small B2B side: wholesale buyers and the sales team's SFA records.

A quarter of the leads (``WHOLESALE_SHARE``, about 4.5% of everyone) are
cafés, restaurants and tea rooms asking about wholesale. Some days after their
form, the sales team opens a deal in the SFA, visits and calls them, moves the
deal through its stages and wins (``WON_SHARE``) or loses (``LOST_SHARE``) it;
the rest are still open at the end. A third of the winners order again through
a second deal. The events follow the sales contract (``schemas.sales``) as the
inbound SFA connectors write it: named by the email the lead gave (in
``context.traits``; leads have no ``userId``), timed when the SFA changed, with
``messageId`` derived from the SFA's own ids (``hubspot:...``,
``salesforce:...``, ``kintone:...``).

It draws from its own ``random.Random`` and runs after everything else of a
customer, so the rest of the demo is byte for byte what it was without it.
"""

from __future__ import annotations

import random
from typing import Final

from cdp.demo.generate.clock import DAY, HOUR, MINUTE
from cdp.demo.generate.journey import Journey, Raw

WHOLESALE_SHARE: Final = 0.25
"""Share of leads (people who gave an email but never registered) who are wholesale buyers."""
WON_SHARE: Final = 0.55
LOST_SHARE: Final = 0.25
REORDER_SHARE: Final = 0.35
#: (owner, the SFA their team uses): each salesperson works in one system.
OWNERS: Final = (("佐藤 健", "hubspot"), ("鈴木 美咲", "salesforce"), ("高橋 誠", "kintone"))
AMOUNTS: Final = (120_000, 180_000, 240_000, 360_000, 600_000, 960_000)
STAGES: Final = ("qualified", "proposal", "negotiation")
LOST_REASONS: Final = ("価格", "競合に決定", "時期尚早", "連絡途絶")
OUTCOMES: Final = {
    "visit": ("試飲サンプル提供", "店舗訪問・メニュー確認", "見積書持参"),
    "call": ("初回ヒアリング", "見積の説明", "納期の確認"),
    "meeting": ("オンライン商談", "価格交渉"),
}


def _form_email(j: Journey) -> tuple[float, str] | None:
    """When and with what email the lead filled in a form, if they did."""
    for t, raw in sorted(j.events, key=lambda pair: pair[0]):
        if raw.get("event") == "Form Submitted":
            email = raw["properties"]["fields"].get("email")
            return (t, email) if isinstance(email, str) else None
    return None


class _Sfa:
    """Emits one wholesale buyer's SFA records into the journey."""

    def __init__(self, j: Journey, rng: random.Random, email: str) -> None:
        self.j, self.rng = j, rng
        self.email = email
        self.owner, self.crm = OWNERS[rng.randrange(len(OWNERS))]
        self.serial = 0

    def emit(self, t: float, event: str, props: Raw) -> None:
        if t > self.j.end:
            return
        self.serial += 1
        millis = int(t * 1000)
        # Webhooks arrive seconds to a minute after the SFA's change.
        timestamp, received_at = self.j.world.iso.pair(
            millis, millis + self.rng.randint(1_000, 60_000)
        )
        raw: Raw = {
            "type": "track",
            "event": event,
            "messageId": f"{self.crm}:{self.j.index + 1:07d}-{self.serial:03d}",
            "timestamp": timestamp,
            "receivedAt": received_at,
            "context": {"traits": {"email": self.email}},  # no object shared between events
            "properties": {**props, "owner": self.owner, "crm": self.crm},
        }
        self.j.events.append((t, raw))

    def activity(self, t: float, deal_id: str) -> None:
        kind = ("visit", "call", "call", "meeting")[self.rng.randrange(4)]
        outcome = OUTCOMES[kind][self.rng.randrange(len(OUTCOMES[kind]))]
        props = {
            "activity_id": f"ACT-{self.j.index + 1:07d}-{self.serial + 1:03d}",
            "activity_type": kind,
            "outcome": outcome,
            "deal_id": deal_id,
        }
        self.emit(t, "Sales Activity Logged", props)

    def deal(self, t: float, number: int) -> tuple[float, bool]:
        """One deal from creation to its outcome; returns its last time and whether won."""
        rng = self.rng
        deal_id = f"DEAL-{self.j.index + 1:07d}-{number}"
        amount = AMOUNTS[rng.randrange(len(AMOUNTS))]
        base: Raw = {"deal_id": deal_id, "pipeline": "wholesale", "currency": "JPY"}
        expected = int((t + 30 * DAY) * 1000)
        close_date = self.j.world.iso.pair(expected, expected)[0][:10]  # a month out
        props = {**base, "stage": STAGES[0], "amount": amount, "close_date": close_date}
        self.emit(t, "Deal Created", props)
        previous = STAGES[0]
        for stage in STAGES[1 : 2 + rng.randrange(2)]:
            t += HOUR + rng.expovariate(1 / (4 * DAY))
            self.activity(t, deal_id)
            t += HOUR + rng.expovariate(1 / (5 * DAY))
            props = {**base, "stage": stage, "previous_stage": previous}
            self.emit(t, "Deal Stage Changed", props)
            previous = stage
        t += 2 * HOUR + rng.expovariate(1 / (7 * DAY))
        roll = rng.random()
        if roll < WON_SHARE:
            won = int(amount * (0.85 + 0.15 * rng.random()) / 1000) * 1000  # a negotiated price
            self.emit(t, "Deal Won", {**base, "stage": "closed_won", "amount": won})
            return t, True
        if roll < WON_SHARE + LOST_SHARE:
            reason = LOST_REASONS[rng.randrange(len(LOST_REASONS))]
            self.emit(t, "Deal Lost", {**base, "stage": "closed_lost", "lost_reason": reason})
        return t, False


def wholesale(j: Journey, seed: int) -> None:
    """Maybe make lead ``j`` a wholesale buyer and add the sales team's records."""
    rng = random.Random(f"wholesale:{seed}")
    if rng.random() >= WHOLESALE_SHARE:
        return
    found = _form_email(j)
    if found is None:
        return
    form_at, email = found
    sfa = _Sfa(j, rng, email)
    t = form_at + 4 * HOUR + rng.expovariate(1 / (3 * DAY))
    sfa.activity(t, f"DEAL-{j.index + 1:07d}-1")  # the first call, right before the deal
    t, won = sfa.deal(t + 10 * MINUTE, 1)
    if won and rng.random() < REORDER_SHARE:
        sfa.deal(t + 30 * DAY + rng.expovariate(1 / (30 * DAY)), 2)
