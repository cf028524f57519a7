"""Customer journeys of the demo shop: who each simulated person is and what they do.

Every customer is one of three kinds:

- **browser** (50%): a few anonymous visits, never identified; a few follow the
  shop on LINE or send an X/Instagram DM without linking anything;
- **lead** (18%): browses, then leaves an email through the newsletter or
  contact form (Form Submitted + an identify on the same ``anonymousId`` +
  Consent Updated), gets newsletters, loses interest after a few months;
- **buyer** (32%): browses, maybe signs up for the newsletter first, registers
  at the first checkout (identify with ``userId`` and ``anonymousId``) and
  orders: once (40% of buyers), every ~2 months (45%) or every ~3 weeks
  (15%). Some use a second browser and log in there. Orders bring support
  tickets, refunds and surveys; buyers follow on LINE more often and link
  their account.

Wholesale buyers: a quarter of the leads are cafés and restaurants the sales
team works in its SFA (deals, visits, calls; ``cdp.demo.generate.wholesale``).

Lapsed buyers: 30% of repeat buyers stop at a random time 122-280 days before
the end (after at least two orders); afterwards they do nothing themselves
(no visits, orders, opens, messages), though newsletters are still delivered.

The planted sequence pattern (A → bulk B) is described in ``cdp.demo.generate``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cdp.demo.generate.catalog import (
    BULK_MATCHA,
    BUYABLE,
    HOUR_WEIGHTS,
    LINE_PREFERRED_CHANNELS,
    PREFERRED_CHANNELS,
    REFUND_SUBJECTS,
    STARTER_KIT,
    Product,
    Weighted,
)
from cdp.demo.generate.channels import (
    consent,
    direct_messages,
    line_friend,
    newsletters,
    refund,
    support_question,
    survey,
)
from cdp.demo.generate.clock import DAY, HOUR, MINUTE, jst_midnight
from cdp.demo.generate.journey import INF, Browser, Item, Journey, Raw, Who, World
from cdp.demo.generate.people import make_person
from cdp.demo.generate.wholesale import wholesale

BROWSER_SHARE: Final = 0.50
LEAD_SHARE: Final = 0.18
A_SHARE_OF_ELIGIBLE: Final = 0.10
"""Chance that a buyer whose first order is 76+ days before the end (and before
any lapse) starts with the starter kit; about 8% of all buyers end up A-buyers."""
B_FOLLOW_SHARE: Final = 0.60
B_GAP_DAYS: Final = (60.0, 6.0)
B_GAP_CLIP: Final = (45.0 + 1 / 24, 75.0 - 1 / 24)
"""One hour inside 45-75 days, so that the gap between the two *orders* (which
complete a few minutes into their visits) stays inside 45-75 days."""
B_BULK_QUANTITY: Final = (5, 10)
B_STRAY_SHARE: Final = 0.015
"""Share of other buyers who put one or two bags of B in some order."""
LAPSED_SHARE: Final = 0.30
LAPSE_MIN_DAYS: Final = 122.0

#: (mean days between orders, or None for a single order; visits per month), by share.
_TIERS: Final[Weighted[tuple[float | None, float]]] = Weighted(
    [((None, 0.8), 0.40), ((55.0, 1.6), 0.45), ((18.0, 3.5), 0.15)]
)


@dataclass(frozen=True, slots=True)
class _Grant:
    """Consent given when the email became known; acted on once the journey is planned."""

    at: float
    who: Who
    email: bool
    ads: bool


def simulate(world: World, index: int, seed: int) -> list[tuple[float, Raw]]:
    """All events of customer ``index`` as ``(epoch seconds, raw event)``, unsorted."""
    rng = random.Random(seed)
    roll = rng.random()
    kind = (
        "browser"
        if roll < BROWSER_SHARE
        else "lead"
        if roll < BROWSER_SHARE + LEAD_SHARE
        else "buyer"
    )
    line_friend_ = rng.random() < {"browser": 0.05, "lead": 0.2, "buyer": 0.35}[kind]
    preferred = (LINE_PREFERRED_CHANNELS if line_friend_ else PREFERRED_CHANNELS).pick(rng)
    with_phone = rng.random() < (0.85 if kind == "buyer" else 0.3)
    person = make_person(rng, index, world.digits, world.today, preferred, with_phone)
    j = Journey(world, index, rng, person)
    window = world.window
    first_seen = _daytime(rng, window.start + (window.end - window.start) * rng.random() ** 1.15)
    first_seen = max(first_seen, window.start + MINUTE)
    if kind == "browser":
        _browser(j, first_seen)
    elif kind == "lead":
        _lead(j, first_seen)
    else:
        _buyer(j, first_seen)
    _social(j, first_seen, line_friend_)
    if kind == "lead":
        wholesale(j, seed)  # last: its own rng, the rest of the journey is unchanged
    return j.events


def _daytime(rng: random.Random, t: float) -> float:
    """A time on the same JST day as ``t``, at an hour people shop at."""
    return jst_midnight(t) + HOUR_WEIGHTS.pick(rng) * HOUR + rng.random() * HOUR


def _visits(
    j: Journey, start: float, stop: float, per_month: float, browser: Callable[[float], Browser]
) -> None:
    """Browsing visits as a Poisson process over ``[start, stop]``."""
    rng = j.rng
    rate = per_month / (30 * DAY)
    t = start
    while True:
        t += rng.expovariate(rate)
        if t > stop:
            return
        when = _daytime(rng, t)
        j.visit(when if start <= when <= stop else t, browser(t))


def _anonymous_visits(j: Journey, t: float, browser: Browser, mean_extra: float) -> float:
    """A first visit at ``t`` and a few more days apart; returns when the last began."""
    rng = j.rng
    j.visit(t, browser)
    for _ in range(int(rng.expovariate(1 / mean_extra))):
        t = max(t + HOUR, _daytime(rng, t + rng.expovariate(1 / (6 * DAY))))
        j.visit(t, browser)
    return t


def _browser(j: Journey, t: float) -> None:
    _anonymous_visits(j, t, j.new_browser(), 1.4)


def _identify_by_form(
    j: Journey, t: float, browser: Browser, contact: bool
) -> tuple[float, _Grant]:
    """Visit, fill in the newsletter or contact form, get identified by email."""
    rng = j.rng
    who = j.web_who(browser, t)
    j.land(t, browser, who)
    t = j.browse(t, browser, who, int(rng.expovariate(1 / 1.5)))
    path, form_id, title = (
        ("/contact", "contact", "お問い合わせ")
        if contact
        else ("/newsletter", "newsletter", "メルマガ登録")
    )
    t += 10 + rng.expovariate(1 / 30)
    j.page(t, browser, who, path, title)
    t += 30 + rng.expovariate(1 / 60)
    person = j.person
    email = person.typed_email(rng)
    fields: Raw = {"email": email}
    traits: Raw = {"email": email}
    if contact:
        fields["name"] = f"{person.family.kanji} {person.given.kanji}"
        fields["inquiry"] = "商品について質問があります"
        traits["last_name"] = person.family.kanji
        traits["first_name"] = person.given.kanji
    else:
        fields["newsletter"] = True
    props = {"form_id": form_id, "form_name": title, "fields": fields}
    j.web_track(t, browser, who, "Form Submitted", props, path)
    j.identify(t + 0.3, who, traits)
    grant = _grant(j, t + 0.6, who, 0.55 if contact else 0.96)
    if contact:
        support_question(j, t + 1, who)
    return t, grant


def _grant(j: Journey, t: float, who: Who, email_p: float) -> _Grant:
    """Purposes granted when the email is first given (most grant email, ~70% ads)."""
    rng = j.rng
    consents = {"email": rng.random() < email_p, "ads": rng.random() < 0.7, "analytics": True}
    if j.person.preferred_channel == "sms" and j.person.phone is not None:
        consents["sms"] = True
    consent(j, t, who, consents)
    return _Grant(t, who, consents["email"], consents["ads"])


def _honour(j: Journey, grant: _Grant | None) -> None:
    """Newsletters while email is granted; 4% withdraw email and 3% ads later.

    Runs after the orders so that ``signed_up_at`` is known and email events
    carry the ``userId`` from registration on.
    """
    if grant is None:
        return
    rng = j.rng
    t = grant.at
    email_until = j.end if grant.email else t
    if grant.email and rng.random() < 0.04:
        email_until = t + (j.active_until - t) * rng.random()
        consent(j, email_until, j.account_who(email_until) or grant.who, {"email": False})
    if grant.ads and rng.random() < 0.03:
        when = t + (j.active_until - t) * rng.random()
        consent(j, when, j.account_who(when) or grant.who, {"ads": False})
    newsletters(j, t, email_until, 0.6 + 0.8 * rng.random())


def _lead(j: Journey, first_seen: float) -> None:
    rng = j.rng
    browser = j.new_browser()
    t = _anonymous_visits(j, first_seen, browser, 1.0)
    t = max(t + HOUR, _daytime(rng, t + rng.expovariate(1 / (6 * DAY))))
    j.active_until = min(j.end, t + rng.expovariate(1 / (120 * DAY)))
    t, grant = _identify_by_form(j, t, browser, contact=rng.random() < 0.2)
    _visits(j, t + HOUR, j.active_until, 1.0, lambda _: browser)
    _honour(j, grant)


def _order_plan(j: Journey, first: float, mean_gap: float | None) -> list[tuple[float, list[Item]]]:
    """Order times and baskets, planted pattern included."""
    rng = j.rng
    times = [first]
    if mean_gap is not None:
        t = first
        while True:
            t = _daytime(rng, t + 3 * DAY + rng.expovariate(1 / (mean_gap * DAY)))
            if t > j.active_until:
                break
            times.append(t)
        if j.active_until < j.end and len(times) < 2:  # a lapsed customer bought twice
            times.append(first + 7 * DAY + (j.active_until - first - 8 * DAY) * rng.random())
    plan = [(t, j.basket()) for t in times]
    if first + 76 * DAY <= j.active_until and rng.random() < A_SHARE_OF_ELIGIBLE:
        starter: list[Item] = [(STARTER_KIT, 1)]
        if rng.random() < 0.3:
            starter.append((BUYABLE.pick(rng), 1))
        plan[0] = (first, starter)
        if rng.random() < B_FOLLOW_SHARE:
            gap = min(max(rng.normalvariate(*B_GAP_DAYS), B_GAP_CLIP[0]), B_GAP_CLIP[1])
            bulk: list[Item] = [(BULK_MATCHA, rng.randint(*B_BULK_QUANTITY))]
            if rng.random() < 0.25:
                bulk.append((BUYABLE.pick(rng), 1))
            plan.append((first + gap * DAY, bulk))
            plan.sort(key=lambda entry: entry[0])
    elif rng.random() < B_STRAY_SHARE:
        _, items = plan[int(rng.random() * len(plan))]
        items.append((BULK_MATCHA, 1 if rng.random() < 0.7 else 2))
    return plan


def _buyer(j: Journey, first_seen: float) -> None:
    rng = j.rng
    mean_gap, per_month = _TIERS.pick(rng)
    primary = j.new_browser()
    t = _anonymous_visits(j, first_seen, primary, 1.2)
    via_form = rng.random() < 0.55
    grant: _Grant | None = None
    if via_form:
        t = max(t + HOUR, _daytime(rng, t + rng.expovariate(1 / (5 * DAY))))
        t, grant = _identify_by_form(j, t, primary, contact=rng.random() < 0.1)
    first = max(t + HOUR, _daytime(rng, t + rng.expovariate(1 / (10 * DAY))))
    if mean_gap is not None and rng.random() < LAPSED_SHARE:
        lapse_at = j.end - (LAPSE_MIN_DAYS + min(rng.expovariate(1 / 40), 158.0)) * DAY
        if lapse_at - first >= 20 * DAY:
            j.active_until = lapse_at
    plan = _order_plan(j, first, mean_gap)
    second: Browser | None = None
    if rng.random() < 0.3:
        second = j.new_browser()
        second_at = first + DAY + rng.expovariate(1 / (30 * DAY))
        if second_at < j.active_until:
            j.login(_daytime(rng, second_at), second)

    def pick(t: float) -> Browser:
        if second is not None and t > second.logged_in_at + HOUR and rng.random() < 0.5:
            return second
        return primary

    for k, (when, items) in enumerate(plan):
        signup_grant = _order_visit(j, when, pick(when), items, k, via_form)
        grant = grant or signup_grant
    _honour(j, grant)
    _visits(j, first_seen + HOUR, j.active_until, per_month, pick)
    if rng.random() < 0.05 and j.signed_up_at < j.active_until:
        when = j.signed_up_at + (j.active_until - j.signed_up_at) * rng.random()
        channel = PREFERRED_CHANNELS.pick(rng)
        j.identify(when, {"userId": j.user_id}, {"preferred_channel": channel})


def _order_visit(
    j: Journey, t: float, browser: Browser, items: list[Item], k: int, via_form: bool
) -> _Grant | None:
    """The visit an order is placed in; the first one registers the account.

    Returns the consent given at registration by customers not identified before.
    """
    rng = j.rng
    grant = None
    if t > j.end:
        return grant
    who = j.web_who(browser, t)
    j.land(t, browser, who)
    t = j.browse(t, browser, who, int(rng.expovariate(1 / 1.2)))
    if k == 0:
        t += 20 + rng.expovariate(1 / 30)
        j.page(t, browser, who, "/account/register", "会員登録")
        t += 60 + rng.expovariate(1 / 90)
        browser.logged_in_at = j.signed_up_at = t
        who = j.web_who(browser, t)
        j.identify(t, who, j.person.traits(rng, created_at=j.world.iso(t)))
        if not via_form:
            grant = _grant(j, t + 0.5, {"userId": j.user_id}, 0.85)
    coupon = None
    if k == 0 and via_form and rng.random() < 0.4:
        coupon = "WELCOME10"
    elif k > 0 and rng.random() < 0.06:
        coupon = "LINE500"
    t, order_id = j.checkout(t, browser, items, coupon)
    if t <= j.end:
        _after_order(j, t, order_id, items)
    return grant


def _after_order(j: Journey, t: float, order_id: str, items: list[Item]) -> None:
    """Refund (3%), support question (4%) and survey (12%) following an order."""
    rng = j.rng
    who = {"userId": j.user_id}
    roll = rng.random()
    if roll < 0.03:
        when = t + DAY + rng.random() * 4 * DAY
        if when <= j.active_until:
            subject, priority = REFUND_SUBJECTS.pick(rng)
            refund(j, when, who, order_id, items, subject, priority)
    elif roll < 0.07:
        when = t + HOUR + rng.random() * 4 * DAY
        if when <= j.active_until:
            support_question(j, when, who)
    if rng.random() < 0.12:
        when = t + 3 * DAY + rng.random() * 7 * DAY
        if when <= j.active_until:
            product: Product = items[0][0]
            survey(j, when, who, product.category)


def _social(j: Journey, first_seen: float, line_friend_: bool) -> None:
    """LINE friendship and X/Instagram DMs, anywhere in the customer's active time."""
    rng = j.rng
    until = j.active_until
    if until <= first_seen:
        return
    if line_friend_:
        followed = first_seen + (until - first_seen) * rng.random()
        linked = INF
        if j.signed_up_at < INF and rng.random() < 0.65:
            linked = max(followed, j.signed_up_at) + rng.expovariate(1 / (10 * DAY))
        line_friend(j, followed, linked, until)
    for channel, share in (("x", 0.03), ("instagram", 0.05)):
        if rng.random() < share:
            direct_messages(j, channel, first_seen + (until - first_seen) * rng.random(), until)
