"""HTTP route of the form source: ``POST /v1/forms/{form_id}``.

The body parsing and the mapping are ``connectors.sources.forms`` (pure apart
from reading ``<data dir>/forms.toml``); the route reads the post, maps it to
events, hands them to the writer and answers ``303`` to the form's redirect
(or JSON). A post to a form that is not configured is refused ``404`` and not
stored (its caller is not authenticated); a configured form whose post cannot
become events is kept as a dead letter with the reason.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from cdp.config import Settings
from cdp.errors import CdpError, UnmappableError
from cdp.http.errors import error_response
from cdp.http.intake import Intake, read_body
from cdp.runtime.writer import Backpressure
from cdp.services import collector
from cdp.services.message_ids import form_seed
from connectors.sources import forms

MAX_FORM_BYTES: Final = 256 * 1024
# The operators' name for the server's log, the same for every route.
log = logging.getLogger("cdp.api")


def router(settings: Settings, intake: Intake) -> APIRouter:
    """The form route for the forms of ``settings``' data directory (read once, here)."""
    routes = APIRouter()
    form_config = forms.load_forms(settings.data_dir / "forms.toml")

    @routes.post("/v1/forms/{form_id}", tags=["forms"])
    async def form_post(form_id: str, request: Request) -> Response:
        """An HTML form post (urlencoded or multipart) or JSON, mapped by forms.toml to
        Form Submitted + the identify it implies (+ Consent Updated). 303 to the form's
        redirect when configured, else JSON."""
        received_at = datetime.now(UTC)
        try:
            mapping = form_config.mapping_for(form_id)
        except UnmappableError as error:  # unconfigured: an unauthenticated caller, not stored
            log.info("form post refused: %s", error)  # the hint (a file name) stays here
            return error_response(404, f"the form {form_id!r} is not configured")
        source = f"form:{form_id}"
        try:
            body = await read_body(request, MAX_FORM_BYTES)
        except collector.RequestRejected as error:
            return error_response(error.status, str(error))
        try:
            fields = forms.parse_body(request.headers.get("content-type", ""), body)
            seed = form_seed()  # every post its own events, as Segment gives every message an id
            events = forms.to_events(form_id, fields, mapping, received_at, seed)
            records = collector.to_records(events, received_at, source)
        except (CdpError, ValueError) as error:
            status = error.status if isinstance(error, collector.RequestRejected) else 400
            await intake.dead_letter(source, f"form:{form_id}", str(error), body, received_at)
            return error_response(status, str(error))
        try:
            await intake.submit(records)
        except Backpressure as error:
            return error_response(503, str(error), headers={"Retry-After": str(error.retry_after)})
        if mapping.redirect:
            return RedirectResponse(mapping.redirect, status_code=303)
        return JSONResponse({"success": True, "events": len(records)})

    return routes
