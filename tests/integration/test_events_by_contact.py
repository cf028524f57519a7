"""Events named only by an email or phone (sales events from the SFA) belong to the
customer the identity graph gives that email or phone, in the ``events`` and
``facts`` views and a profile's recent events: they are stored with the contact's
anonymous id (``schemas.sales.contact_anonymous_id``), which the checkpoint that
folds them links to that customer, so a contact's later events are attributed at
once (from the log's tail too)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from cdp.config import Settings
from cdp.read.history import recent_events
from cdp.runtime.engine import Engine
from cdp.services.ingest import ingest
from schemas.sales import contact_anonymous_id
from tests.factories import T0, raw_identify, raw_page, raw_track

pytestmark = pytest.mark.integration


def deal(message_id: str, traits: dict[str, str], days: int) -> dict[str, Any]:
    return raw_track(
        "Deal Won",
        {"deal_id": f"D-{message_id}", "amount": 1000},
        message_id=message_id,
        context={"traits": traits},
        at=T0 + timedelta(days=days),
    )


EVENTS = [
    raw_identify(
        user_id="u-1",
        anonymous_id="a-1",
        traits={"email": "buyer@cafe.example.jp", "phone": "090-1234-5678"},
        message_id="link-1",
    ),
    raw_page("/", anonymous_id="a-2", message_id="page-2"),  # someone else
    raw_identify(user_id="u-2", traits={"phone": "+81 80 1111 2222"}, message_id="link-2"),
    deal("nobody", {"email": "stranger@other.example.jp"}, 4),
    deal("by-email", {"email": "  Buyer@Cafe.Example.JP "}, 1),
    deal("by-phone", {"phone": "+81 90-1234-5678"}, 2),
    deal("junk-email", {"email": "test@example.com", "phone": "080-1111-2222"}, 3),
]
# The SFA's contact unknown to the shop becomes a customer of their own, by email.
EXPECTED = {
    "by-email": "user_id:u-1",
    "by-phone": "user_id:u-1",
    "junk-email": "user_id:u-2",
    "nobody": "email:stranger@other.example.jp",
}
# The same contacts' next deals, written as the SFA may (other case, spacing).
LATER = [
    deal("by-email-later", {"email": "BUYER@cafe.example.jp"}, 5),
    deal("junk-email-later", {"email": "test@example.com", "phone": "08011112222"}, 6),
]
LATER_EXPECTED = {"by-email-later": "user_id:u-1", "junk-email-later": "user_id:u-2"}


def customer_of(con: duckdb.DuckDBPyConnection, identifier: str) -> str:
    row = con.execute(
        "SELECT customer_id FROM identity_graph WHERE identifier = ?", [identifier]
    ).fetchone()
    assert row is not None
    return str(row[0])


def check(con: duckdb.DuckDBPyConnection, expected: dict[str, str], later: list[str]) -> None:
    owners = {key: customer_of(con, key) for key in expected.values()}
    for view, key in (("events", "message_id"), ("facts", "event")):
        rows = dict(
            con.execute(
                f"SELECT e.message_id, v.customer_id FROM {view} v JOIN event_log e "
                f'ON e."offset" = v."offset" WHERE e.event = \'Deal Won\''
            ).fetchall()
        )
        assert rows == {m: owners[u] for m, u in expected.items()}, (view, key)
    # A profile's recent events (the SQL lookup; the read model is held to the
    # same answers by tests/integration/test_read_model.py).
    mine = recent_events(con, owners["user_id:u-1"], identifiers(con, "user_id:u-1"), 10)
    assert [e["message_id"] for e in mine] == [*later[:1], "by-phone", "by-email", "link-1"]
    theirs = recent_events(con, owners["user_id:u-2"], identifiers(con, "user_id:u-2"), 10)
    assert [e["message_id"] for e in theirs] == [*later[1:], "junk-email", "link-2"]


def identifiers(con: duckdb.DuckDBPyConnection, key: str) -> list[str]:
    return [
        str(r[0])
        for r in con.execute(
            "SELECT identifier FROM identity_graph WHERE customer_id = "
            "(SELECT customer_id FROM identity_graph WHERE identifier = ?)",
            [key],
        ).fetchall()
    ]


def test_contact_named_events_belong_to_the_graphs_customer(tmp_path: Path) -> None:
    with Engine.open(Settings(tmp_path / "data")) as engine:
        items = [(f"m{i}", raw) for i, raw in enumerate(EVENTS)]
        assert ingest(items[:4], engine).rejected == 0  # the people
        engine.checkpoint()
        assert ingest(items[4:], engine).rejected == 0  # their deals
        engine.checkpoint()  # links each contact's anonymous id to its customer
        check(engine.con, EXPECTED, [])  # facts from the table
        assert ingest([(f"l{i}", raw) for i, raw in enumerate(LATER)], engine).rejected == 0
        later = list(LATER_EXPECTED)
        check(engine.con, EXPECTED | LATER_EXPECTED, later)  # from the log's tail, at once
        engine.checkpoint()
        check(engine.con, EXPECTED | LATER_EXPECTED, later)


def test_a_contact_named_sales_event_is_stored_with_the_contacts_anonymous_id() -> None:
    """The same id for one contact however the SFA writes it; none for other events."""
    by_email = contact_anonymous_id(deal("x", {"email": " Buyer@Cafe.Example.JP"}, 0))
    assert by_email is not None and by_email.startswith("contact-") and len(by_email) == 40
    assert by_email == contact_anonymous_id(deal("y", {"email": "buyer@cafe.example.jp"}, 1))
    junk = deal("z", {"email": "test@example.com", "phone": "+81 80 1111 2222"}, 0)
    by_phone = deal("w", {"phone": "080-1111-2222"}, 0)
    assert contact_anonymous_id(junk) == contact_anonymous_id(by_phone) != by_email
    assert contact_anonymous_id(raw_identify(traits={"email": "a@b.jp"}, user_id="u")) is None
    assert contact_anonymous_id(deal("v", {}, 0)) is None
    named = deal("u", {"email": "buyer@cafe.example.jp"}, 0) | {"userId": "u-1"}
    assert contact_anonymous_id(named) is None  # the user id names them
