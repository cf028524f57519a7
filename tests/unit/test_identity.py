"""The identity graph: linking, merge rules, explanations, persistence."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import pytest

from projections.identity import (
    ROW_COLUMNS,
    IdentityGraph,
    Merge,
    Rejection,
    Resolution,
    Rules,
    apply,
    customer_id_for,
    identifiers_of,
)
from projections.identity.records import _resolution
from schemas import AnyEvent, decode
from schemas.identifiers import key
from tests.factories import T0, at_days, envelope, identify, message, page, track

HANAKO = key("email", "hanako@example.jp")


def alias(user_id: str, previous_id: str, **kw: Any) -> AnyEvent:
    return decode(envelope("alias", user_id=user_id, previousId=previous_id, **kw))


def form(fields: dict[str, Any], **kw: Any) -> AnyEvent:
    return track("Form Submitted", {"form_id": "contact", "fields": fields}, **kw)


def feed(graph: IdentityGraph, events: Iterable[AnyEvent], start: int = 0) -> list[Resolution]:
    return [apply(graph, event, offset) for offset, event in enumerate(events, start)]


def cid(identifier: str) -> str:
    return "cus_" + hashlib.blake2b(identifier.encode()).hexdigest()[:20]


# -- which identifiers an event carries ---------------------------------------------


def test_identifiers_in_priority_order_normalised_and_deduplicated() -> None:
    event = identify(
        user_id=" u1 ",
        anonymous_id="a1",
        email=" Hanako@Example.JP ",
        phone="090-1234-5678",
        traits={"line_user_id": "U1", "x_user_id": "x1", "instagram_user_id": "ig1"},
        context={"traits": {"email": "hanako@example.jp", "phone": "+81 90 1234 5678"}},
    )
    assert identifiers_of(event) == (
        "user_id:u1",
        HANAKO,
        "phone:+819012345678",
        "line:U1",
        "x:x1",
        "instagram:ig1",
        "anonymous_id:a1",
    )


def test_identifiers_from_context_traits_messages_and_forms() -> None:
    with_context = page(anonymous_id="a1", context={"traits": {"email": "taro@example.jp"}})
    assert identifiers_of(with_context) == (key("email", "taro@example.jp"), "anonymous_id:a1")
    line = message("line", "U4af", anonymous_id="a1")
    assert identifiers_of(line) == ("line:U4af", "anonymous_id:a1")
    sent = track("Message Sent", {"channel": "x", "channel_user_id": "x9"}, user_id="u1")
    assert identifiers_of(sent) == ("user_id:u1", "x:x9")
    submitted = form({"email": "Taro@Example.jp", "phone": "03-1234-5678"}, anonymous_id="a1")
    assert identifiers_of(submitted) == (
        key("email", "taro@example.jp"),
        "phone:+81312345678",
        "anonymous_id:a1",
    )


def test_channel_ids_of_a_message_and_traits_keep_kind_order() -> None:
    event = message("instagram", "ig1", user_id="u1", context={"traits": {"line_user_id": "U1"}})
    assert identifiers_of(event) == ("user_id:u1", "line:U1", "instagram:ig1")


@pytest.mark.parametrize("junk", ["null", "undefined", "0", " NULL ", "nil"])
def test_junk_ids_are_not_identifiers(junk: str) -> None:
    assert identifiers_of(track("Clicked", user_id=junk, anonymous_id=junk)) == ()
    assert identifiers_of(identify(user_id=junk, traits={"line_user_id": junk})) == ()


@pytest.mark.parametrize("email", ["test@example.com", "noreply@shop.jp", "dummy@shop.jp"])
def test_test_addresses_are_not_identifiers(email: str) -> None:
    assert identifiers_of(identify(anonymous_id="a1", email=email)) == ("anonymous_id:a1",)


def test_identifier_keys_match_the_schema_helper() -> None:
    event = track("Clicked", user_id="u1", anonymous_id="a1")
    assert identifiers_of(event) == (key("user_id", "u1"), key("anonymous_id", "a1"))


# -- linking ----------------------------------------------------------------------


def test_event_without_usable_identifier_resolves_to_nobody() -> None:
    graph = IdentityGraph()
    resolution = apply(graph, track("Clicked", user_id="null"), 0)
    assert resolution == Resolution(None, (), (), False)
    assert list(graph.customers()) == []


def test_customer_ids_are_derived_from_the_first_identifier() -> None:
    graph = IdentityGraph()
    first = apply(graph, identify(anonymous_id="a1", email="hanako@example.jp"), 0)
    assert first.created
    assert first.customer_id == cid(HANAKO) == customer_id_for(HANAKO)
    again = apply(graph, page(anonymous_id="a1"), 1)
    assert again == Resolution(first.customer_id, (), (), False)


def test_anonymous_to_form_to_login_to_line_is_one_customer() -> None:
    graph = IdentityGraph()
    visit = page(anonymous_id="a1", at=T0)
    form_email = identify(anonymous_id="a1", email="hanako@example.jp", at=at_days(1))
    login = identify(user_id="u1", anonymous_id="a1", at=at_days(2))
    line = message("line", "U1", user_id="u1", at=at_days(3))
    results = feed(graph, [visit, form_email, login, line])

    customer = cid("anonymous_id:a1")
    assert [r.customer_id for r in results] == [customer] * 4
    assert [r.created for r in results] == [True, False, False, False]
    assert all(r.merges == () and r.rejections == () for r in results)
    assert graph.identifiers_of_customer(customer) == (
        "anonymous_id:a1",
        HANAKO,
        "line:U1",
        "user_id:u1",
    )
    # Each attachment is explained by the event that first carried the identifier.
    changes = graph.take_changes()
    assert changes.identifiers == graph.identifiers_of_customer(customer)


def test_journey_across_devices_and_line_gives_explained_merges() -> None:
    graph = IdentityGraph()
    events = [
        page(anonymous_id="pc", at=T0),  # 0: first visit on a PC
        identify(anonymous_id="phone", email="hanako@example.jp", at=at_days(1)),  # 1: form
        identify(user_id="u1", anonymous_id="pc", at=at_days(2)),  # 2: login on the PC
        message("line", "U1", anonymous_id="line-webhook", at=at_days(3)),  # 3: LINE follow
        identify(user_id="u1", email="hanako@example.jp", at=at_days(4)),  # 4
        identify(user_id="u1", traits={"line_user_id": "U1"}, at=at_days(5)),  # 5
    ]
    results = feed(graph, events, start=100)

    pc = cid("anonymous_id:pc")
    assert results[4].merges == (
        Merge(
            from_customer=cid(HANAKO),
            into_customer=pc,
            reason=f"shared identifier {HANAKO}",
            via=HANAKO,
            message_id=events[4].message_id,
            offset=104,
            at=at_days(4),
        ),
    )
    assert results[5].merges == (
        Merge(
            from_customer=cid("line:U1"),
            into_customer=pc,
            reason="shared identifier line:U1",
            via="line:U1",
            message_id=events[5].message_id,
            offset=105,
            at=at_days(5),
        ),
    )
    assert {r.customer_id for r in results[4:]} == {pc}
    assert list(graph.customers()) == [pc]
    assert len(graph.identifiers_of_customer(pc)) == 6
    assert graph.redirect(cid(HANAKO)) == graph.redirect(cid("line:U1")) == pc


def test_the_earlier_customer_survives_even_when_the_event_belongs_to_the_later() -> None:
    graph = IdentityGraph()
    old, new = feed(graph, [page(anonymous_id="old"), page(anonymous_id="new")])
    apply(graph, identify(anonymous_id="new", email="hanako@example.jp"), 2)
    joined = apply(graph, identify(anonymous_id="old", email="hanako@example.jp"), 3)
    assert joined.customer_id == old.customer_id
    assert [(m.from_customer, m.into_customer) for m in joined.merges] == [
        (new.customer_id, old.customer_id)
    ]


def test_alias_merges_are_explained_as_aliases() -> None:
    graph = IdentityGraph()
    feed(graph, [page(anonymous_id="a1"), identify(user_id="u1")])
    event = alias("u1", "a1")
    link = apply(graph, event, 2)
    assert link.merges == (
        Merge(
            from_customer=cid("user_id:u1"),
            into_customer=cid("anonymous_id:a1"),
            reason="alias of anonymous_id:a1",
            via="anonymous_id:a1",
            message_id=event.message_id,
            offset=2,
            at=T0,
        ),
    )


# -- merge rules ------------------------------------------------------------------


def test_two_user_ids_sharing_an_email_are_not_merged() -> None:
    graph = IdentityGraph()
    first, second = feed(
        graph,
        [
            identify(user_id="u1", email="hanako@example.jp"),
            identify(user_id="u2", email="hanako@example.jp"),
        ],
    )
    assert second.customer_id == cid("user_id:u2") != first.customer_id
    assert second.created
    assert second.merges == ()
    (rejection,) = second.rejections
    assert rejection.customer_id == second.customer_id
    assert rejection.identifier == HANAKO
    assert "user_id:u1" in rejection.reason and "user_id:u2" in rejection.reason
    assert rejection.reason.startswith("conflicting user ids")
    assert graph.customer_of(HANAKO) == first.customer_id  # it stays where it was


def test_event_without_user_id_cannot_join_two_user_ids() -> None:
    graph = IdentityGraph()
    feed(
        graph,
        [
            identify(user_id="u1", anonymous_id="a1"),
            identify(user_id="u2", email="hanako@example.jp"),
        ],
    )
    result = apply(graph, identify(anonymous_id="a1", email="hanako@example.jp"), 2)
    assert result.customer_id == cid("user_id:u2")  # email ranks before anonymous_id
    assert [r.identifier for r in result.rejections] == ["anonymous_id:a1"]
    assert graph.customer_of("anonymous_id:a1") == cid("user_id:u1")


def test_new_user_id_joins_the_first_known_customer_without_one() -> None:
    graph = IdentityGraph()
    feed(
        graph,
        [
            identify(user_id="u1", email="hanako@example.jp"),
            page(anonymous_id="a2"),
        ],
    )
    result = apply(graph, identify(user_id="u2", anonymous_id="a2", email="hanako@example.jp"), 2)
    assert result.customer_id == cid("anonymous_id:a2")
    assert not result.created
    assert graph.customer_of("user_id:u2") == cid("anonymous_id:a2")
    assert [r.identifier for r in result.rejections] == [HANAKO]


@pytest.mark.parametrize("junk", ["null", "undefined", "0"])
def test_junk_user_ids_never_link(junk: str) -> None:
    graph = IdentityGraph()
    results = feed(
        graph,
        [
            identify(user_id=junk, anonymous_id="a1"),
            identify(user_id=junk, anonymous_id="a2"),
            identify(anonymous_id="a3", email="test@example.com"),
            identify(anonymous_id="a4", email="test@example.com"),
        ],
    )
    assert len({r.customer_id for r in results}) == 4
    assert all(r.merges == () for r in results)
    assert graph.customer_of(f"user_id:{junk}") is None
    assert graph.customer_of("email:test@example.com") is None


def test_anonymous_id_cap_refuses_attachments() -> None:
    graph = IdentityGraph(Rules(max_anonymous_ids=2))
    events = [identify(user_id="u1", anonymous_id=f"a{n}") for n in range(3)]
    results = feed(graph, events)
    (rejection,) = results[2].rejections
    assert rejection == Rejection(
        customer_id=cid("user_id:u1"),
        identifier="anonymous_id:a2",
        reason="anonymous id cap (2) reached",
        message_id=events[2].message_id,
        offset=2,
        at=T0,
    )
    assert results[2].customer_id == cid("user_id:u1")
    assert graph.customer_of("anonymous_id:a2") is None


def test_anonymous_id_cap_refuses_merges() -> None:
    graph = IdentityGraph(Rules(max_anonymous_ids=2))
    feed(
        graph,
        [
            identify(user_id="u1", anonymous_id="a1"),
            identify(user_id="u1", anonymous_id="a2"),
            identify(anonymous_id="a3", email="hanako@example.jp"),
        ],
    )
    result = apply(graph, identify(user_id="u1", email="hanako@example.jp"), 3)
    assert result.merges == ()
    (rejection,) = result.rejections
    assert rejection.identifier == HANAKO
    assert rejection.reason.startswith("anonymous id cap (2) reached")
    assert graph.customer_of(HANAKO) == cid(HANAKO)


def test_rules_must_allow_an_anonymous_id() -> None:
    with pytest.raises(ValueError, match="max_anonymous_ids"):
        Rules(max_anonymous_ids=0)


# -- alias ------------------------------------------------------------------------


def test_alias_of_an_unknown_previous_id_links_it_as_anonymous() -> None:
    graph = IdentityGraph()
    apply(graph, page(anonymous_id="a1"), 0)
    result = apply(graph, alias("u1", "a1"), 1)
    assert result.customer_id == cid("anonymous_id:a1")
    assert graph.customer_of("user_id:u1") == result.customer_id
    assert identifiers_of(alias("u1", "a1")) == ("user_id:u1", "anonymous_id:a1")


def test_alias_of_a_known_user_id_never_merges_two_user_ids() -> None:
    graph = IdentityGraph()
    apply(graph, identify(user_id="old"), 0)
    result = apply(graph, alias("new", "old"), 1)
    assert result.customer_id == cid("user_id:new")
    assert [r.identifier for r in result.rejections] == ["user_id:old"]
    assert graph.customer_of("anonymous_id:old") is None
    assert identifiers_of(alias("new", "old"), lambda k: k == "user_id:old") == (
        "user_id:new",
        "user_id:old",
    )


def test_alias_to_itself_links_nothing_more() -> None:
    assert identifiers_of(alias("u1", "u1"), lambda k: False) == ("user_id:u1",)


# -- redirects and change tracking ------------------------------------------------


def _chain(graph: IdentityGraph) -> tuple[str, str, str]:
    """Customers c (oldest), b, a; a merged into b, then b into c."""
    feed(graph, [page(anonymous_id="c"), page(anonymous_id="b"), page(anonymous_id="a")])
    feed(
        graph,
        [
            identify(anonymous_id="b", email="hanako@example.jp"),
            identify(anonymous_id="a", email="hanako@example.jp"),
            identify(anonymous_id="c", email="hanako@example.jp"),
        ],
        start=3,
    )
    return cid("anonymous_id:c"), cid("anonymous_id:b"), cid("anonymous_id:a")


def test_redirect_follows_merges_transitively() -> None:
    graph = IdentityGraph()
    c, b, a = _chain(graph)
    assert graph.redirect(a) == graph.redirect(b) == graph.redirect(c) == c
    assert graph.redirect("cus_unknown") == "cus_unknown"
    assert list(graph.customers()) == [c]
    assert graph.identifiers_of_customer(a) == ()
    assert graph.identifiers_of_customer(c) == (
        "anonymous_id:a",
        "anonymous_id:b",
        "anonymous_id:c",
        HANAKO,
    )


def test_take_changes_returns_what_changed_once() -> None:
    graph = IdentityGraph()
    c, b, a = _chain(graph)
    changes = graph.take_changes()
    assert changes.identifiers == graph.identifiers_of_customer(c)
    assert changes.merged_away == (a, b)
    assert [(m.from_customer, m.into_customer, m.offset) for m in changes.merges] == [
        (a, b, 4),
        (b, c, 5),
    ]
    assert changes.rejections == ()
    assert ("", a, 2, b) in changes.rows
    assert (HANAKO, c, 0, "") in changes.rows
    empty = graph.take_changes()
    assert (empty.identifiers, empty.merged_away, empty.merges, empty.rows) == ((), (), (), ())

    apply(graph, identify(user_id="u1", email="hanako@example.jp"), 6)
    apply(graph, identify(user_id="u2", email="hanako@example.jp"), 7)
    later = graph.take_changes()
    assert later.identifiers == ("user_id:u1", "user_id:u2")
    assert [r.identifier for r in later.rejections] == [HANAKO]
    assert later.rows == (("user_id:u1", c, 0, ""), ("user_id:u2", cid("user_id:u2"), 3, ""))


def test_changes_rows_upserted_equal_the_snapshot() -> None:
    graph = IdentityGraph()
    stored: dict[str, tuple[str, str, int, str]] = {}
    for step in (_chain, lambda g: feed(g, [identify(user_id="u9", anonymous_id="b")], 9)):
        step(graph)
        for row in graph.take_changes().rows:
            stored[row[0] or row[1]] = row
    assert sorted(stored.values()) == graph.to_rows()


# -- snapshot and restore ---------------------------------------------------------


def _stream() -> list[AnyEvent]:
    return [
        page(anonymous_id="a1", message_id="m0"),
        identify(anonymous_id="a1", email="hanako@example.jp", message_id="m1"),
        message("line", "U1", anonymous_id="a2", message_id="m2"),
        identify(user_id="u1", email="hanako@example.jp", message_id="m3"),
        identify(user_id="u2", email="hanako@example.jp", message_id="m4"),
    ]


def _later() -> list[AnyEvent]:
    return [
        identify(user_id="u1", traits={"line_user_id": "U1"}, message_id="m5"),
        alias("u2", "a3", message_id="m6"),
        identify(anonymous_id="a3", phone="090-1234-5678", message_id="m7"),
        page(anonymous_id="new", message_id="m8"),
    ]


def test_rows_are_plain_json_friendly_values() -> None:
    graph = IdentityGraph()
    feed(graph, _stream())
    rows = graph.to_rows()
    assert ROW_COLUMNS == ("identifier", "customer_id", "seq", "merged_into")
    assert all(len(row) == 4 and [type(v) for v in row] == [str, str, int, str] for row in rows)
    assert [tuple(row) for row in json.loads(json.dumps(rows))] == rows


def test_restored_graph_behaves_like_the_original() -> None:
    rules = Rules(max_anonymous_ids=3)
    original = IdentityGraph(rules)
    feed(original, _stream())
    original.take_changes()
    restored = IdentityGraph.from_rows(original.to_rows(), rules)
    assert restored.to_rows() == original.to_rows()
    assert list(restored.customers()) == list(original.customers())
    assert feed(restored, _later(), 5) == feed(original, _later(), 5)
    assert restored.to_rows() == original.to_rows()
    assert restored.take_changes() == original.take_changes()


def test_restore_refuses_inconsistent_rows() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        IdentityGraph.from_rows(
            [("email:x@y.jp", "cus_a", 0, ""), ("email:x@y.jp", "cus_b", 1, "")]
        )
    with pytest.raises(ValueError, match="two sequence numbers"):
        IdentityGraph.from_rows([("anonymous_id:a", "cus_a", 0, ""), ("line:U", "cus_a", 1, "")])
    with pytest.raises(ValueError, match="two user ids"):
        IdentityGraph.from_rows([("user_id:1", "cus_a", 0, ""), ("user_id:2", "cus_a", 0, "")])
    with pytest.raises(ValueError, match="not merged into an older one"):
        IdentityGraph.from_rows([("line:U", "cus_a", 0, ""), ("", "cus_b", 1, "cus_c")])
    with pytest.raises(ValueError, match="not merged into an older one"):
        IdentityGraph.from_rows([("", "cus_a", 0, "cus_b"), ("", "cus_b", 1, "cus_a")])
    with pytest.raises(ValueError, match=r"0\.\.n-1"):
        IdentityGraph.from_rows([("anonymous_id:a", "cus_a", 5, "")])


def test_customer_id_collisions_get_a_deterministic_suffix() -> None:
    taken = cid("user_id:u1")
    graph = IdentityGraph.from_rows([("anonymous_id:other", taken, 0, "")])
    result = apply(graph, identify(user_id="u1"), 0)
    assert result.customer_id == f"{taken}_2"
    assert IdentityGraph.from_rows(graph.to_rows()).customer_of("user_id:u1") == f"{taken}_2"


def test_replaying_an_event_changes_nothing() -> None:
    graph = IdentityGraph()
    events = _stream()
    feed(graph, events)
    rows = graph.to_rows()
    graph.take_changes()
    again = feed(graph, events)
    assert all(r.merges == () and not r.created for r in again)
    assert graph.to_rows() == rows
    assert graph.take_changes().identifiers == ()


def test_fast_resolution_equals_the_dataclass() -> None:
    fast = _resolution("cus_1", (), (), True)
    assert fast == Resolution("cus_1", (), (), True)
    assert hash(fast) == hash(Resolution("cus_1", (), (), True))
    assert repr(fast) == repr(Resolution("cus_1", (), (), True))
