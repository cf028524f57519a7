"""Google Ads Customer Match through OfflineUserDataJobs (REST).

Per action of a plan (removes, then adds; Google asks not to mix create and
remove operations in one job, which can fail with CONFLICTING_OPERATION):

1. ``POST /{version}/customers/{id}/offlineUserDataJobs:create`` with
   ``{"job": {"type": "CUSTOMER_MATCH_USER_LIST", "externalId": ...,
   "customerMatchUserListMetadata": {"userList": ..., "consent": ...}}}``;
   the answer's ``resourceName`` is recorded in the journal *before* any
   operation is added, so a resumed plan adds to the same job.
2. ``POST /{version}/{job}:addOperations`` with ``{"operations": [{"create"
   | "remove": {"userIdentifiers": [...]}}], "enablePartialFailure": true}``,
   one request per chunk (at most 10,000 operations, Google's recommended
   size; the hard limit is 100,000 identifiers per request and 20 per
   operation). Each acknowledged chunk is marked done.
3. ``POST /{version}/{job}:run``. Nothing in a job applies before it runs,
   so a chunk resent to the same job after a lost answer cannot apply twice.
   The journal marks the run as *sent* before the request; a resumed plan
   whose run was sent asks ``googleAds:search`` for the job's status and
   runs it again only if it is still ``PENDING``.

Headers: ``Authorization: Bearer <OAuth access token>``, ``developer-token``,
and ``login-customer-id`` when access goes through a manager account. Jobs
run asynchronously at Google (minutes to hours); the sync counts a plan done
when its jobs are running, which is when Google has accepted the changes.
A job created but never recorded (a crash between the answer and the
journal write) stays PENDING and is never run: harmless.
"""

from __future__ import annotations

from typing import Any

import httpx

from cdp.errors import DestinationRejectedError
from connectors.destinations import google_ads as formats
from connectors.destinations.members import Member
from connectors.destinations.push.base import Platform, Run
from connectors.destinations.push.config import GoogleAds
from connectors.destinations.push.http import Transport

_OPERATION = {"add": "create", "remove": "remove"}


def external_id(plan_id: str, action: str) -> str:
    """The job's user-specified id (int64, as a string in REST JSON)."""
    return str(int(plan_id[:15], 16) * 2 + (1 if action == "add" else 0))


class GoogleAdsPlatform(Platform):
    """Push protocol of a Customer Match user list."""

    name = "google_ads"
    max_chunk = 10_000

    def __init__(self, destination: GoogleAds) -> None:
        self.destination = destination

    def row(self, member: Member) -> Any | None:
        identifiers = formats.user_identifiers(member)
        return identifiers or None

    def exclusion(self, member: Member) -> str:
        return formats.exclusion(member) or super().exclusion(member)

    def match_keys(self, row: Any) -> set[str]:
        keys: set[str] = set()
        for identifier in row:
            for kind in ("hashedEmail", "hashedPhoneNumber"):
                if kind in identifier:
                    keys.add(f"{kind}:{identifier[kind]}")
        return keys

    def headers(self) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.destination.secret('access_token')}",
            "developer-token": self.destination.secret("developer_token"),
        }
        if self.destination.login_customer_id:
            headers["login-customer-id"] = self.destination.login_customer_id
        return headers

    def error_message(self, response: httpx.Response) -> str:
        try:
            error = response.json()["error"]
        except (ValueError, KeyError, TypeError):
            return super().error_message(response)
        details = []
        for detail in error.get("details") or []:
            for item in detail.get("errors") or []:
                code = ", ".join(f"{k}={v}" for k, v in (item.get("errorCode") or {}).items())
                details.append(f"{item.get('message', '')} [{code}]".strip())
        status = error.get("status", "")
        return "; ".join([f"{status}: {error.get('message', '')}".strip(": "), *details])

    def _version(self) -> str:
        return f"/{self.destination.api_version}"

    def _create_job(self, run: Run, action: str) -> str:
        metadata: dict[str, Any] = {"userList": self.destination.user_list}
        if self.destination.consent == "ads":
            # Only members who consented to ads are exported: say so, as the EU
            # user consent policy requires for Customer Match uploads.
            metadata["consent"] = {"adUserData": "GRANTED", "adPersonalization": "GRANTED"}
        response = run.transport.request(
            "POST",
            f"{self._version()}/customers/{self.destination.customer_id}/offlineUserDataJobs:create",
            what=f"{action} job creation",
            json={
                "job": {
                    "type": "CUSTOMER_MATCH_USER_LIST",
                    "externalId": external_id(run.plan.id, action),
                    "customerMatchUserListMetadata": metadata,
                }
            },
        )
        name = response.json().get("resourceName")
        if not isinstance(name, str) or "/offlineUserDataJobs/" not in name:
            raise DestinationRejectedError(
                f"destination {self.destination.name!r} (google_ads): job creation answered "
                f"without a job resource name: {response.text[:200]}"
            )
        return name

    def job_status(self, transport: Transport, job: str) -> str:
        """The job's status (PENDING, RUNNING, SUCCESS, FAILED) from GoogleAdsService."""
        response = transport.request(
            "POST",
            f"{self._version()}/customers/{self.destination.customer_id}/googleAds:search",
            what="job status query",
            json={
                "query": "SELECT offline_user_data_job.resource_name, "
                "offline_user_data_job.status, offline_user_data_job.failure_reason "
                f"FROM offline_user_data_job WHERE offline_user_data_job.resource_name = '{job}'"
            },
        )
        results = response.json().get("results") or []
        if not results:
            return "UNKNOWN"
        return str(results[0]["offlineUserDataJob"].get("status", "UNKNOWN"))

    def _accepted(self, job: str, status: str) -> None:
        if status not in ("RUNNING", "SUCCESS"):
            raise DestinationRejectedError(
                f"destination {self.destination.name!r} (google_ads): job {job} is {status}"
            )

    def push(self, run: Run) -> None:
        state = run.plan.state
        jobs: dict[str, str] = state.setdefault("jobs", {})
        runs: dict[str, str] = state.setdefault("runs", {})  # action -> "sent" | "done"
        for action in ("remove", "add"):
            chunks = run.of(action)
            if not chunks or runs.get(action) == "done":
                continue
            if action not in jobs:
                jobs[action] = self._create_job(run, action)
                run.save()
            job = jobs[action]
            for seq, chunk in enumerate(chunks, start=1):
                if chunk.done:
                    continue
                operations = [
                    {_OPERATION[action]: {"userIdentifiers": identifiers}}
                    for identifiers in run.rows(chunk)
                ]
                run.transport.request(
                    "POST",
                    f"{self._version()}/{job}:addOperations",
                    what=f"{action} operations {seq} of {len(chunks)}",
                    json={"operations": operations, "enablePartialFailure": True},
                )
                run.done(chunk)
            if runs.get(action) == "sent":  # resumed: did the lost run request arrive?
                status = self.job_status(run.transport, job)
                if status != "PENDING":
                    self._accepted(job, status)
                    runs[action] = "done"
                    run.save()
                    continue
            runs[action] = "sent"
            run.save()
            try:
                run.transport.request(
                    "POST", f"{self._version()}/{job}:run", what=f"{action} job run", json={}
                )
            except DestinationRejectedError:
                # A retry after a lost answer finds the job running already: that is success.
                status = self.job_status(run.transport, job)
                if status == "PENDING":
                    raise
                self._accepted(job, status)
            runs[action] = "done"
            run.save()

    def check(self, transport: Transport) -> str:
        response = transport.request(
            "POST",
            f"{self._version()}/customers/{self.destination.customer_id}/googleAds:search",
            what="user list lookup",
            json={
                "query": "SELECT user_list.resource_name, user_list.name, user_list.size_for_search "
                f"FROM user_list WHERE user_list.resource_name = '{self.destination.user_list}'"
            },
        )
        results = response.json().get("results") or []
        if not results:
            raise DestinationRejectedError(
                f"destination {self.destination.name!r} (google_ads): user list "
                f"{self.destination.user_list} not found in customer {self.destination.customer_id}"
            )
        user_list = results[0].get("userList", {})
        return f"user list {user_list.get('resourceName')} {user_list.get('name', '')!r}"
