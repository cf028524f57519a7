"""What every platform adapter provides, and the running plan they work on."""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import duckdb
import httpx

from connectors.destinations.members import Member
from connectors.destinations.privacy import items_of
from connectors.destinations.push.http import Transport
from connectors.destinations.push.journal import Chunk, Journal, Plan

Layout = list[tuple[str, list[str]]]
"""A plan's chunks in order: (action, customer ids)."""


def cut(action: str, keys: list[str], size: int) -> Layout:
    """``keys`` in chunks of at most ``size``."""
    return [(action, keys[i : i + size]) for i in range(0, len(keys), size)]


@dataclass(frozen=True, slots=True)
class Changes:
    """What a new plan must send, as ``Platform.layout`` receives it."""

    adds: list[str]
    """Members new or changed since the last sync (customer ids, sorted)."""
    removes: list[str]
    """Members who left, whose removal may be sent (match keys not in use)."""
    current: Mapping[str, Any]
    """The audience now: platform rows by customer id."""
    synced_extra: Mapping[str, Any]
    """Platform state of the last synced set (LINE's audience group id...)."""
    chunk_size: int
    """Most keys per chunk: the destination's ``chunk_size`` within the platform's limit."""


@dataclass
class Run:
    """A plan being executed: marks chunks done in the journal as they are acknowledged."""

    plan: Plan
    journal: Journal
    transport: Transport
    segment: str
    after_chunk: Callable[[Chunk], None] | None = None
    sent: int = 0

    def pending(self, action: str) -> list[Chunk]:
        """Chunks of ``action`` not acknowledged yet, in order."""
        return [c for c in self.plan.chunks if c.action == action and not c.done]

    def of(self, action: str) -> list[Chunk]:
        """Every chunk of ``action``, in order."""
        return [c for c in self.plan.chunks if c.action == action]

    def rows(self, chunk: Chunk) -> list[Any]:
        """The platform rows a chunk sends (from the plan, so a resend is identical)."""
        return [self.plan.rows[key] for key in chunk.keys]

    def done(self, chunk: Chunk) -> None:
        """Persist that the platform acknowledged ``chunk``."""
        chunk.done = True
        self.journal.save(self.plan)
        self.sent += 1
        if self.after_chunk is not None:
            self.after_chunk(chunk)

    def save(self) -> None:
        """Persist the plan's platform state (job names, group ids) before using it."""
        self.journal.save(self.plan)


class Platform(abc.ABC):
    """One ad platform's push protocol. Subclasses must define ``row``, ``push``
    and ``check``, and override whatever else differs."""

    name = ""
    max_chunk = 10_000

    @abc.abstractmethod
    def row(self, member: Member) -> Any | None:
        """The member as this platform's JSON row, or None if it cannot be matched."""
        raise NotImplementedError

    def exclusion(self, member: Member) -> str:
        """Why ``row`` gave None for ``member``: a reason key of
        ``connectors.destinations.accounting.REASONS`` for the sync report."""
        return "no_usable_identifier"

    def match_keys(self, row: Any) -> set[str]:
        """Identifiers in a row by which the platform finds a person.

        A remove whose identifiers overlap a current member's is not sent:
        on these platforms a removal acts on the matched person, who is still
        in the audience (a merge, a shared phone).
        """
        return set()

    def items(self, rows: list[Any]) -> list[str]:
        """The data items these rows hand over, in the platform's words (APPI records)."""
        return items_of(rows)

    def headers(self) -> dict[str, str]:
        """Authentication and fixed headers of every request."""
        return {}

    def auth(self) -> httpx.Auth | None:
        """An httpx auth flow for platforms whose tokens are fetched and refreshed (OAuth)."""
        return None

    def retry_hint(self, response: httpx.Response) -> float | None:
        """Seconds to wait before retrying a 429/5xx/transient answer without a
        ``Retry-After`` header, read from the platform's body (None: backoff)."""
        return None

    def prepare(self, con: duckdb.DuckDBPyConnection, customer_ids: list[str]) -> None:
        """Read what ``row`` needs beyond the audience columns (the SFA platforms
        load profile traits and lead scores), before ``row`` is called for them."""
        return None

    def error_message(self, response: httpx.Response) -> str:
        """The platform's own error message in a failed response."""
        text = response.text.strip()
        return text[:500] or response.reason_phrase

    def transient(self, response: httpx.Response) -> bool:
        """True if a 4xx response still means "try again later"."""
        return False

    def layout(self, changes: Changes) -> tuple[Layout, dict[str, Any]]:
        """Chunks of a new plan (removes first, then adds) and its initial platform state."""
        size = changes.chunk_size
        return cut("remove", changes.removes, size) + cut("add", changes.adds, size), {}

    @abc.abstractmethod
    def push(self, run: Run) -> None:
        """Send every chunk not yet acknowledged, and whatever finishes the plan."""
        raise NotImplementedError

    @abc.abstractmethod
    def check(self, transport: Transport) -> str:
        """A read-only request proving the credentials and target work; a short summary."""
        raise NotImplementedError
