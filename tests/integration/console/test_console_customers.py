"""Customer search and the profile 360 over real HTTP, as a viewer.

The expected values come from the CLI's read connection and plain SQL over
the views (``events``, ``identities``, ``merges``, ``profiles``) and the
analytics' ``ORDERS_SQL``, gathered before the server opens the shop (DuckDB
allows no second connection to a file one process writes).
"""

from __future__ import annotations

import html
import re
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from cdp.config import Settings
from cdp.services.analytics._base import ORDERS_SQL
from cdp.services.privacy import audit
from tests.integration.console.conftest import PASSWORDS, SignedIn, sign_in_as
from tests.integration.console.shop import cli_read

pytestmark = pytest.mark.integration

#: Full-width katakana (and the sound marks NFD splits off) → half-width katakana.
HALF = {unicodedata.normalize("NFKC", chr(h)): chr(h) for h in range(0xFF66, 0xFF9E)} | {
    "\u3099": "\uff9e",
    "\u309a": "\uff9f",
}
HIRAGANA = str.maketrans(
    "".join(chr(c) for c in range(0x30A1, 0x30F7)), "".join(chr(c) for c in range(0x3041, 0x3097))
)


def halfwidth(kana: str) -> str:
    """``サトウ`` → ``ｻﾄｳ``, ``ガ`` → ``ｶﾞ``."""
    return "".join(HALF.get(ch, ch) for ch in unicodedata.normalize("NFD", kana))


@dataclass(frozen=True)
class Person:
    """One customer as the views describe it."""

    customer_id: str
    profile: dict[str, Any]
    identifiers: list[str]
    merges: list[tuple[str, str, str]]
    events: list[int]
    orders: list[tuple[str, Decimal]]


def _person(con: Any, customer_id: str) -> Person:
    cursor = con.execute("SELECT * FROM profiles WHERE customer_id = ?", [customer_id])
    names = [d[0] for d in cursor.description]
    profile = dict(zip(names, cursor.fetchone(), strict=True))
    return Person(
        customer_id=customer_id,
        profile=profile,
        identifiers=sorted(
            r[0]
            for r in con.execute(
                "SELECT identifier FROM identities WHERE customer_id = ?", [customer_id]
            ).fetchall()
        ),
        merges=[
            tuple(r)
            for r in con.execute(
                "SELECT from_customer, via, reason FROM merges WHERE into_customer = ?",
                [customer_id],
            ).fetchall()
        ],
        events=[
            r[0]
            for r in con.execute(
                'SELECT "offset" FROM events WHERE customer_id = ? '
                'ORDER BY timestamp DESC, "offset" DESC',
                [customer_id],
            ).fetchall()
        ],
        orders=[
            (r[0], r[1])
            for r in con.execute(
                f"SELECT order_id, revenue FROM ({ORDERS_SQL}) WHERE customer_id = ? "
                "ORDER BY placed_at DESC, order_id DESC",
                [customer_id],
            ).fetchall()
        ],
    )


@dataclass(frozen=True)
class Shop:
    """What the tests look for: a buyer with a name in kana, a merged customer,
    a customer with a long history, and the number of customers."""

    buyer: Person
    merged: Person
    busy: Person
    customers: int


@pytest.fixture(scope="module", autouse=True)
def shop(console_shop: Settings) -> Shop:
    with cli_read(console_shop) as con:
        buyer = con.execute(
            "SELECT customer_id FROM profiles WHERE email IS NOT NULL AND phone IS NOT NULL"
            " AND last_name_kana IS NOT NULL AND orders_count > 1 ORDER BY customer_id LIMIT 1"
        ).fetchone()
        merged = con.execute(
            "SELECT into_customer FROM merges m JOIN customers c ON c.customer_id = m.into_customer"
            " ORDER BY into_customer LIMIT 1"
        ).fetchone()
        busy = con.execute(
            "SELECT customer_id FROM profiles WHERE events_count > 60 ORDER BY customer_id LIMIT 1"
        ).fetchone()
        count = con.execute("SELECT count(*) FROM customers").fetchone()
        assert buyer and merged and busy and count
        return Shop(
            _person(con, buyer[0]), _person(con, merged[0]), _person(con, busy[0]), count[0]
        )


@pytest.fixture(scope="module")
def viewer(console_url: str) -> Iterator[SignedIn]:
    """One viewer session for the module."""
    name, password = PASSWORDS["viewer"]
    client = sign_in_as(console_url, name, password)
    yield client
    client.close()


def found_ids(page: str) -> list[str]:
    """The customers the results table links to, in order."""
    if 'id="no-match"' in page:
        return []
    table = re.search(r'<table id="customers">(.*?)</table>', page, re.S)
    assert table, page
    return re.findall(
        r'<a class="customer" href="/console/customers/(cus_[0-9a-z]+)"', table.group(1)
    )


def search(client: SignedIn, text: str) -> list[str]:
    answer = client.get("/console/customers", params={"q": text})
    assert answer.status_code == 200, answer.text
    return found_ids(answer.text)


def test_search_by_email_phone_and_ids_finds_the_customer(viewer: SignedIn, shop: Shop) -> None:
    buyer = shop.buyer
    email = buyer.profile["email"]
    assert search(viewer, email.upper()) == [buyer.customer_id]
    assert search(viewer, f"email:{email}") == [buyer.customer_id]
    assert search(viewer, buyer.profile["phone"]) == [buyer.customer_id]
    assert search(viewer, buyer.customer_id) == [buyer.customer_id]
    for identifier in buyer.identifiers:
        kind, _, value = identifier.partition(":")
        if kind in ("user_id", "anonymous_id", "line", "x", "instagram"):
            assert buyer.customer_id in search(viewer, value), identifier


def test_search_by_name_and_kana_in_any_width_and_script(viewer: SignedIn, shop: Shop) -> None:
    p = shop.buyer.profile
    kana = p["last_name_kana"] + p["first_name_kana"]
    spaced = p["last_name_kana"] + "\u3000" + p["first_name_kana"]
    assert halfwidth(kana) != kana
    variants = (kana, kana.translate(HIRAGANA), halfwidth(kana), spaced, p["name"])
    for text in (*variants, p["name"].replace(" ", "")):
        assert shop.buyer.customer_id in search(viewer, text), text
    assert search(viewer, "存在しない名前ゾゾゾ") == []


def test_the_list_pages_through_every_customer_once(viewer: SignedIn, shop: Shop) -> None:
    seen: list[str] = []
    path = "/console/customers"
    while True:
        page = viewer.get(path).text
        seen += found_ids(page)
        more = re.search(r'<a href="([^"]+)" id="next-page"', page)
        if not more:
            break
        path = html.unescape(more.group(1))
    assert len(seen) == len(set(seen)) == shop.customers
    assert seen == sorted(seen)


def _section(page: str, section: str) -> str:
    found = re.search(rf'<section class="card" id="{section}".*?</section>', page, re.S)
    assert found, section
    return found.group(0)


def test_the_profile_shows_identifiers_merges_consent_orders_and_why(
    viewer: SignedIn, shop: Shop
) -> None:
    buyer = shop.buyer
    page = viewer.get(f"/console/customers/{buyer.customer_id}").text
    name = re.search(r'<h1 id="customer-name">([^<]+)', page)
    assert name and name.group(1).strip() == buyer.profile["name"]
    shown = re.findall(
        r'<tr><th scope="row">([^<]+)</th><td><code>([^<]+)</code>', _section(page, "identifiers")
    )
    assert sorted(f"{k}:{html.unescape(v)}" for k, v in shown) == buyer.identifiers
    consent = _section(page, "consent")
    for channel in ("email", "sms", "line", "ads"):
        value = buyer.profile[f"consent_{channel}"]
        state = "yes" if value else ("unknown" if value is None else "no")
        assert re.search(rf'data-consent="{channel}">.*?consent-{state}', consent, re.S), channel
    orders = re.findall(r'data-order="([^"]+)"', _section(page, "orders"))
    assert orders == [o for o, _ in buyer.orders] and orders
    why = _section(page, "lead-score")
    decayed = [float(v.replace(",", "")) for v in re.findall(r'class="num decayed">([^<]+)<', why)]
    assert sum(decayed) == pytest.approx(buyer.profile["lead_score_now"], abs=0.05 * len(decayed))
    now = re.search(r'id="score-now">([^<]+)<', why)
    assert now and float(now.group(1)) == pytest.approx(buyer.profile["lead_score_now"], abs=0.05)
    assert "<svg" in why and 'id="score-table"' in why


def test_merges_are_listed_with_their_reasons(viewer: SignedIn, shop: Shop) -> None:
    merged = shop.merged
    page = viewer.get(f"/console/customers/{merged.customer_id}").text
    section = _section(page, "merges")
    for from_customer, via, reason in merged.merges:
        assert from_customer in section
        assert html.escape(reason) in section and html.escape(via) in section
    old = merged.merges[0][0]
    answer = viewer.get(f"/console/customers/{old}")
    assert answer.status_code == 303
    assert answer.headers["location"].startswith(f"/console/customers/{merged.customer_id}")


def test_the_timeline_pages_through_the_events_view(viewer: SignedIn, shop: Shop) -> None:
    busy = shop.busy
    offsets: list[int] = []
    path = f"/console/customers/{busy.customer_id}"
    while True:
        page = viewer.get(path).text
        offsets += [
            int(o) for o in re.findall(r'<tr data-offset="(\d+)"', _section(page, "timeline"))
        ]
        older = re.search(r'href="([^"]+)" id="timeline-older"', page)
        if not older:
            break
        path = html.unescape(older.group(1)).split("#")[0]
    assert offsets == busy.events


def test_a_profile_view_is_audited_without_personal_data(
    viewer: SignedIn, shop: Shop, console_shop: Settings
) -> None:
    customer = shop.merged.customer_id
    viewer.get(f"/console/customers/{customer}")
    deadline = time.monotonic() + 15  # the server's audit log is written every second
    while True:
        lines = [
            e
            for e in audit.entries(console_shop.data_dir, action="profile.view")
            if e.actor == f"console:{PASSWORDS['viewer'][0]}"
        ]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert lines
    assert all(customer not in e.target for e in lines)
    assert all(e.target.startswith("customer:") for e in lines)


def test_unknown_customer_is_a_404_and_both_languages_render(
    sign_in: Callable[[str], SignedIn], shop: Shop
) -> None:
    client = sign_in("viewer")
    assert client.get("/console/customers/cus_00000000000000000000").status_code == 404
    path = f"/console/customers/{shop.buyer.customer_id}"
    ja = client.get(path, headers={"Accept-Language": "ja"}).text
    assert "識別子" in ja and "統合の履歴" in ja and "タイムライン" in ja and "リードスコア" in ja
    en = client.get(path, headers={"Accept-Language": "en"}).text
    assert "Identifiers" in en and "Merge history" in en and "Timeline" in en
    assert "検索" in client.get("/console/customers", headers={"Accept-Language": "ja"}).text


def test_signed_out_is_sent_to_sign_in(console_url: str, shop: Shop) -> None:
    for path in ("/console/customers", f"/console/customers/{shop.buyer.customer_id}"):
        answer = httpx.get(console_url + path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/login")
