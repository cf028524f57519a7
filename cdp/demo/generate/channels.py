"""Off-site touchpoints of a journey: email, LINE/X/Instagram, support, surveys, consent.

Email newsletters go out monthly (``YYYY-MM-newsletter``) in two variants,
assigned at random per recipient and campaign: variant A opens at
``OPEN_RATE["A"]`` (20%), variant B at ``OPEN_RATE["B"]`` (32%), both times the
customer's engagement (0.6-1.4, mean 1); an open leads to a click with
``CLICK_RATE`` (28%). Account holders' email events carry their ``userId``;
newsletter-only leads' carry the browser's ``anonymousId`` and
``context.traits.email``, as the platform's own sender knows them.

SNS identities are anonymous ids ``line-<LINE user id>``, ``x-<id>`` and
``instagram-<id>`` plus the channel user id in the message properties. A LINE
friend who links their account (ID連携) sends an identify with the ``userId``
and ``line_user_id`` trait, and messages with the ``userId`` from then on.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from cdp.demo.generate.catalog import (
    INSTAGRAM_TEXTS,
    LINE_TEXTS,
    NPS,
    RESOLUTIONS,
    SATISFACTION,
    SHOP_REPLIES,
    SHOP_URL,
    SURVEY_COMMENTS,
    TICKET_CHANNELS,
    TICKET_SUBJECTS,
    VIEWABLE,
    X_TEXTS,
)
from cdp.demo.generate.clock import DAY, HOUR, JST, MINUTE
from cdp.demo.generate.journey import Item, Journey, Raw, Who

OPEN_RATE: Final = {"A": 0.20, "B": 0.32}
CLICK_RATE: Final = 0.28
_SUBJECTS: Final = {
    "A": "【茶の間】{month}月のおすすめ商品のご案内",
    "B": "🍵 {month}月だけの新しいお茶、届きました",
}


def consent(j: Journey, t: float, who: Who, consents: dict[str, bool]) -> None:
    """A Consent Updated event (purposes granted or withdrawn)."""
    j.track(t, "Consent Updated", who, {"consents": consents})


def _email_who(j: Journey, t: float) -> tuple[Who, str | None]:
    """Ids of an email event, and the address to put in ``context.traits`` for leads."""
    account = j.account_who(t)
    if account is not None:
        return account, None
    return {"anonymousId": j.browsers[0].anonymous_id}, j.person.email


def _email_context(email: str | None) -> Raw | None:
    return None if email is None else {"traits": {"email": email}}


def newsletters(j: Journey, start: float, stop: float, engagement: float) -> None:
    """Every newsletter sent in ``[start, stop)``: delivered, maybe opened, maybe clicked."""
    rng = j.rng
    for campaign in j.world.campaigns:
        if not start <= campaign.sent_at < stop:
            continue
        t = campaign.sent_at + rng.random() * 20 * MINUTE
        variant = "A" if rng.random() < 0.5 else "B"
        who, lead_email = _email_who(j, t)
        props: Raw = {
            "campaign_id": campaign.campaign_id,
            "campaign_name": campaign.name,
            "variant": variant,
            "email_id": f"{campaign.campaign_id}-{variant}",
            "email_subject": _SUBJECTS[variant].format(month=campaign.month),
        }
        j.track(t, "Email Delivered", who, props, _email_context(lead_email))
        if rng.random() >= OPEN_RATE[variant] * engagement:
            continue
        t += min(rng.expovariate(1 / (5 * HOUR)), 4 * DAY)
        if t > j.active_until:
            continue
        j.track(t, "Email Opened", who, dict(props), _email_context(lead_email))
        if rng.random() >= CLICK_RATE:
            continue
        t += 5 + rng.random() * 5 * MINUTE
        product = VIEWABLE.pick(rng)
        utm = {"source": "email", "medium": "email", "name": campaign.campaign_id}
        link = f"{SHOP_URL}{product.path}?utm_source=email&utm_medium=email&utm_campaign="
        clicked = {**props, "link_url": link + utm["name"]}
        j.track(t, "Email Link Clicked", who, clicked, _email_context(lead_email))
        if rng.random() < 0.6:
            browser = j.browsers[0]
            t += 2 + rng.random() * 3
            web = j.web_who(browser, t)
            j.page(t, browser, web, product.path, product.name, {**utm, "content": variant})
            j.web_track(t + 0.4, browser, web, "Product Viewed", product.props(), product.path)
            j.browse(t, browser, web, int(rng.expovariate(1 / 1.5)))


def line_friend(j: Journey, followed_at: float, linked_at: float, until: float) -> None:
    """A LINE friend: follow (consent), messages, shop replies, maybe ID連携 and unfollow."""
    rng = j.rng
    line_id = "U" + j.hex_id()
    anonymous: Who = {"anonymousId": f"line-{line_id}"}
    # As the LINE webhook maps a follow: the LINE id in context.traits links the two.
    follow: Raw = {"traits": {"line_user_id": line_id}}
    j.track(followed_at, "Consent Updated", anonymous, {"consents": {"line": True}}, follow)
    if linked_at <= until:
        j.identify(linked_at, {"userId": j.user_id}, {"line_user_id": line_id})
    t = followed_at
    for _ in range(1 + int(rng.expovariate(1 / 1.6))):
        t += rng.expovariate(1 / (25 * DAY)) + rng.random() * HOUR
        if t > until:
            break
        who = {"userId": j.user_id} if t >= linked_at else anonymous
        props: Raw = {
            "channel": "line",
            "channel_user_id": line_id,
            "text": LINE_TEXTS[int(rng.random() * len(LINE_TEXTS))],
            "message_id": str(rng.getrandbits(56)),
        }
        j.track(t, "Message Received", who, props)
        if rng.random() < 0.5:
            reply = SHOP_REPLIES[int(rng.random() * len(SHOP_REPLIES))]
            t += 10 * MINUTE + rng.random() * 4 * HOUR
            j.track(
                t,
                "Message Sent",
                who,
                {"channel": "line", "channel_user_id": line_id, "text": reply},
            )
    if rng.random() < 0.04:
        t += rng.expovariate(1 / (20 * DAY))
        if t <= until:
            if t >= linked_at:
                consent(j, t, {"userId": j.user_id}, {"line": False})
            else:
                j.track(t, "Consent Updated", anonymous, {"consents": {"line": False}}, follow)


def direct_messages(j: Journey, channel: str, t: float, until: float) -> None:
    """One to three X or Instagram DMs; support links the sender to an account half the time."""
    rng = j.rng
    sender = str(rng.getrandbits(60)) if channel == "x" else str(10**16 + rng.getrandbits(52))
    who: Who = {"anonymousId": f"{channel}-{sender}"}
    texts = X_TEXTS if channel == "x" else INSTAGRAM_TEXTS
    for _ in range(1 + int(rng.expovariate(1 / 0.8))):
        if t > until:
            break
        text = texts[int(rng.random() * len(texts))]
        props: Raw = {"channel": channel, "channel_user_id": sender, "text": text}
        j.track(t, "Message Received", who, props)
        t += rng.expovariate(1 / (10 * DAY))
    account = j.account_who(t)
    if account is not None and rng.random() < 0.5:
        j.identify(t, account, {f"{channel}_user_id": sender})


def ticket(
    j: Journey,
    t: float,
    who: Who,
    subject: str,
    priority: str,
    resolution: str | None = None,
    closed_at: float | None = None,
) -> None:
    """A support ticket opened at ``t`` and closed at ``closed_at`` (default: days later)."""
    rng = j.rng
    ticket_id = j.serial("TK")
    channel = TICKET_CHANNELS.pick(rng)
    opened: Raw = {
        "ticket_id": ticket_id,
        "subject": subject,
        "channel": channel,
        "priority": priority,
    }
    j.track(t, "Support Ticket Opened", who, opened)
    if closed_at is None:
        closed_at = t + 2 * HOUR + rng.expovariate(1 / (1.5 * DAY))
    closed: Raw = {
        "ticket_id": ticket_id,
        "subject": subject,
        "channel": channel,
        "resolution": resolution or RESOLUTIONS[int(rng.random() * len(RESOLUTIONS))],
        "satisfaction": SATISFACTION.pick(rng),
    }
    j.track(closed_at, "Support Ticket Closed", who, closed)


def support_question(j: Journey, t: float, who: Who) -> None:
    """An everyday question (delivery, gift wrapping, receipts...)."""
    subject, priority = TICKET_SUBJECTS.pick(j.rng)
    ticket(j, t, who, subject, priority)


def refund(
    j: Journey, t: float, who: Who, order_id: str, items: list[Item], subject: str, priority: str
) -> None:
    """A complaint ticket, the refund days later (whole order or one line), then closing."""
    rng = j.rng
    refunded_at = t + DAY + rng.random() * 4 * DAY
    props: Raw = {"order_id": order_id, "currency": "JPY"}
    if len(items) > 1 and rng.random() < 0.5:
        product, quantity = items[int(rng.random() * len(items))]
        props["total"] = product.price * quantity
        props["products"] = [product.props(quantity)]
    ticket(j, t, who, subject, priority, "返金済み", refunded_at + HOUR + rng.random() * DAY)
    j.track(refunded_at, "Order Refunded", who, props)


def survey(j: Journey, t: float, who: Who, category: str) -> None:
    """A post-purchase NPS survey answer (survey id per quarter, JST)."""
    rng = j.rng
    local = datetime.fromtimestamp(t, JST)
    answers: Raw = {
        "satisfaction": SATISFACTION.pick(rng),
        "favorite_category": category,
        "comment": SURVEY_COMMENTS[int(rng.random() * len(SURVEY_COMMENTS))],
    }
    props: Raw = {
        "survey_id": f"nps-{local.year}-q{(local.month - 1) // 3 + 1}",
        "answers": answers,
        "nps": NPS.pick(rng),
    }
    j.track(t, "Survey Answered", who, props)
