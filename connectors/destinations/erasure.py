"""The copies an erasure reaches outside the data directory's own stores: the Parquet
archive, the audiences pushed to ad platforms, the records pushed to SFAs, the APPI
provision records.

Shared by ``cdp privacy`` and ``cdp serve --kafka`` (which runs Kafka-mode
erasures as soon as they are filed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def erasure_steps(settings: Any, archive: Path | None) -> list[Any]:
    """The copies outside the data directory's DuckDB file that an erasure reaches:
    the Parquet archive when given, the APPI provision records (the person's entries
    become ``erased:<request>``), the audiences pushed to ad platforms (a removal now),
    the records pushed to Salesforce, HubSpot and kintone (deleted there now)."""
    from cdp.services.privacy import provisions  # noqa: PLC0415  (lazy: destinations)

    def archive_step(request: Any, person: Any) -> dict[str, str]:
        from cdp.adapters.archive.erase import erase_from_archive  # noqa: PLC0415

        if archive is None:
            return {}
        try:
            erase_from_archive(archive, person.customer_ids, person.identifiers)
        except Exception as error:  # the request says which copy failed; re-run it
            return {"archive": f"{type(error).__name__}: {error}"}
        return {}

    def records_step(request: Any, person: Any) -> dict[str, str]:
        provisions.redact(settings.data_dir, person.customer_ids, request.id)
        return {}

    def audiences_step(request: Any, person: Any) -> dict[str, str]:
        from connectors.destinations.push.withdraw import withdraw  # noqa: PLC0415

        outcome = withdraw(settings.data_dir, set(person.customer_ids))
        return {d: r for d, r in outcome.items() if r != "removed"}

    def sfa_step(request: Any, person: Any) -> dict[str, str]:
        from connectors.destinations.sfa.erase import FAILED, erase  # noqa: PLC0415

        outcome = erase(settings.data_dir, person.customer_ids, request.id, actor=request.actor)
        return {d: r for d, r in outcome.items() if r.startswith(FAILED)}

    return [archive_step, audiences_step, sfa_step, records_step]
