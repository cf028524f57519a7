"""What the fake SFAs (Salesforce, HubSpot, kintone) share beyond ``FakeServer``.

- ``upserts``: how often each record key was written, and ``bad_emails``, the
  e-mails the platform refuses as invalid (set by a test);
- ``reset()`` between tests of a module that shares one server;
- the credentials check: a fake says how its platform refuses a request
  (``refusal``), and every route but ``public_paths`` runs it before anything
  else, so a route holds only what the platform does with an authorised call.
"""

from __future__ import annotations

import abc
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from tests.fakes.base import FakeServer


class Refused(Exception):
    """A request without valid credentials; ``answer`` is the platform's refusal."""

    def __init__(self, answer: JSONResponse) -> None:
        super().__init__(answer.status_code)
        self.answer = answer


@dataclass
class FakeCrm(FakeServer):
    """Base of the SFA fakes: upsert counts, refused e-mails, reset, credentials."""

    upserts: Counter[str] = field(default_factory=Counter)
    bad_emails: set[str] = field(default_factory=set)

    #: Paths served without credentials (Salesforce's OAuth token endpoint).
    public_paths: ClassVar[frozenset[str]] = frozenset()

    def reset(self) -> None:
        """Forget the requests, faults, records and refused e-mails; keep serving."""
        with self.lock:
            self.log.clear()
            self.faults.clear()
            self.upserts.clear()
            self.bad_emails.clear()
            self.forget()

    @abc.abstractmethod
    def forget(self) -> None:
        """Drop what the platform holds (called by ``reset``, under the lock)."""

    @abc.abstractmethod
    def refusal(self, request: Request) -> JSONResponse | None:
        """The platform's answer to ``request`` when its credentials are wrong, else None."""

    @abc.abstractmethod
    def routes(self, app: FastAPI) -> None:
        """Add the platform's routes to ``app`` (credentials are already checked)."""

    def build(self) -> FastAPI:
        """The platform's routes behind its credentials check."""

        def authenticate(request: Request) -> None:
            if request.url.path not in self.public_paths:
                answer = self.refusal(request)
                if answer is not None:
                    raise Refused(answer)

        async def refused(_request: Request, error: Exception) -> Response:
            assert isinstance(error, Refused)
            return error.answer

        app = FastAPI(dependencies=[Depends(authenticate)])
        app.add_exception_handler(Refused, refused)
        self.routes(app)
        return app
