"""``cdp profile``: who is this?"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cdp import lookup as lookup_service
from cdp.cli._app import (
    app,
    console,
    errors,
    opts_of,
    print_json,
    table,
)
from cdp.engine import Engine
from schemas.identifiers import normalise_phone


# ------------------------------------------------------------------- profile
@app.command("profile")
def profile_command(
    ctx: typer.Context,
    identifier: Annotated[
        str,
        typer.Argument(
            help="kind:value (email:, user_id:, anonymous_id:, phone:, line:, "
            "x:, instagram:) or a cus_ customer id."
        ),
    ],
    recent: Annotated[int, typer.Option(min=0, max=1000, help="Recent events to show.")] = 10,
) -> None:
    """Look a customer up by any identifier: unified profile, lead score, stage, why."""
    opts = opts_of(ctx)
    with errors():
        con = Engine.open_read_only(opts.settings)
        try:
            view = lookup_service.lookup(
                con, identifier, opts.settings.runtime_config().scoring, recent
            )
        finally:
            con.close()
    if opts.json:
        print_json(view.as_dict())
    else:
        print_profile(view)


def _phone(raw: str | None) -> str | None:
    """A phone trait as typed, shown in E.164 when it parses (full-width digits too)."""
    return (normalise_phone(raw) or raw) if raw else None


def print_profile(view: lookup_service.ProfileView) -> None:
    """A readable rendering of a profile lookup."""
    p, lead = view.profile, view.lead
    console.print(f"[bold]{view.customer_id}[/]  (matched {view.matched})")
    shown = Table(show_header=False, box=None, pad_edge=False)
    shown.add_column(style="dim")
    shown.add_column()
    for label, value in (
        ("name", p.get("name")),
        ("email", p.get("email")),
        ("phone", _phone(p.get("phone"))),
        (
            "gender / age",
            f"{p.get('gender') or '-'} / {p.get('age') or '-'} ({p.get('age_band') or '-'})",
        ),
        ("region", p.get("region")),
        ("preferred channel", p.get("preferred_channel")),
        ("stage", f"{lead['lifecycle_stage']}  (funnel: {lead['funnel_stage']})"),
        (
            "lead score",
            f"{(lead['score_now'] or 0):.1f} now, {(lead['score_at_last_activity'] or 0):.1f} at last activity",
        ),
        (
            "orders / LTV",
            f"{p.get('orders_count')} / ¥{p.get('revenue')}  (AOV ¥{p.get('avg_order_value')})",
        ),
        ("first / last seen", f"{p.get('first_seen')} / {p.get('last_seen')}"),
        (
            "consent",
            ", ".join(k for k in ("email", "ads", "line", "sms") if p.get(f"consent_{k}")) or "-",
        ),
        ("identifiers", ", ".join(view.identifiers)),
    ):
        shown.add_row(label, "" if value is None else str(value))
    console.print(shown)
    if lead["explanation"]:
        console.print(
            table(
                "why this score",
                ["rule", "day", "events", "points", "decayed"],
                [
                    (e["rule"], e["day"], e["events"], e["points"], f"{e['decayed_points']:.2f}")
                    for e in lead["explanation"]
                ],
            )
        )
    if view.merges:
        console.print(
            table(
                "merges",
                ["from", "into", "reason", "event"],
                [
                    (m["from_customer"], m["into_customer"], m["reason"], m["message_id"])
                    for m in view.merges
                ],
            )
        )
    if view.recent_events:
        console.print(
            table(
                "recent events",
                ["time", "type", "event"],
                [(e["timestamp"], e["type"], e["event"] or "") for e in view.recent_events],
            )
        )
