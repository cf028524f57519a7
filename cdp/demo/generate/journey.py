"""One customer's event stream: emitting events and browsing the web shop.

A ``Journey`` collects ``(epoch seconds, raw event)`` pairs for one simulated
customer, all drawn from that customer's own ``random.Random``, so a
customer's events do not depend on who else is generated. Raw events are
built directly as wire-form dicts (no pydantic: it would cost more than the
whole generator); ``tests/unit/test_generate.py`` checks them against
``schemas.decode``. Events after the window's end are not emitted: the
simulation simply runs past the end of the data set.

Identity on the web follows analytics.js: every browser (``Browser``) has its
own ``anonymousId``; once the customer registers or logs in on it, its events
also carry the ``userId``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import date
from math import log
from typing import Any, Final

from cdp.demo.generate.catalog import (
    AD_CAMPAIGNS,
    ARTICLES,
    BUYABLE,
    CATEGORIES,
    DEVICES,
    SHOP_NAME,
    SHOP_URL,
    VIEWABLE,
    Device,
    Product,
)
from cdp.demo.generate.clock import Campaign, IsoFormatter, Window
from cdp.demo.generate.people import Person

INF: Final = math.inf
Raw = dict[str, Any]
Who = dict[str, str]
Item = tuple[Product, int]
"""An order line: product and quantity."""

_REFERRERS: Final = {
    "google": "https://www.google.com/",
    "yahoo": "https://search.yahoo.co.jp/",
    "instagram": "https://www.instagram.com/",
    "line": "https://line.me/",
    "x": "https://t.co/",
}
TITLE_SUFFIX: Final = f" | {SHOP_NAME}"
FREE_SHIPPING_FROM: Final = 5_400
SHIPPING_FEE: Final = 660


@dataclass(frozen=True, slots=True)
class World:
    """Read-only inputs shared by every journey of a run."""

    window: Window
    campaigns: tuple[Campaign, ...]
    iso: IsoFormatter
    digits: int
    """Width of the per-person unique number in emails (see ``cdp.demo.generate.people``)."""
    today: date
    """The window's last day: ages are counted up to it."""


class Browser:
    """One browser of a customer: its ``anonymousId`` and when it was logged in."""

    __slots__ = ("anonymous_id", "device", "logged_in_at")

    def __init__(self, anonymous_id: str, device: Device) -> None:
        self.anonymous_id = anonymous_id
        self.device = device
        self.logged_in_at = INF


class Journey:
    """Events of one customer, in the order they were simulated."""

    __slots__ = (
        "_iso",
        "_serial",
        "active_until",
        "browsers",
        "end",
        "events",
        "index",
        "person",
        "rng",
        "signed_up_at",
        "user_id",
        "world",
    )

    def __init__(self, world: World, index: int, rng: random.Random, person: Person) -> None:
        self.world = world
        self.index = index
        self.rng = rng
        self.person = person
        self.end = world.window.end
        self.events: list[tuple[float, Raw]] = []
        self.user_id = f"C{index + 1:08d}"
        self.signed_up_at = INF
        """When the account (``userId``) was created; ``INF`` for people without one."""
        self.active_until = self.end
        """After this the customer does nothing by themself (lapsed, lost interest)."""
        self.browsers: list[Browser] = []
        self._iso = world.iso
        self._serial = 0

    # -- identifiers -------------------------------------------------------

    def hex_id(self) -> str:
        """32 random hex digits."""
        return self.rng.randbytes(16).hex()

    def new_browser(self) -> Browser:
        """A new browser with an analytics.js-style UUID ``anonymousId``."""
        h = self.hex_id()
        anonymous_id = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"
        browser = Browser(anonymous_id, DEVICES.pick(self.rng))
        self.browsers.append(browser)
        return browser

    def web_who(self, browser: Browser, t: float) -> Who:
        """Ids a browser event carries at ``t``."""
        if t >= browser.logged_in_at:
            return {"userId": self.user_id, "anonymousId": browser.anonymous_id}
        return {"anonymousId": browser.anonymous_id}

    def account_who(self, t: float) -> Who | None:
        """``{"userId": ...}`` once the customer has an account at ``t``, else ``None``."""
        return {"userId": self.user_id} if t >= self.signed_up_at else None

    # -- emitting ----------------------------------------------------------
    # The hot path: each event is one dict literal, no helper calls but the
    # formatter. Events after the window's end are dropped.

    def _stamp(self, t: float) -> tuple[str, str, str]:
        """``messageId``, ``timestamp`` and ``receivedAt`` of an event at ``t``."""
        rng = self.rng
        millis = int(t * 1000)
        # Network and batching delay before the platform got it: 0.05-3 s, mostly short.
        received = millis + 50 + int(2950 * rng.random() ** 3)
        timestamp, received_at = self._iso.pair(millis, received)
        return rng.getrandbits(128).to_bytes(16, "little").hex(), timestamp, received_at

    def track(self, t: float, event: str, who: Who, props: Raw, context: Raw | None = None) -> None:
        """A track event."""
        if t > self.end:
            return
        message_id, timestamp, received_at = self._stamp(t)
        raw: Raw = {
            "type": "track",
            "event": event,
            "messageId": message_id,
            "timestamp": timestamp,
            "receivedAt": received_at,
            **who,
            "properties": props,
        }
        if context is not None:
            raw["context"] = context
        self.events.append((t, raw))

    def identify(self, t: float, who: Who, traits: Raw) -> None:
        """An identify event."""
        if t > self.end:
            return
        message_id, timestamp, received_at = self._stamp(t)
        raw: Raw = {
            "type": "identify",
            "messageId": message_id,
            "timestamp": timestamp,
            "receivedAt": received_at,
            **who,
            "traits": traits,
        }
        self.events.append((t, raw))

    def page(
        self,
        t: float,
        browser: Browser,
        who: Who,
        path: str,
        title: str,
        campaign: Raw | None = None,
        referrer: str | None = None,
    ) -> None:
        """A page view, with ``context.page`` and (for landings) ``context.campaign``."""
        if t > self.end:
            return
        url = SHOP_URL + path
        if campaign is not None:
            url += (
                f"?utm_source={campaign['source']}&utm_medium={campaign['medium']}"
                f"&utm_campaign={campaign['name']}"
            )
        full_title = title + TITLE_SUFFIX
        page: Raw = {"path": path, "url": url, "title": full_title}
        if referrer is not None:
            page["referrer"] = referrer
        context: Raw = {"page": page, "userAgent": browser.device.user_agent, "locale": "ja-JP"}
        if campaign is not None:
            context["campaign"] = campaign
        message_id, timestamp, received_at = self._stamp(t)
        raw: Raw = {
            "type": "page",
            "name": title,
            "messageId": message_id,
            "timestamp": timestamp,
            "receivedAt": received_at,
            **who,
            "properties": {"path": path, "url": url, "title": full_title},
            "context": context,
        }
        self.events.append((t, raw))

    def web_track(
        self, t: float, browser: Browser, who: Who, event: str, props: Raw, path: str
    ) -> None:
        """A track sent by the browser, with the page it happened on."""
        context = {
            "page": {"path": path, "url": SHOP_URL + path},
            "userAgent": browser.device.user_agent,
            "locale": "ja-JP",
        }
        self.track(t, event, who, props, context)

    # -- browsing ------------------------------------------------------------

    def _step(self) -> float:
        """Seconds between two clicks: 6 s plus an exponential wait of mean 40 s."""
        return 6.0 - 40.0 * log(1.0 - self.rng.random())  # expovariate, without its frame

    def land(self, t: float, browser: Browser, who: Who, campaign: Raw | None = None) -> None:
        """The first page view of a visit: home, a category, a product or an article."""
        rng = self.rng
        roll = rng.random()
        referrer = None if campaign is None else _REFERRERS.get(campaign["source"])
        if campaign is None and rng.random() < 0.35:
            referrer = _REFERRERS["google"] if rng.random() < 0.8 else _REFERRERS["yahoo"]
        if roll < 0.35:
            self.page(t, browser, who, "/", "トップ", campaign, referrer)
        elif roll < 0.55:
            slug, name = CATEGORIES.pick(rng)
            self.page(t, browser, who, f"/category/{slug}", name, campaign, referrer)
        elif roll < 0.85:
            product = VIEWABLE.pick(rng)
            self.page(t, browser, who, product.path, product.name, campaign, referrer)
            self.web_track(t + 0.4, browser, who, "Product Viewed", product.props(), product.path)
        else:
            path, title = ARTICLES.pick(rng)
            self.page(t, browser, who, path, title, campaign, referrer)

    def view(self, t: float, browser: Browser, who: Who, product: Product) -> float:
        """Open a product page; returns the time after it."""
        t += self._step()
        self.page(t, browser, who, product.path, product.name)
        self.web_track(t + 0.4, browser, who, "Product Viewed", product.props(), product.path)
        return t

    def add_to_cart(self, t: float, browser: Browser, who: Who, item: Item) -> float:
        """Put an item in the cart and look at the cart."""
        product, quantity = item
        t += self._step()
        props = product.props()
        props["quantity"] = quantity
        self.web_track(t, browser, who, "Product Added", props, product.path)
        t += 2.0 + self.rng.random() * 6
        self.page(t, browser, who, "/cart", "カート")
        return t

    def browse(self, t: float, browser: Browser, who: Who, steps: int) -> float:
        """Wander: categories, products (sometimes into the cart), articles."""
        rng = self.rng
        for _ in range(steps):
            roll = rng.random()
            if roll < 0.25:
                t += self._step()
                slug, name = CATEGORIES.pick(rng)
                self.page(t, browser, who, f"/category/{slug}", name)
            elif roll < 0.85:
                product = VIEWABLE.pick(rng)
                t = self.view(t, browser, who, product)
                if rng.random() < 0.12 and product in BUYABLE.items:
                    t = self.add_to_cart(t, browser, who, (product, 1))
            else:
                t += self._step()
                path, title = ARTICLES.pick(rng)
                self.page(t, browser, who, path, title)
        return t

    def visit(self, t: float, browser: Browser) -> float:
        """A browsing visit, a third of them from an ad or social post; returns when it ended."""
        rng = self.rng
        who = self.web_who(browser, t)
        campaign = None
        if rng.random() < 0.35:
            source, medium, name = AD_CAMPAIGNS.pick(rng)
            campaign = {"source": source, "medium": medium, "name": name}
        self.land(t, browser, who, campaign)
        return self.browse(t, browser, who, int(rng.expovariate(1 / 1.8)))

    def login(self, t: float, browser: Browser) -> float:
        """Log in on a browser: an identify linking its ``anonymousId`` to the account."""
        t += self._step()
        self.page(t, browser, {"anonymousId": browser.anonymous_id}, "/account/login", "ログイン")
        t += 15 + self.rng.random() * 40
        browser.logged_in_at = t
        self.identify(t, self.web_who(browser, t), {"email": self.person.typed_email(self.rng)})
        return t

    # -- orders ----------------------------------------------------------------

    def basket(self) -> list[Item]:
        """An ordinary order's lines: one to four distinct products, rarely several of one."""
        rng = self.rng
        roll = rng.random()
        lines = 1 if roll < 0.55 else 2 if roll < 0.85 else 3 if roll < 0.97 else 4
        chosen: list[Product] = []
        while len(chosen) < lines:
            product = BUYABLE.pick(rng)
            if product not in chosen:
                chosen.append(product)
        return [(p, 1 if (q := rng.random()) < 0.75 else 2 if q < 0.93 else 3) for p in chosen]

    def serial(self, prefix: str) -> str:
        """A new id unique in the data set: ``prefix``, customer number, sequence."""
        self._serial += 1
        return f"{prefix}-{self.index + 1:07d}-{self._serial:02d}"

    def checkout(
        self, t: float, browser: Browser, items: list[Item], coupon: str | None
    ) -> tuple[float, str]:
        """Cart → checkout → Order Completed; returns the order time and id."""
        for item in items:
            t = self.view(t, browser, self.web_who(browser, t), item[0])
            t = self.add_to_cart(t, browser, self.web_who(browser, t), item)
        t += self._step()
        who = self.web_who(browser, t)
        self.page(t, browser, who, "/checkout", "ご注文手続き")
        t += 60 + self.rng.expovariate(1 / 120)
        order_id = self.serial("CN")
        subtotal = sum(product.price * quantity for product, quantity in items)
        discount = 0
        if coupon == "WELCOME10":
            discount = subtotal // 10
        elif coupon == "LINE500" and subtotal >= 3_000:
            discount = 500
        else:
            coupon = None
        revenue = subtotal - discount
        shipping = 0 if subtotal >= FREE_SHIPPING_FROM else SHIPPING_FEE
        props: Raw = {
            "order_id": order_id,
            "revenue": revenue,
            "total": revenue + shipping,
            "shipping": shipping,
            "tax": (revenue + shipping) * 10 // 110,
            "currency": "JPY",
            "products": [product.props(quantity) for product, quantity in items],
        }
        if coupon is not None:
            props["coupon"] = coupon
            props["discount"] = discount
        path = "/checkout/complete"
        context: Raw = {
            "page": {"path": path, "url": SHOP_URL + path},
            "userAgent": browser.device.user_agent,
            "locale": "ja-JP",
            "traits": {"email": self.person.email},
        }
        self.track(t, "Order Completed", who, props, context)
        self.page(t + 1.5, browser, who, path, "ご注文完了")
        return t, order_id
