"""The analytics screen: ``GET /console/analytics`` (the index) and one page per
analytic (``cdp.console.screens.analytics_pages``), each with a chart, the
same numbers in a table, and CSV downloads ``GET /console/analytics/<name>.csv``
(marketer or admin; audited as ``analytics.download``).

Cost: an analytic reads the whole event log (0.05–0.5 s on the demo shop), so
its result is kept per data mark (``cdp.console.report_cache``, the console's
one cache ``ctx.reports``, shared with the overview): a page view
costs the mark (two small statements) and the rendering while nothing changed,
and a busy shop recomputes each result at most once a minute in the background.
Opening the index starts every page's default result in the background.
The ``Server-Timing`` header says what a request cost and whether its result
was computed for it (``miss``), kept (``hit``) or kept from an older mark
(``stale``).
"""

from __future__ import annotations

import time
import urllib.parse
from datetime import datetime
from typing import Annotated, Any

import duckdb
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from cdp.console import web
from cdp.console.report_cache import Cached, Pending, ReportCache
from cdp.console.screens import analytics_words
from cdp.console.screens.analytics_form import Analytic, BadOption, label, pct
from cdp.console.screens.analytics_pages import MAX_COHORTS, PAGES
from cdp.console.web import PREFIX, ConsoleContext, Viewer, needs, render, signed_in
from cdp.errors import AnalyticsError, LogUnavailableError
from cdp.services.analytics._base import log_clock

analytics_words.register()

CSV_WAIT = 300.0
"""Seconds a download waits for its computation (a page gives up after the cache's wait)."""
RELOAD_SECONDS = 3


def _key(page: Analytic, options: dict[str, Any]) -> tuple[Any, ...]:
    return (page.name, tuple(sorted(options.items())))


def _computer(page: Analytic, options: dict[str, Any]) -> Any:
    def compute(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
        return {"reports": page.compute(con, options), "as_of": log_clock(con)}

    return compute


def _moment(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _timing(started: float, outcome: str) -> dict[str, str]:
    spent = (time.perf_counter() - started) * 1000
    return {"Server-Timing": f'total;dur={spent:.1f}, cache;desc="{outcome}"'}


def router(ctx: ConsoleContext) -> APIRouter:
    """The index, every analytics page and its CSV downloads."""
    routes = APIRouter(include_in_schema=False)
    cache = ctx.reports  # the console's one result cache (the overview's too)

    @routes.get(PREFIX + "/analytics")
    def index(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
        started = time.perf_counter()
        defaults = [(p, p.options({})) for p in PAGES]
        try:
            begun = cache.prefetch([(_key(p, o), _computer(p, o)) for p, o in defaults])
        except LogUnavailableError as error:
            return web.unavailable(request, viewer, error)
        answer = render(request, viewer, "analytics/index.html", pages=[p.name for p in PAGES])
        answer.headers.update(_timing(started, f"prefetch {begun}"))
        return answer

    for page in PAGES:
        routes.add_api_route(PREFIX + f"/analytics/{page.name}", _page(ctx, cache, page))
        for name, report in page.downloads.items():
            routes.add_api_route(
                PREFIX + f"/analytics/{name}.csv", _download(ctx, cache, page, name, report)
            )
    return routes


def _page(ctx: ConsoleContext, cache: ReportCache, page: Analytic) -> Any:
    """The handler of one analytics page."""
    template = f"analytics/{page.name.replace('-', '_')}.html"
    has_options = bool(page.options({}))

    def show(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
        started, wall = time.perf_counter(), time.time()
        query = dict(request.query_params)
        kept = {k: v for k, v in query.items() if k != "page"}

        def page_query(number: int) -> str:
            return urllib.parse.urlencode({**kept, "page": number})

        def pair_query(x: str, y: str) -> str:
            return urllib.parse.urlencode({**kept, "x": x, "y": y})

        asked = f"?{urllib.parse.urlencode(kept)}" if kept else ""

        base: dict[str, Any] = {
            "page": page.name,
            "has_options": has_options,
            "downloads": [
                (
                    f"download-{n}",
                    f"{PREFIX}/analytics/{n}.csv{asked}",
                    viewer.t("analytics.download", name=f"{n}.csv"),
                )
                for n in page.downloads
            ],
            "form": query,
            "pct": pct,
            "label": label,
            "max_cohorts": MAX_COHORTS,
            "page_query": page_query,
            "pair_query": pair_query,
            "error": None,
            "pending": False,
        }

        def failed(message: str) -> Response:
            defaults = page.options({})
            return render(
                request, viewer, template, status=400, options=defaults,
                cli=page.cli(defaults), **{**base, "error": message},
            )  # fmt: skip

        try:
            options = page.options(query)
            result = cache.get(_key(page, options), _computer(page, options))
            if isinstance(result, Pending):
                answer = render(
                    request, viewer, template, options=options, cli=page.cli(options),
                    **{**base, "pending": True},
                )  # fmt: skip
                answer.headers.update(_timing(started, "pending"))
                answer.headers["Refresh"] = str(RELOAD_SECONDS)
                return answer
            view = page.view(result.value["reports"], options, query, viewer.t)
        except BadOption as error:
            return failed(viewer.t("analytics.bad_option", option=error.option, value=error.value))
        except AnalyticsError as error:
            return failed(viewer.t("analytics.error", reason=str(error)))
        except LogUnavailableError as error:
            return web.unavailable(request, viewer, error)
        answer = render(
            request,
            viewer,
            template,
            options=options,
            cli=page.cli(options),
            v=view,
            fresh=result.fresh,
            as_of=_moment(result.value["as_of"]),
            computed=datetime.fromtimestamp(result.computed_at).strftime("%H:%M:%S"),
            compute_ms=f"{result.seconds * 1000:,.0f}",
            **base,
        )
        outcome = "miss" if result.computed_at >= wall else "hit" if result.fresh else "stale"
        answer.headers.update(_timing(started, outcome))
        return answer

    show.__name__ = f"analytics_{page.name.replace('-', '_')}"
    return show


def _download(
    ctx: ConsoleContext, cache: ReportCache, page: Analytic, name: str, report: str
) -> Any:
    """The handler of one CSV download (the whole report, as ``--csv FILE`` writes it)."""

    def download(
        request: Request, viewer: Annotated[Viewer, Depends(needs("marketer"))]
    ) -> Response:
        try:
            options = page.options(dict(request.query_params))
            result = cache.get(_key(page, options), _computer(page, options), wait=CSV_WAIT)
        except BadOption as error:
            message = viewer.t("analytics.bad_option", option=error.option, value=error.value)
            return render(request, viewer, "unavailable.html", status=400, reason=message)
        except AnalyticsError as error:
            message = viewer.t("analytics.error", reason=str(error))
            return render(request, viewer, "unavailable.html", status=400, reason=message)
        except LogUnavailableError as error:
            return web.unavailable(request, viewer, error)
        if not isinstance(result, Cached):
            message = viewer.t("analytics.pending")
            return render(request, viewer, "unavailable.html", status=503, reason=message)
        chosen = result.value["reports"][report]
        ctx.record_now(  # on disk in the audit log before the data leaves
            viewer,
            "analytics.download",
            f"analytics:{name}",
            rows=len(chosen.rows),
            **{k: v for k, v in options.items() if v is not None},
        )
        return web.csv_download(f"{name}.csv", chosen.columns, chosen.rows)

    download.__name__ = f"analytics_{name.replace('-', '_')}_csv"
    return download
