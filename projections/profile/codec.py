"""The profile as plain JSON values (a snapshot), and back: ``to_json``, ``from_json``."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, Final

from projections.profile.lww import Lww, from_iso, iso
from projections.profile.parts import (
    CampaignKey,
    EmailStats,
    Order,
    Refund,
    SnsAccount,
    SurveyAnswer,
    Ticket,
    Touches,
    lww_from_json,
    lww_to_json,
    map_from_json,
    map_to_json,
    opt_from_iso,
    opt_iso,
    opt_lww_from_json,
    opt_lww_to_json,
)
from projections.profile.sales import Deal, SalesActivity
from projections.profile.state import State, TraitValue

#: Version of the ``to_json`` layout; ``from_json`` refuses others. Version 2
#: (contacts apart from activity) changed what ``first_seen``/``last_seen``
#: mean, so a version 1 snapshot cannot be read as one: the projections are
#: rebuilt from the log (``cdp.adapters.duckdb.store.create`` does it for the embedded tables).
#: Version 3 added the ``sales`` part (``deals``, ``sales_activities``): a version 2
#: snapshot may have folded Deal events as plain tracks, so it is rebuilt too.
JSON_VERSION: Final = 3


def _trait_to_json(value: TraitValue) -> str | int:
    return value.isoformat() if isinstance(value, date) else value


def _trait_from_json(name: str, data: dict[str, Any]) -> Lww[TraitValue]:
    # ``birthday`` is the one reserved trait whose JSON form is not its value.
    return lww_from_json(data, date.fromisoformat if name == "birthday" else None)


def _survey_to_json(answer: SurveyAnswer) -> dict[str, Any]:
    return {"answers": dict(answer.answers), "nps": answer.nps}


def _survey_from_json(data: dict[str, Any]) -> Lww[SurveyAnswer]:
    return lww_from_json(data, lambda value: SurveyAnswer(**value))


def to_json(state: State) -> dict[str, Any]:
    """The profile as plain JSON values (a snapshot); ``from_json`` is its inverse."""
    return {
        "version": JSON_VERSION,
        "traits": {k: lww_to_json(v, _trait_to_json) for k, v in state.traits.items()},
        "custom_traits": map_to_json(state.custom_traits, lww_to_json),
        "consents": map_to_json(state.consents, lww_to_json),
        "first_seen": opt_iso(state.first_seen),
        "last_seen": opt_iso(state.last_seen),
        "last_contacted": opt_iso(state.last_contacted),
        "contacts": {day.isoformat(): n for day, n in sorted(state.contacts.items())},
        "message_counts": dict(state.message_counts),
        "track_counts": dict(state.track_counts),
        "last_page": opt_lww_to_json(state.last_page),
        "viewed_products": map_to_json(state.viewed_products, Touches.to_json),
        "carted_products": map_to_json(state.carted_products, Touches.to_json),
        "orders": map_to_json(state.orders, Order.to_json),
        "refunds": map_to_json(state.refunds, Refund.to_json),
        # Keys are tuples, so campaigns are a list, sorted so equal states give equal JSON.
        "campaigns": [
            {"source": key.source, "medium": key.medium, "name": key.name, **touches.to_json()}
            for key, touches in sorted(state.campaigns.items(), key=lambda kv: kv[0].sort_key())
        ],
        "emails": map_to_json(state.emails, EmailStats.to_json),
        "sns": map_to_json(state.sns, SnsAccount.to_json),
        "tickets": map_to_json(state.tickets, Ticket.to_json),
        "surveys": {k: lww_to_json(v, _survey_to_json) for k, v in state.surveys.items()},
        "nps": opt_lww_to_json(state.nps),
        "groups": map_to_json(state.groups, iso),
        "forms": map_to_json(state.forms, Touches.to_json),
        "deals": map_to_json(state.deals, Deal.to_json),
        "sales_activities": map_to_json(state.sales_activities, SalesActivity.to_json),
    }


def from_json(data: Mapping[str, Any]) -> State:
    """Inverse of ``to_json``; raise ``ValueError`` for another snapshot version."""
    if data.get("version") != JSON_VERSION:
        raise ValueError(
            f"profile snapshot version {data.get('version')!r} is not {JSON_VERSION}: "
            "rebuild the projections from the log (`cdp replay`; distributed: reprocess the log)"
        )
    return State(
        traits={k: _trait_from_json(k, v) for k, v in data["traits"].items()},
        custom_traits=map_from_json(data["custom_traits"], lww_from_json),
        consents=map_from_json(data["consents"], lww_from_json),
        first_seen=opt_from_iso(data["first_seen"]),
        last_seen=opt_from_iso(data["last_seen"]),
        last_contacted=opt_from_iso(data["last_contacted"]),
        contacts={date.fromisoformat(day): n for day, n in data["contacts"].items()},
        message_counts=dict(data["message_counts"]),
        track_counts=dict(data["track_counts"]),
        last_page=opt_lww_from_json(data["last_page"]),
        viewed_products=map_from_json(data["viewed_products"], Touches.from_json),
        carted_products=map_from_json(data["carted_products"], Touches.from_json),
        orders=map_from_json(data["orders"], Order.from_json),
        refunds=map_from_json(data["refunds"], Refund.from_json),
        campaigns={
            CampaignKey(c["source"], c["medium"], c["name"]): Touches.from_json(c)
            for c in data["campaigns"]
        },
        emails=map_from_json(data["emails"], EmailStats.from_json),
        sns=map_from_json(data["sns"], SnsAccount.from_json),
        tickets=map_from_json(data["tickets"], Ticket.from_json),
        surveys=map_from_json(data["surveys"], _survey_from_json),
        nps=opt_lww_from_json(data["nps"]),
        groups=map_from_json(data["groups"], from_iso),
        forms=map_from_json(data["forms"], Touches.from_json),
        deals=map_from_json(data["deals"], Deal.from_json),
        sales_activities=map_from_json(data["sales_activities"], SalesActivity.from_json),
    )
