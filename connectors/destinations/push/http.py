"""HTTP to a destination: retries with exponential backoff and jitter.

Retried: connection errors and timeouts, HTTP 429 and 5xx, and whatever the
platform marks as transient in a 4xx body (Meta's ``is_transient``). A
``Retry-After`` header (seconds or an HTTP date) is honoured: the wait is the
larger of it and the backoff. Never retried: any other 4xx, which becomes a
``DestinationRejectedError`` naming the destination, the request and the
platform's own message. After the last attempt a retryable failure becomes a
``DestinationUnavailableError``: the sync journal keeps what was not
acknowledged, so a later run resumes it.

Retrying a request whose answer was lost is safe only when the request is
idempotent; every chunk carries the platform's idempotency mechanism (see
``connectors.destinations.push.platforms``).
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from cdp.errors import DestinationRejectedError, DestinationUnavailableError

#: Longest wait for one Retry-After; a platform asking for more is treated as unavailable.
MAX_RETRY_AFTER = 600.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry: delay n = base·2ⁿ (capped), half of it jittered."""

    max_attempts: int = 6
    base_delay: float = 0.5
    max_delay: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Delay before attempt ``attempt + 1`` ("equal jitter": never below half)."""
        ceiling = min(self.max_delay, self.base_delay * float(1 << attempt))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), if any."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _default_message(response: httpx.Response) -> str:
    text = response.text.strip()
    return text[:500] if text else response.reason_phrase


@dataclass
class Stats:
    """What the transport did, for the sync report."""

    requests: int = 0
    retries: int = 0
    waited: float = 0.0


@dataclass
class Transport:
    """One destination's HTTP client: base URL, auth headers, retry policy.

    ``error_message`` extracts the platform's message from an error response;
    ``transient`` says whether a 4xx body means "try again" for this platform.
    ``sleep`` and ``rng`` are injectable so tests can run retries fast.
    """

    destination: str
    platform: str
    base_url: str
    headers: Mapping[str, str]
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout: float = 30.0
    error_message: Callable[[httpx.Response], str] = _default_message
    transient: Callable[[httpx.Response], bool] = lambda _response: False
    retry_hint: Callable[[httpx.Response], float | None] = lambda _response: None
    auth: httpx.Auth | None = None
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    stats: Stats = field(default_factory=Stats)
    _client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url,
                headers=dict(self.headers),
                timeout=self.timeout,
                auth=self.auth,
            )
        return self._client

    def pause(self, attempt: int) -> None:
        """Wait the backoff before retry ``attempt + 1`` of a caller's own retry loop."""
        delay = self.policy.backoff(attempt, self.rng)
        self.stats.retries += 1
        self.stats.waited += delay
        self.sleep(delay)

    def close(self) -> None:
        """Close the connection pool."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
        attempts: int | None = None,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request, retrying what may succeed later; return the 2xx response.

        ``what`` names the request in errors ("add chunk 3 of 7"). ``attempts``
        overrides the policy (1: no retry, for requests that are not idempotent
        and need a check before they are repeated). A status in ``accept`` is
        returned instead of raised (a caller that reads per-record errors in it).
        """
        last = ""
        limit = attempts or self.policy.max_attempts
        for attempt in range(limit):
            wait: float | None = None
            self.stats.requests += 1
            try:
                response = self._http().request(
                    method,
                    path,
                    json=json,
                    data=data,
                    params=params,
                    headers=headers,
                    content=content,
                )
            except httpx.TransportError as error:
                last = f"{type(error).__name__}: {error}".rstrip(": ")
            else:
                if response.is_success or response.status_code in accept:
                    return response
                message = self.error_message(response)
                last = f"HTTP {response.status_code}: {message}"
                retryable = (
                    response.status_code == 429
                    or response.status_code >= 500
                    or self.transient(response)
                )
                if not retryable:
                    raise DestinationRejectedError(
                        f"destination {self.destination!r} ({self.platform}) rejected {what} "
                        f"({method} {path}): {last}"
                    )
                wait = retry_after(response)
                if wait is None:
                    wait = self.retry_hint(response)
                if wait is not None and wait > MAX_RETRY_AFTER:
                    break
            if attempt + 1 < limit:
                delay = max(wait or 0.0, self.policy.backoff(attempt, self.rng))
                self.stats.retries += 1
                self.stats.waited += delay
                self.sleep(delay)
        raise DestinationUnavailableError(
            f"destination {self.destination!r} ({self.platform}) still failing {what} "
            f"({method} {path}) after {limit} attempts: {last}; "
            "run the sync again to resume"
        )
