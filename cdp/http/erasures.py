"""Embedded erasures carried out while ``cdp serve`` runs (docs/privacy.md).

An embedded erasure deletes rows and rewrites the DuckDB file
(``cdp.adapters.duckdb.erase``), which the running server holds open. So the
server runs filed erasures in a pause of its ``AppSwitch``
(``cdp.http.switch``): it answers 503 with ``Retry-After`` meanwhile, stops
its app, runs ``process`` (``cdp privacy process``'s work), and serves again
from a fresh app that holds nothing of the person in memory.

Requests reach it from the API and the console (``filed`` wakes the runner
at once) and from ``cdp privacy erase`` run beside the server (found by
reading the request registry every ``POLL_SECONDS``). One pause carries out
every open request. A request still open after its pause (it failed; the
error is saved in it) is not tried again by this server on its own: ``cdp
privacy process`` with the server stopped, or the next start, runs it, or a
new request's pause does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

from cdp.http.switch import AppSwitch
from cdp.services.privacy.requests import PrivacyRequest, Requests

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0
"""How often the registry is read for requests filed by the CLI beside the server."""


class OnlineErasures:
    """Runs the data directory's open embedded erasures in pauses of ``switch``;
    ``run`` is the loop (a background task of the switch)."""

    def __init__(
        self,
        data_dir: Path,
        switch: AppSwitch,
        process: Callable[[], object],
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.data_dir = data_dir
        self.switch = switch
        self.process = process
        self.poll_seconds = poll_seconds
        self._tried: set[str] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    def filed(self, request: PrivacyRequest) -> None:
        """A request was filed (from any thread): look at the registry now."""
        del request  # the registry holds it; the pause runs every open one
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    def waiting(self) -> list[PrivacyRequest]:
        """Open embedded erasures this server has not run yet."""
        return [
            r
            for r in Requests(self.data_dir).open()
            if r.erases and r.runtime == "embedded" and r.id not in self._tried
        ]

    async def run(self) -> None:
        """Until cancelled: wait for a filing (or ``poll_seconds``), then pause the
        server for the requests waiting, if any."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()
            try:
                waiting = await asyncio.to_thread(self.waiting)
            except Exception:  # an unreadable registry: say so, look again later
                log.exception("cannot read the privacy requests of %s", self.data_dir)
                continue
            if not waiting:
                continue
            self._tried.update(r.id for r in waiting)
            count = f"{len(waiting)} erasure{'s' if len(waiting) > 1 else ''}"
            log.info("pausing to carry out %s (the DuckDB file is rewritten)", count)
            # Shielded: a shutdown meanwhile waits for the pause to end (the switch's
            # lock), so the fresh app is started and then stopped cleanly.
            pause = self.switch.pause(f"{count} rewriting the data directory", self.process)
            await asyncio.shield(pause)
