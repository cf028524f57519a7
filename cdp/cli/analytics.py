"""``cdp analytics``: RFM, LTV, retention, next purchase, sequences, email A/B, funnel,
campaigns (marketing → sales conversion).

Every command prints a table (``--json``: the whole report as JSON) and can
also write its rows to a CSV file (``--csv FILE``). docs/analytics.md defines
the measures.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cdp.cli._app import console, errors, opts_of, print_json, sub_app, table
from cdp.cli._defaults import ANALYTICS_DEFAULT_TZ

if TYPE_CHECKING:
    import duckdb

    from cdp.services import analytics

analytics_app = sub_app(
    "analytics", "CRM analytics over the event log: RFM, cohorts, predictions, patterns, A/B."
)

CsvOption = Annotated[
    Path | None, typer.Option("--csv", help="Also write the rows to this CSV file.")
]
PeriodOption = Annotated[str, typer.Option(help="Cohort period: week, month or quarter.")]
TzOption = Annotated[str, typer.Option("--tz", help="Time zone calendar periods are cut in.")]


def _run(
    ctx: typer.Context,
    compute: Callable[[duckdb.DuckDBPyConnection], analytics.Report],
    csv_file: Path | None,
    show: Callable[[analytics.Report], None] | None = None,
) -> None:
    """Open the data read-only, compute, write the CSV, print JSON or a table."""
    from cdp import bootstrap  # noqa: PLC0415
    from connectors.destinations.csv_file import write_csv  # noqa: PLC0415

    opts = opts_of(ctx)
    with errors():
        con = bootstrap.open_read(opts.settings)
        try:
            report = compute(con)
        finally:
            con.close()
        if csv_file is not None:
            write_csv(csv_file, report.columns, report.rows)
    if opts.json:
        print_json(report.to_dict())
        return
    if show is not None:
        show(report)
    else:
        console.print(table(report.name, list(report.columns), report.rows))
    _print_summary(report)
    if csv_file is not None:
        console.print(f"wrote {len(report.rows):,} rows to {csv_file}")


def _print_summary(report: analytics.Report) -> None:
    shown = {k: v for k, v in report.summary.items() if v not in (None, [], {})}
    console.print(", ".join(f"{k}: {v}" for k, v in shown.items()), highlight=False)


def _percent(value: Any) -> str:
    return "" if value is None else f"{100 * value:.1f}%"


@analytics_app.command("rfm")
def rfm_command(
    ctx: typer.Context,
    customers: Annotated[
        bool, typer.Option("--customers", help="List customers' scores, not segments.")
    ] = False,
    segment: Annotated[
        str | None, typer.Option(help="With --customers: only this RFM segment.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="With --customers: at most N.")] = None,
    grid: Annotated[
        bool, typer.Option("--grid", help="Customers and revenue per R x F score cell.")
    ] = False,
    csv_file: CsvOption = None,
) -> None:
    """RFM segments (customers, revenue) or, with --customers, each buyer's scores
    (--grid: per R x F cell)."""
    from cdp.services import analytics  # noqa: PLC0415

    if grid:
        _run(ctx, analytics.rfm_grid, csv_file)
    elif customers:
        _run(ctx, lambda con: analytics.rfm_scores(con, segment=segment, limit=limit), csv_file)
    else:
        _run(ctx, analytics.rfm, csv_file)


@analytics_app.command("ltv")
def ltv_command(
    ctx: typer.Context,
    period: PeriodOption = "month",
    tz: TzOption = ANALYTICS_DEFAULT_TZ,
    currency: Annotated[
        str | None, typer.Option(help="Currency to sum [the most used one].")
    ] = None,
    csv_file: CsvOption = None,
) -> None:
    """Cumulative revenue per customer by acquisition cohort and periods since."""
    from cdp.services import analytics  # noqa: PLC0415

    def show(report: analytics.Report) -> None:
        from cdp.services.analytics.cohorts import pivot  # noqa: PLC0415

        header, matrix = pivot(report, "ltv")
        console.print(table(f"LTV per customer by {period} since first order", header, matrix))

    _run(
        ctx,
        lambda con: analytics.ltv(con, period=period, tz=tz, currency=currency),
        csv_file,
        show,
    )


@analytics_app.command("retention")
def retention_command(
    ctx: typer.Context,
    period: PeriodOption = "month",
    tz: TzOption = ANALYTICS_DEFAULT_TZ,
    csv_file: CsvOption = None,
) -> None:
    """Share of each acquisition cohort that ordered again, period by period."""
    from cdp.services import analytics  # noqa: PLC0415

    def show(report: analytics.Report) -> None:
        from cdp.services.analytics.cohorts import pivot  # noqa: PLC0415

        header, matrix = pivot(report, "retention", _percent)
        console.print(table(f"purchase retention by {period} since first order", header, matrix))

    _run(ctx, lambda con: analytics.retention(con, period=period, tz=tz), csv_file, show)


@analytics_app.command("next-purchase")
def next_purchase_command(
    ctx: typer.Context,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only overdue customers.")] = False,
    prior_weight: Annotated[
        float, typer.Option(min=0, help="Weight of the population prior, in gaps.")
    ] = 5.0,
    backtest: Annotated[
        bool,
        typer.Option("--backtest", help="Measure the method on held-out last orders instead."),
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, help="At most N customers.")] = None,
    csv_file: CsvOption = None,
) -> None:
    """Predicted next order per repeat customer, with an interval and an overdue flag."""
    from cdp.services import analytics  # noqa: PLC0415

    if backtest:
        _run(ctx, lambda con: analytics.backtest(con, prior_weight=prior_weight), csv_file)
        return
    _run(
        ctx,
        lambda con: analytics.next_purchase(
            con, prior_weight=prior_weight, overdue_only=overdue, limit=limit
        ),
        csv_file,
    )


@analytics_app.command("sequences")
def sequences_command(
    ctx: typer.Context,
    within_days: Annotated[int, typer.Option(min=1, help="Y must follow X within N days.")] = 90,
    product: Annotated[str | None, typer.Option(help="Only patterns starting at X.")] = None,
    min_support: Annotated[
        float, typer.Option(min=0, help="Drop pairs below this share of buyers.")
    ] = 0.01,
    min_customers: Annotated[int, typer.Option(min=0, help="Drop pairs with fewer customers.")] = 5,
    limit: Annotated[int, typer.Option(min=1, help="Show the top N pairs.")] = 20,
    then: Annotated[
        str | None,
        typer.Option(help="With --product X: the time from X to this Y, week by week."),
    ] = None,
    csv_file: CsvOption = None,
) -> None:
    """Patterns "buyers of X buy Y within N days", ranked by lift (--then Y: the
    distribution of the time from X to Y)."""
    from cdp.services import analytics  # noqa: PLC0415

    if then is not None:
        if product is None:
            raise typer.BadParameter("--then needs --product (the X of the pair)")
        _run(
            ctx,
            lambda con: analytics.sequence_gaps(
                con, product=product, then=then, within_days=within_days
            ),
            csv_file,
        )
        return
    _run(
        ctx,
        lambda con: analytics.sequences(
            con,
            within_days=within_days,
            product=product,
            min_support=min_support,
            min_customers=min_customers,
            limit=limit,
        ),
        csv_file,
    )


@analytics_app.command("email-ab")
def email_ab_command(
    ctx: typer.Context,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign id.")] = None,
    alpha: Annotated[float, typer.Option(help="Significance level of the z-test.")] = 0.05,
    csv_file: CsvOption = None,
) -> None:
    """Open and click rates per campaign variant, z-tested against the control."""
    from cdp.services import analytics  # noqa: PLC0415

    _run(ctx, lambda con: analytics.email_ab(con, campaign=campaign, alpha=alpha), csv_file)


@analytics_app.command("funnel")
def funnel_command(ctx: typer.Context, csv_file: CsvOption = None) -> None:
    """Customers per funnel stage, lifecycle rung and sales rung (lead → hot lead →
    handed to sales → deal → won), with conversion ratios. Handed to sales: pushed
    to an SFA destination (cdp destinations push) or has a deal."""
    from cdp.services import analytics  # noqa: PLC0415

    handed = _handed(ctx)
    _run(ctx, lambda con: analytics.funnel(con, handed), csv_file)


def _handed(ctx: typer.Context) -> set[str]:
    """Customer ids whose record an SFA push created (the push journals' record ids)."""
    from connectors.destinations.sfa.pushed import pushed_people  # noqa: PLC0415

    with errors():
        return pushed_people(opts_of(ctx).settings.data_dir)


@analytics_app.command("campaigns")
def campaigns_command(
    ctx: typer.Context,
    touch: Annotated[
        str, typer.Option(help="Attribute to the first touch, the last touch, or both.")
    ] = "both",
    csv_file: CsvOption = None,
) -> None:
    """Marketing → sales conversion per utm source/campaign: leads, hot leads, handed
    to sales (pushed to an SFA or has a deal), deals, won, won revenue (docs/sales.md)."""
    from cdp.services import analytics  # noqa: PLC0415

    handed = _handed(ctx)
    _run(
        ctx,
        lambda con: analytics.campaigns(con, touch=touch, handed=handed),
        csv_file,
        _show_campaigns,
    )


def _show_campaigns(report: analytics.Report) -> None:
    """The ladder per touch, narrow enough for a terminal (CSV and --json have every column)."""
    head = [
        "touch",
        "source",
        "campaign",
        "leads",
        "hot",
        "handed",
        "deals",
        "won",
        "won ¥",
        "lead→won",
    ]
    rows = [
        (r["touch"], r["utm_source"], r["utm_campaign"], r["leads"], r["hot_leads"],
         r["handed_to_sales"], r["deals"], r["won"], f"{r['won_revenue']:,.0f}", r["lead_to_won"])
        for r in report.records()
    ]  # fmt: skip
    console.print(table(report.name, head, rows))
    summary = report.summary
    console.print(
        f"leads {summary['leads']}, deals {summary['deals']}, won {summary['won']}, "
        f"won revenue ¥{summary['won_revenue']:,.0f}; handed to sales = {summary['handed_to_sales']}"
    )
