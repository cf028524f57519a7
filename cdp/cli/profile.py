"""``cdp profile``: who is this?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cdp.cli._app import (
    app,
    console,
    errors,
    opts_of,
    print_json,
    table,
)

if TYPE_CHECKING:
    from cdp.read import lookup as lookup_service


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
    from cdp import bootstrap  # noqa: PLC0415
    from cdp.read import lookup as lookup_service  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        con = bootstrap.open_read(opts.settings)
        try:
            view = lookup_service.lookup(
                con, identifier, opts.settings.runtime_config().scoring, recent, reasons=None
            )
        finally:
            con.close()
    if opts.json:
        print_json(view.as_dict())
    else:
        print_profile(view)


def _phone(raw: str | None) -> str | None:
    """A phone trait as typed, shown in E.164 when it parses (full-width digits too)."""
    from schemas.identifiers import normalise_phone  # noqa: PLC0415

    return (normalise_phone(raw) or raw) if raw else None


#: Lead-score reasons the table shows (the JSON holds every one).
SHOWN_REASONS = 5
#: What an unknown value shows as (never "None").
MISSING = "—"


def _yen(value: object) -> str:
    """An amount of money as ``¥1,234``; ``—`` when there is none (no orders)."""
    if value is None:
        return MISSING
    try:
        return f"¥{float(str(value)):,.0f}"
    except ValueError:
        return f"¥{value}"


def _sales_rows(p: dict[str, object]) -> list[tuple[str, str]]:
    """The sales part (docs/sales.md), shown only for people the SFA knows."""
    if not p.get("deals_count") and not p.get("sales_activities"):
        return []
    return [
        (
            "deals",
            f"{p.get('open_deals') or 0} open ({_yen(p.get('open_deal_value'))}), "
            f"{p.get('deals_won') or 0} won ({_yen(p.get('won_revenue'))}), "
            f"{p.get('deals_lost') or 0} lost",
        ),
        (
            "sales",
            f"owner {p.get('sales_owner') or MISSING}, stage {p.get('last_deal_stage') or MISSING}, "
            f"last touch {p.get('last_sales_touch_at') or MISSING} "
            f"({p.get('last_activity_type') or 'no activity'}; "
            f"{p.get('sales_activities') or 0} activities)",
        ),
    ]


def print_profile(view: lookup_service.ProfileView) -> None:
    """A readable rendering of a profile lookup."""
    from rich.table import Table  # noqa: PLC0415

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
            f"{p.get('orders_count') or 0} / {_yen(p.get('revenue'))}  "
            f"(AOV {_yen(p.get('avg_order_value'))})",
        ),
        *_sales_rows(p),
        (
            "first / last seen",
            f"{p.get('first_seen') or MISSING} / {p.get('last_seen') or MISSING}",
        ),
        (  # the shop's contacts, apart from what the customer did (docs/segments.md)
            "last contacted",
            f"{p.get('last_contacted_at') or MISSING}  "
            f"(contacts in the last 30 days: {p.get('contacts_30d') or 0})",
        ),
        (
            "consent",
            ", ".join(k for k in ("email", "ads", "line", "sms") if p.get(f"consent_{k}")) or "-",
        ),
        ("identifiers", ", ".join(view.identifiers)),
    ):
        shown.add_row(label, "" if value is None else str(value))
    console.print(shown)
    reasons = lead["explanation"]
    if reasons:
        title = "why this score"
        if len(reasons) > SHOWN_REASONS:
            title += f" (top {SHOWN_REASONS} of {len(reasons)} reasons; --json for all)"
        console.print(
            table(
                title,
                ["rule", "day", "events", "points", "decayed"],
                [
                    (e["rule"], e["day"], e["events"], e["points"], f"{e['decayed_points']:.2f}")
                    for e in reasons[:SHOWN_REASONS]
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
