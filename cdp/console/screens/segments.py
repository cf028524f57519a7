"""Segments (``/console/segments``): the list, the builder with its live count, each
segment's page with its history and members, the CSV download.

- ``GET /console/segments``: built-in and saved segments (``SegmentCatalog``),
  each with its description and last recorded size (``segment_runs``).
- ``GET /console/segments/new`` and ``/console/segments/{name}/edit``: the
  builder (``static/builder.js``): conditions on profile fields and metrics,
  events with property filters and windows, sequences (A then B / A and not B
  within N days), in all/any groups, each negatable; it writes the definition
  in the segment language into ``textarea#definition`` (editable as text; the
  form follows the text) and asks ``POST /console/segments/preview`` for the
  live count and the SQL as the definition changes.
- ``POST /console/segments/preview`` (JSON, header ``X-CSRF-Token``, any
  role): ``{"definition": TEXT}`` → ``count``, ``sql``, ``values``, the parsed
  ``definition`` and ``warnings``; an invalid definition → 422 with the
  language's message naming the rule path (``error``, ``problems``).
- ``POST /console/segments`` (marketer+): save through ``SegmentCatalog.save``,
  the service of ``cdp segment save``; audited ``segment.save``.
- ``GET /console/segments/{name}``: definition, count now, membership history
  (``segment_lang.history``: members, entered, left per recorded run, chart and
  table), members with keyset paging; ``POST …/{name}/record`` (marketer+,
  embedded mode) records a run on the writer's thread, as ``cdp segment run
  --record`` does; ``GET …/{name}.csv`` (marketer+) downloads every member,
  audited ``segment.export_csv``.

Cost: the list is one query over ``segment_runs`` plus the catalog's files; a
live count is the segment's statement under ``count(DISTINCT …)``, interrupted
after ``COUNT_SECONDS`` and kept until the data moves; a segment page runs the
statement once (count and one keyset page of ``PAGE`` rows in one
statement); the builder's suggestions are one pass over ``facts`` per minute
(``segment_reads.Vocabulary``).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, Field

from cdp.console import i18n
from cdp.console.screens import segment_reads as reads
from cdp.console.screens.segment_builder import catalog_of
from cdp.console.screens.segment_words import WORDS
from cdp.console.web import (
    PREFIX,
    SECURITY_HEADERS,
    ConsoleContext,
    Viewer,
    check_csrf_header,
    checked_form,
    csv_stream,
    json_response,
    needs,
    render,
    signed_in,
    unavailable,
)
from cdp.errors import CdpError, LogUnavailableError, SegmentError
from cdp.services import segments as builtin_segments
from cdp.services.segment_lang import (
    SegmentCatalog,
    SegmentRuleError,
    UnknownSegmentError,
    history,
)
from cdp.services.segment_lang.catalog import CatalogEntry
from cdp.services.segment_lang.compiler import CompiledSegment, compile_definition
from cdp.services.segment_lang.parse import from_data, load_text, to_yaml

i18n.register(WORDS)

COUNT_SECONDS: Final = 5.0
"""The live count's bound: a statement still running then is interrupted."""
PAGE: Final = 50
"""Members per page on a segment's page."""
HISTORY_RUNS: Final = 100
"""Recorded runs shown (the most recent)."""
MAX_DEFINITION: Final = 100_000
"""Characters of definition text the preview and save accept."""
RESERVED: Final = frozenset({"new", "preview"})
"""Names a saved segment may not take: ``/console/segments/new`` is the builder."""
PREVIEW_NAME: Final = "preview"
"""The name a nameless definition is previewed under."""


class PreviewBody(BaseModel):
    """What the builder posts: the definition text (YAML or JSON)."""

    definition: str = Field(max_length=MAX_DEFINITION)


def _plain(data: Any) -> Any:
    """Parsed YAML as JSON values (dates become ISO text)."""
    return orjson.loads(orjson.dumps(data, default=str))


def router(ctx: ConsoleContext) -> APIRouter:
    """The Segments screen's routes (see the module docstring)."""
    routes = APIRouter(include_in_schema=False)
    catalog = SegmentCatalog(ctx.settings.data_dir)
    vocabulary = reads.Vocabulary(ctx.sql)
    counts = reads.CountCache()

    def live_count(name: str, compiled: CompiledSegment) -> int:
        mark = counts.mark(ctx.sql())
        key = (compiled.sql, orjson.dumps(compiled.values, default=str), mark)
        known = counts.get(key) if mark is not None else None
        if known is not None:
            return known
        members = reads.count(ctx.sql, name, compiled, COUNT_SECONDS)
        counts.put(key, members)
        return members

    def builder(
        request: Request,
        viewer: Viewer,
        text: str = "",
        name: str = "",
        description: str = "",
        original: str = "",
        error: str = "",
        status: int = 200,
    ) -> Response:
        initial: Any = None
        if text:
            try:
                initial = _plain(load_text(text, "yaml"))
            except SegmentError:
                initial = None
        return render(
            request,
            viewer,
            "segments/builder.html",
            status=status,
            text=text,
            name=name,
            description=description,
            original=original,
            error=error,
            data=catalog_of(viewer.lang, vocabulary, initial, f"{PREFIX}/segments/preview"),
        )

    @routes.get(PREFIX + "/segments")
    def segment_list(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
        try:
            last = reads.last_runs(ctx.sql())
        except LogUnavailableError:
            last = {}
        items = []
        for name in catalog.names():
            kind: str
            try:
                entry = catalog.get(name)
                kind, description = entry.kind, entry.description
            except CdpError as error:  # one broken file must not hide the others
                kind, description = "invalid", str(error)
            run = last.get(name)
            items.append(
                {
                    "name": name,
                    "kind": kind,
                    "description": description,
                    "last_count": run.members if run else None,
                    "last_run_at": run.run_at if run else None,
                }
            )
        return render(request, viewer, "segments/list.html", items=items)

    @routes.get(PREFIX + "/segments/new")
    def new_segment(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
        return builder(request, viewer)

    @routes.post(PREFIX + "/segments/preview")
    def preview(
        request: Request, body: PreviewBody, viewer: Annotated[Viewer, Depends(signed_in)]
    ) -> Response:
        check_csrf_header(request, viewer)
        started = time.perf_counter()
        try:
            data = load_text(body.definition, "yaml")
            if isinstance(data, dict) and not data.get("name"):
                data = {**data, "name": PREVIEW_NAME}
            definition = from_data(data)
            compiled = compile_definition(definition)
            members = live_count(definition.name, compiled)
        except SegmentRuleError as error:
            return json_response(
                {
                    "ok": False,
                    "error": str(error),
                    "problems": [{"path": p, "message": m} for p, m in error.problems],
                },
                422,
            )
        except LogUnavailableError as error:
            return json_response({"ok": False, "error": str(error), "problems": []}, 503)
        except SegmentError as error:
            return json_response({"ok": False, "error": str(error), "problems": []}, 422)
        return json_response(
            {
                "ok": True,
                "count": members,
                "sql": compiled.sql,
                "values": compiled.values,
                "definition": _plain(data),
                "warnings": vocabulary.warnings(definition),
                "ms": round((time.perf_counter() - started) * 1000, 1),
            }
        )

    @routes.post(PREFIX + "/segments")
    async def save(
        request: Request, viewer: Annotated[Viewer, Depends(needs("marketer"))]
    ) -> Response:
        form = await checked_form(request, viewer)
        text = form.get("definition", "")
        name = form.get("name", "").strip()
        description = form.get("description", "")
        original = form.get("original", "")
        replace = form.get("replace") == "1" or (bool(original) and original == name)
        try:
            if len(text) > MAX_DEFINITION:
                raise SegmentError(f"the definition is longer than {MAX_DEFINITION:,} characters")
            data = load_text(text, "yaml")
            if not isinstance(data, dict):
                from_data(data)  # raises, naming the problem
            data = _named(data, name, description if "description" in form else None)
            if data is not None:
                text = to_yaml(data)
                if data.get("name") in RESERVED:  # their pages are the console's own
                    raise SegmentError(f"the name {data['name']!r} is taken by the console")
            entry = await asyncio.to_thread(catalog.save, text, "yaml", replace=replace)
        except SegmentError as error:
            return builder(
                request, viewer, text, name, description, original, str(error), status=422
            )
        ctx.record(viewer, "segment.save", entry.name, kind=entry.kind, replace=replace)
        return RedirectResponse(f"{PREFIX}/segments/{entry.name}?saved=1", status_code=303)

    @routes.get(PREFIX + "/segments/{name}.csv")
    def download(name: str, viewer: Annotated[Viewer, Depends(needs("marketer"))]) -> Response:
        try:
            entry = catalog.get(name)
            compiled = entry.compile()
            rows = reads.member_rows(ctx.sql, compiled)
            first = next(rows, None)
        except LogUnavailableError as error:
            return Response(str(error), status_code=503, headers=SECURITY_HEADERS)
        except SegmentError as error:
            status = 404 if isinstance(error, UnknownSegmentError) else 422
            return Response(str(error), status_code=status, headers=SECURITY_HEADERS)
        ctx.record(viewer, "segment.export_csv", entry.name, params=compiled.params)
        every = itertools.chain([first] if first is not None else [], rows)
        return csv_stream(f"{entry.name}.csv", reads.MEMBER_COLUMNS, every)

    @routes.post(PREFIX + "/segments/{name}/record")
    async def record(
        request: Request, name: str, viewer: Annotated[Viewer, Depends(needs("marketer"))]
    ) -> Response:
        await checked_form(request, viewer)
        entry = await asyncio.to_thread(_entry_or_none, catalog, name)
        writer = getattr(request.app.state, "writer", None)
        if entry is None or ctx.mode != "embedded" or writer is None:
            return render(request, viewer, "segments/missing.html", status=404, name=name)

        def run_and_record(engine: Any) -> history.Run:
            return history.record(engine.con, catalog.run(engine.con, entry.name))

        run = await asyncio.wrap_future(writer.call(run_and_record))
        ctx.record(viewer, "segment.record", entry.name, members=run.members, run_id=run.run_id)
        return RedirectResponse(f"{PREFIX}/segments/{entry.name}?recorded=1", status_code=303)

    @routes.get(PREFIX + "/segments/{name}/edit")
    def edit(
        request: Request, name: str, viewer: Annotated[Viewer, Depends(signed_in)]
    ) -> Response:
        entry = _entry_or_none(catalog, name)
        if entry is None or entry.path is None:
            return render(request, viewer, "segments/missing.html", status=404, name=name)
        text = entry.path.read_text(encoding="utf-8")
        return builder(request, viewer, text, entry.name, entry.description, entry.name)

    @routes.get(PREFIX + "/segments/{name}")
    def page(
        request: Request,
        name: str,
        viewer: Annotated[Viewer, Depends(signed_in)],
        after: str | None = None,
        before: str | None = None,
    ) -> Response:
        try:
            entry = catalog.get(name)
        except SegmentError as error:
            if isinstance(error, UnknownSegmentError):
                return render(request, viewer, "segments/missing.html", status=404, name=name)
            return render(request, viewer, "segments/broken.html", status=422, error=str(error))
        compiled = entry.compile()
        try:
            listed = reads.members_page(ctx.sql, name, compiled, PAGE, COUNT_SECONDS, after, before)
            runs = history.runs(ctx.sql(), name)[-HISTORY_RUNS:]
        except LogUnavailableError as error:
            return unavailable(request, viewer, error)
        except SegmentError as error:
            return render(request, viewer, "segments/broken.html", status=422, error=str(error))
        return render(
            request,
            viewer,
            "segments/detail.html",
            entry=entry,
            definition=_definition_text(entry),
            sql=compiled.sql,
            count=listed.count,
            page=listed,
            columns=reads.MEMBER_COLUMNS,
            runs=runs,
            labels=[r.run_at.strftime("%Y-%m-%d %H:%M") for r in runs],
            saved=request.query_params.get("saved") == "1",
            recorded=request.query_params.get("recorded") == "1",
            can_record=ctx.mode == "embedded",
        )

    return routes


def _named(data: dict[str, Any], name: str, description: str | None) -> dict[str, Any] | None:
    """The document with the form's name (first) and description when they differ
    from the text's, else ``None`` (the text is saved as written)."""
    out = dict(data)
    if name and out.get("name") != name:
        out = {"name": name, **{k: v for k, v in out.items() if k != "name"}}
    differs = description is not None and out.get("description", "") != description
    if differs and (description or "description" in out):
        out["description"] = description
    return out if out != data else None


def _entry_or_none(catalog: SegmentCatalog, name: str) -> CatalogEntry | None:
    try:
        return catalog.get(name)
    except SegmentError:
        return None


def _definition_text(entry: CatalogEntry) -> str:
    """What the segment is, as its author wrote it: the saved file, or a built-in's SQL."""
    if entry.path is not None:
        return entry.path.read_text(encoding="utf-8")
    segment = builtin_segments.get(entry.name)
    return segment.sql.strip()
