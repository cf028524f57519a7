"""Carrying out privacy requests on an embedded data directory (``cdp privacy``).

``process(settings)`` runs every open request, oldest first. Each step is
idempotent and recorded in the request, so a run that crashed is finished
by running it again (``cdp privacy process``, or the next ``cdp serve``):

1. ``suppress`` / ``unsuppress`` the person's identifiers (the doors read the
   list at once: ``cdp.services.privacy.suppressions``);
2. for an erasure, find the person (the customer their identifier belongs to,
   every customer merged into it, all their identifiers), delete their rows
   from the DuckDB file and rewrite the file so no freed page keeps them
   (``cdp.adapters.duckdb.erase``);
3. the files the data directory keeps besides the database (exports, the
   demo's input): lines naming the person removed (``scrub``);
4. the other copies: the Parquet archive when one is given, the audiences
   pushed to ad platforms (a removal now), the APPI provision records (the
   person's entries become ``erased:<request>``);
5. ``finished`` (or ``partial`` with the destinations that failed): the
   request forgets the identifier.

The data directory must be free (no ``cdp serve`` on it): the rewrite needs
the file to itself. A server files requests and applies suppression at once;
it runs erasures when it starts (docs/privacy.md).

A request filed in Kafka mode (``runtime: kafka``) is carried out on the
topics instead of step 2 (``cdp.adapters.kafka.erase``: the person's
keys are destroyed), by ``cdp serve --kafka`` at once or by
``cdp privacy process --kafka``; steps 3 to 5 are the same.
"""

from __future__ import annotations

import getpass
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import duckdb

from cdp.adapters.duckdb import erase as duckdb_erase
from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.privacy import audit
from cdp.services.privacy import requests as privacy_requests
from cdp.services.privacy.requests import PrivacyRequest, Requests
from cdp.services.privacy.scrub import scrub

log = logging.getLogger(__name__)

DATABASE = "database"
"""The step of an embedded erasure that deletes rows and rewrites the DuckDB file."""


class KafkaEraser(Protocol):
    """Erasure on the Kafka topics (``cdp.adapters.kafka.erase.KafkaErasure``)."""

    def find_person(self, identifier: str) -> tuple[frozenset[str], frozenset[str]]:
        """(customer ids, identifier keys) of whoever ``identifier`` names."""
        ...

    def erase(
        self, customer_ids: frozenset[str], identifiers: frozenset[str], request_id: str
    ) -> dict[str, int]:
        """Destroy their keys and stop serving them; counts."""
        ...


#: Steps of an erasure beyond the DuckDB file, each given the person; returns the
#: destinations or stores that failed (name → reason). Wired by ``erasure_steps``.
Step = Callable[[PrivacyRequest, duckdb_erase.Person], dict[str, str]]


def cli_actor() -> str:
    """``cli:<os user>``: who filed a request from the command line."""
    try:
        return f"cli:{getpass.getuser()}"
    except OSError:
        return "cli:unknown"


def _customer_of(con: duckdb.DuckDBPyConnection, identifier: str) -> str | None:
    if identifier.startswith("cus_"):
        current = identifier
        for _ in range(10_000):  # cdp.read.merges.MAX_MERGE_CHAIN
            row = con.execute(
                "SELECT into_customer FROM merges WHERE from_customer = ?", [current]
            ).fetchone()
            if row is None:
                return current
            current = str(row[0])
        return None
    row = con.execute(
        "SELECT customer_id FROM identities WHERE identifier = ?", [identifier]
    ).fetchone()
    return None if row is None else str(row[0])


def find_person(settings: Settings, identifier: str) -> duckdb_erase.Person:
    """The person ``identifier`` names: their customers and every identifier key
    they have (the identifier itself included, known or not)."""
    named = frozenset() if identifier.startswith("cus_") else frozenset({identifier})
    if not settings.database.exists():
        return duckdb_erase.Person(frozenset(), named)
    con = Engine.open_read_only(settings)  # through a running server if there is one
    try:
        customer = _customer_of(con, identifier)
        if customer is None:
            return duckdb_erase.Person(frozenset(), named)
        person = duckdb_erase.find(con, customer)
    finally:
        con.close()
    return duckdb_erase.Person(person.customer_ids, person.identifiers | named)


def erase_local(settings: Settings, people: list[duckdb_erase.Person]) -> list[dict[str, int]]:
    """Delete each of ``people`` from the data directory's DuckDB file, then rewrite
    the file once; per person, the rows removed per table and the new file's size
    (``file_bytes``)."""
    if not settings.database.exists():
        return [{} for _ in people]
    Engine.catch_up_file(settings)  # projections caught up and checkpointed first
    con = duckdb.connect(str(settings.database))
    try:
        removed = [duckdb_erase.remove(con, person).rows for person in people]
    finally:
        con.close()
    size = duckdb_erase.rewrite(settings.database)
    return [{**rows, "file_bytes": size} for rows in removed]


def erase_together(settings: Settings, waiting: list[PrivacyRequest]) -> None:
    """The database step of several embedded erasures at once: every person's rows
    deleted, then the file rewritten ONCE for all of them (a rewrite costs as much
    as the file, a minute at a million customers, whoever it is for), and each
    request marked so that ``run`` finishes it without rewriting again. Their
    suppression comes first, as in ``run``. A crash before the rewrite leaves the
    requests ``running`` without the mark: ``run`` then rewrites."""
    registry = Requests(settings.data_dir)
    people: list[tuple[PrivacyRequest, duckdb_erase.Person]] = []
    for filed in waiting:
        assert filed.subject is not None  # open requests still name their person
        person = _with_saved(find_person(settings, filed.subject), filed.person)
        request = registry.update(
            filed, status=privacy_requests.RUNNING, error=None, person=_saved(person)
        )
        for _, apply in _suppression_steps(settings.data_dir, request):
            apply(sorted(person.identifiers))
        people.append((request, person))
    removed = erase_local(settings, [person for _, person in people])
    for (request, _), rows in zip(people, removed, strict=True):
        counts = {**request.counts, **rows, "erased_together": len(people)}
        registry.update(request, steps={**request.steps, DATABASE: "done"}, counts=counts)


def run(
    settings: Settings,
    request: PrivacyRequest,
    steps: list[Step] | None = None,
    kafka: KafkaEraser | None = None,
) -> PrivacyRequest:
    """Carry out one request (see the module docstring); the saved result. A request
    filed in Kafka mode needs ``kafka`` (the topics it erases from)."""
    registry = Requests(settings.data_dir)
    identifier = request.subject
    if identifier is None:  # finished already
        return request
    in_kafka = request.runtime == "kafka"
    if in_kafka and kafka is None and request.erases:
        return registry.update(
            request,
            error="filed in Kafka mode: `cdp serve --kafka` runs it, or "
            "`cdp privacy process --bootstrap BOOTSTRAP`",
        )
    request = registry.update(request, status=privacy_requests.RUNNING, error=None)
    try:
        done = dict(request.steps)
        failed: dict[str, str] = {}
        counts = dict(request.counts)
        if in_kafka and kafka is not None:
            person = duckdb_erase.Person(*kafka.find_person(identifier))
        else:
            person = find_person(settings, identifier)
        if request.erases:  # saved before anything is deleted: a resumed run needs it all
            person = _with_saved(person, request.person)
            request = registry.update(request, person=_saved(person))
        counts["customers"] = len(person.customer_ids)
        counts["identifiers"] = len(person.identifiers)
        for name, apply in _suppression_steps(settings.data_dir, request):
            apply(sorted(person.identifiers))
            done[name] = "done"
        if request.erases:
            if in_kafka and kafka is not None:
                counts.update(kafka.erase(person.customer_ids, person.identifiers, request.id))
                done["keys"] = "done"
            elif done.get(DATABASE) != "done":  # else rewritten already: resumed, or together
                counts.update(erase_local(settings, [person])[0])
                done[DATABASE] = "done"
                request = registry.update(request, steps=dict(done), counts=dict(counts))
            files = scrub(settings.data_dir, person.values)
            counts["file_lines"] = sum(files.values())
            done["data directory"] = "done"
            for step in steps or []:
                failed.update(step(request, person))
            done["copies"] = "done" if not failed else "partial"
        status = privacy_requests.PARTIAL if failed else privacy_requests.FINISHED
        audit.record(
            settings.data_dir,
            request.actor,
            f"privacy.{request.type}",
            f"request:{request.id}",
            {"status": status, "counts": counts, "failed": sorted(failed)},
        )
        return registry.update(request, status=status, steps=done, counts=counts, failed=failed)
    except Exception as error:
        registry.update(request, status=privacy_requests.FAILED, error=f"{error}")
        raise


def _saved(person: duckdb_erase.Person) -> dict[str, list[str]]:
    return {"customers": sorted(person.customer_ids), "identifiers": sorted(person.identifiers)}


def _with_saved(
    person: duckdb_erase.Person, saved: dict[str, list[str]] | None
) -> duckdb_erase.Person:
    """``person`` as found now, plus what an earlier run of the request found (after
    its deletes, the database no longer knows the person's other identifiers)."""
    if not saved:
        return person
    return duckdb_erase.Person(
        person.customer_ids | frozenset(saved.get("customers", ())),
        person.identifiers | frozenset(saved.get("identifiers", ())),
    )


def _suppression_steps(
    data_dir: Path, request: PrivacyRequest
) -> list[tuple[str, Callable[[list[str]], object]]]:
    from cdp.services.privacy.suppressions import SuppressionList  # noqa: PLC0415

    if request.type in (privacy_requests.SUPPRESS, privacy_requests.SUPPRESS_WITH_DELETE):
        return [("suppress", lambda keys: SuppressionList.load(data_dir).add(keys, request.id))]
    if request.type == privacy_requests.UNSUPPRESS:
        return [("unsuppress", lambda keys: SuppressionList.load(data_dir).remove(keys))]
    return []


def process(
    settings: Settings, steps: list[Step] | None = None, kafka: KafkaEraser | None = None
) -> list[PrivacyRequest]:
    """Run every open request of the data directory, oldest first; their results (a
    request that fails is saved ``failed`` with its error, and the others still run).
    Without ``kafka``, requests filed in Kafka mode wait (they say so)."""
    registry = Requests(settings.data_dir)
    done = []
    together = [
        r
        for r in registry.open()
        if r.erases and r.runtime != "kafka" and r.steps.get(DATABASE) != "done"
    ]
    if len(together) > 1 and settings.database.exists():
        try:
            erase_together(settings, together)
        except Exception:  # each request's run below deletes and rewrites on its own
            log.exception("erasing %d requests together failed; one by one", len(together))
    for request in registry.open():
        try:
            done.append(run(settings, request, steps, kafka))
        except Exception:  # recorded in the request by run(); the next one still runs
            done.append(registry.get(request.id))
    return done
