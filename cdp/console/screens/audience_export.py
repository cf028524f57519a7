"""Audience files downloaded from the console, made as ``cdp export`` makes them.

The segment's members who consented to the purpose (the format's, or the one
chosen), minus the suppressed, written by the file destination's own writer
(``connectors.destinations.registry``) into a private temporary directory and
sent as a download; the directory goes once it is sent. Like the CLI, each
file is an APPI provision (``connectors.destinations.privacy.record_export``:
who receives it, the people and data items in it; the account is
``console-download:<user>:<file name>``) and an audit line ``export`` with the
counts, never a person.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdp.console.web import ConsoleContext, Viewer
from cdp.errors import ConfigError
from cdp.services.query import audience
from cdp.services.segment_lang import SegmentCatalog
from connectors.destinations import registry
from connectors.destinations.accounting import NO_CONSENT
from connectors.destinations.privacy import SUPPRESSED, record_export, without_suppressed

CONSENTS = ("ads", "email", "line", "sms", "none")
"""Consent purposes a file may be filtered on (``cdp export --consent``)."""


@dataclass(frozen=True, slots=True)
class ExportFile:
    """A written audience file waiting to be sent (``remove`` once sent)."""

    path: Path
    filename: str
    summary: dict[str, Any]

    def remove(self) -> None:
        """Delete the file and its private directory."""
        shutil.rmtree(self.path.parent, ignore_errors=True)


def parse_options(text: str) -> dict[str, str]:
    """``hashed=false identifier=phone`` (spaces or commas between) as a dict;
    ``ConfigError`` naming a part without ``=``."""
    options: dict[str, str] = {}
    for part in text.replace(",", " ").split():
        name, sep, value = part.partition("=")
        if not sep or not name:
            raise ConfigError(f"option {part!r} must be name=value (e.g. hashed=false)")
        options[name] = value
    return options


def export(
    ctx: ConsoleContext,
    viewer: Viewer,
    segment: str,
    fmt: str,
    consent: str = "",
    recipient: str = "",
    options_text: str = "",
) -> ExportFile:
    """Write ``segment``'s audience in format ``fmt``, record the provision and audit it.

    ``ConfigError`` / ``NotFoundError`` name a bad format, option, consent or
    segment; ``LogUnavailableError`` when this server has no SQL reads."""
    destination = registry.get(fmt)
    options = destination.resolve_options(parse_options(options_text))
    purpose = consent or destination.consent
    if purpose not in CONSENTS:
        raise ConfigError(f"consent {purpose!r}: use one of {', '.join(CONSENTS)}")
    data_dir = ctx.settings.data_dir
    catalog = SegmentCatalog(data_dir)
    catalog.get(segment)  # an unknown name is refused before any query
    con = ctx.sql()
    found = audience(con, segment, None, None if purpose == "none" else purpose, catalog=catalog)
    found, suppressed = without_suppressed(con, data_dir, found)
    filename = f"{segment}-{fmt}{destination.extension}"
    folder = Path(tempfile.mkdtemp(prefix="cdp-console-export-"))
    path = folder / filename
    try:
        written = destination.write(path, found, options)
        record_export(
            data_dir,
            destination=fmt,
            recipient=recipient.strip() or None,
            path=Path(f"console-download:{viewer.user.name}:{filename}"),
            found=found,
            people=written.people,
            items=written.items,
        )
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    excluded = {NO_CONSENT: found.excluded_without_consent, **written.excluded}
    if suppressed:
        excluded[SUPPRESSED] = suppressed
    summary = {
        "destination": fmt,
        "file": filename,
        "members": found.members,
        "exported": written.exported,
        "rows": written.records,
        "consent": purpose,
        "excluded": excluded,
    }
    ctx.record_now(viewer, "export", f"segment:{segment}", **summary)  # as the CLI's line
    return ExportFile(path, filename, summary)
