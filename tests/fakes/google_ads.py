"""A fake Google Ads API (REST): Customer Match through OfflineUserDataJobs.

Routes (``{v}`` is the configured version):

- ``POST /{v}/customers/{cid}/offlineUserDataJobs:create``
- ``POST /{v}/customers/{cid}/offlineUserDataJobs/{id}:addOperations``
- ``POST /{v}/customers/{cid}/offlineUserDataJobs/{id}:run``
- ``POST /{v}/customers/{cid}/googleAds:search`` (job status, user list)

Checked as documented: ``Authorization: Bearer``, ``developer-token`` and
``login-customer-id`` (digits) headers; job type CUSTOMER_MATCH_USER_LIST
with a known ``userList``; operations each exactly one of ``create`` /
``remove`` with 1–20 ``userIdentifiers``, at most 100,000 identifiers per
request, no mixing of create and remove in one job (CONFLICTING_OPERATION),
hashes 64 lower-case hex, ``countryCode``/``postalCode`` in clear;
operations only while the job is PENDING; ``run`` only once. Errors are
``{"error": {"code", "message", "status", "details": [GoogleAdsFailure]}}``.

Nothing applies until a job runs: then its operations change the user list
(set semantics: a person is a set of identifiers; a remove drops everyone
sharing one). ``runs`` counts runs per job.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.fakes.base import FakeServer, error

HEX64 = re.compile(r"^[0-9a-f]{64}$")
MAX_IDENTIFIERS = 100_000
MAX_PER_OPERATION = 20


def ads_error(message: str, code: dict[str, str], status: int = 400) -> JSONResponse:
    names = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
    }
    return error(
        status,
        {
            "error": {
                "code": status,
                "message": "Request contains an invalid argument.",
                "status": names.get(status, "INVALID_ARGUMENT"),
                "details": [
                    {
                        "@type": "type.googleapis.com/google.ads.googleads.v24.errors.GoogleAdsFailure",
                        "errors": [{"errorCode": code, "message": message}],
                        "requestId": "fake",
                    }
                ],
            }
        },
    )


@dataclass
class Job:
    name: str
    external_id: str
    user_list: str
    status: str = "PENDING"
    kind: str | None = None  # "create" | "remove" once operations arrive
    operations: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    seen: set[tuple[str, tuple[str, ...]]] = field(default_factory=set)


@dataclass
class FakeGoogleAds(FakeServer):
    token: str = "google-token"
    developer_token: str = "dev-token"
    customer_id: str = "1234567890"
    login_customer_id: str | None = "1112223333"
    user_list: str = "customers/1234567890/userLists/555"
    version: str = "v24"
    jobs: dict[str, Job] = field(default_factory=dict)
    people: list[set[str]] = field(default_factory=list)
    runs: Counter[str] = field(default_factory=Counter)

    def hashed_emails(self) -> set[str]:
        with self.lock:
            return {
                i.split(":", 1)[1] for p in self.people for i in p if i.startswith("hashedEmail:")
            }

    def _identifier(self, identifier: Any) -> str | None:
        if not isinstance(identifier, dict) or len(identifier) != 1:
            return None
        ((kind, value),) = identifier.items()
        if kind in ("hashedEmail", "hashedPhoneNumber"):
            return f"{kind}:{value}" if isinstance(value, str) and HEX64.match(value) else None
        if kind == "addressInfo" and isinstance(value, dict):
            ok = (
                HEX64.match(str(value.get("hashedFirstName", "")))
                and HEX64.match(str(value.get("hashedLastName", "")))
                and re.fullmatch(r"[A-Z]{2}", str(value.get("countryCode", "")))
                and value.get("postalCode")
                and not HEX64.match(str(value["postalCode"]))
            )
            return (
                f"address:{value['hashedFirstName']}:{value['hashedLastName']}:{value['countryCode']}:{value['postalCode']}"
                if ok
                else None
            )
        return None

    def _run(self, job: Job) -> None:
        # A person is a set of identifiers; ``owner`` maps an identifier to its person.
        owner: dict[str, int] = {i: n for n, p in enumerate(self.people) for i in p}
        people: dict[int, set[str]] = dict(enumerate(self.people))
        fresh = len(self.people)
        for kind, identifiers in job.operations:
            found = {owner[i] for i in identifiers if i in owner}
            if kind == "remove":
                for n in found:
                    for i in people.pop(n):
                        owner.pop(i, None)
                continue
            if found:
                n = min(found)
            else:
                n = fresh = fresh + 1
            people.setdefault(n, set()).update(identifiers)
            owner.update(dict.fromkeys(identifiers, n))
        self.people = list(people.values())
        job.status = "SUCCESS"

    def _auth(self, request: Request) -> JSONResponse | None:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return ads_error(
                "Request is missing required authentication credential.",
                {"authenticationError": "NOT_ADS_USER"},
                401,
            )
        if request.headers.get("developer-token") != self.developer_token:
            return ads_error(
                "The developer token is not valid.",
                {"authenticationError": "DEVELOPER_TOKEN_INVALID"},
                401,
            )
        if (
            self.login_customer_id
            and request.headers.get("login-customer-id") != self.login_customer_id
        ):
            return ads_error(
                "login-customer-id header is missing or wrong.",
                {"authorizationError": "USER_PERMISSION_DENIED"},
                403,
            )
        return None

    def build(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{version}/customers/{customer_id}/offlineUserDataJobs:create")
        async def create(version: str, customer_id: str, request: Request) -> JSONResponse:
            denied = self._auth(request)
            if denied:
                return denied
            body = await request.json()
            job = body.get("job") if isinstance(body, dict) else None
            if version != self.version or customer_id != self.customer_id:
                return ads_error("unknown customer", {"requestError": "INVALID_CUSTOMER_ID"}, 404)
            if not isinstance(job, dict) or job.get("type") != "CUSTOMER_MATCH_USER_LIST":
                return ads_error(
                    "job.type must be CUSTOMER_MATCH_USER_LIST",
                    {"offlineUserDataJobError": "INVALID_JOB_TYPE"},
                )
            metadata = job.get("customerMatchUserListMetadata") or {}
            if metadata.get("userList") != self.user_list:
                return ads_error(
                    "user list not found", {"offlineUserDataJobError": "INVALID_USER_LIST_ID"}
                )
            consent = metadata.get("consent")
            if consent is not None and set(consent) - {"adUserData", "adPersonalization"}:
                return ads_error("bad consent", {"fieldError": "INVALID_VALUE"})
            if not str(job.get("externalId", "0")).isdigit():
                return ads_error("externalId must be int64", {"fieldError": "INVALID_VALUE"})
            with self.lock:
                name = f"customers/{customer_id}/offlineUserDataJobs/{len(self.jobs) + 9001}"
                self.jobs[name] = Job(name, str(job.get("externalId", "")), self.user_list)
            return JSONResponse({"resourceName": name})

        @app.post("/{version}/customers/{customer_id}/offlineUserDataJobs/{job_id}:addOperations")
        async def add_operations(
            version: str, customer_id: str, job_id: str, request: Request
        ) -> JSONResponse:
            denied = self._auth(request)
            if denied:
                return denied
            name = f"customers/{customer_id}/offlineUserDataJobs/{job_id}"
            body = await request.json()
            with self.lock:
                job = self.jobs.get(name)
                if job is None or version != self.version:
                    return ads_error(
                        f"{name} not found", {"offlineUserDataJobError": "INVALID_JOB_ID"}, 404
                    )
                if job.status != "PENDING":
                    return ads_error(
                        "operations can be added only to a PENDING job",
                        {"offlineUserDataJobError": "JOB_NOT_PENDING"},
                    )
                operations = body.get("operations")
                if not isinstance(operations, list) or not operations:
                    return ads_error("operations is required", {"requestError": "EMPTY_OPERATIONS"})
                total = 0
                parsed: list[tuple[str, tuple[str, ...]]] = []
                for i, operation in enumerate(operations):
                    if (
                        not isinstance(operation, dict)
                        or len(operation) != 1
                        or next(iter(operation)) not in ("create", "remove")
                    ):
                        return ads_error(
                            f"operations[{i}] must be one of create/remove",
                            {"requestError": "INVALID_INPUT"},
                        )
                    ((kind, data),) = operation.items()
                    identifiers = data.get("userIdentifiers") if isinstance(data, dict) else None
                    if (
                        not isinstance(identifiers, list)
                        or not 1 <= len(identifiers) <= MAX_PER_OPERATION
                    ):
                        return ads_error(
                            f"operations[{i}]: 1 to 20 userIdentifiers per operation",
                            {"userDataError": "TOO_MANY_USER_IDENTIFIERS"},
                        )
                    keys = [self._identifier(x) for x in identifiers]
                    if None in keys:
                        return ads_error(
                            f"operations[{i}]: malformed or unhashed user identifier",
                            {"offlineUserDataJobError": "INVALID_SHA256_FORMAT"},
                        )
                    total += len(keys)
                    if (job.kind is not None and job.kind != kind) or (
                        parsed and parsed[-1][0] != kind
                    ):
                        return ads_error(
                            "create and remove operations mixed in one job",
                            {"offlineUserDataJobError": "CONFLICTING_OPERATION"},
                        )
                    parsed.append((kind, tuple(k for k in keys if k)))
                if total > MAX_IDENTIFIERS:
                    return ads_error(
                        "too many user identifiers in one request",
                        {"offlineUserDataJobError": "TOO_MANY_USER_IDENTIFIERS"},
                    )
                job.kind = parsed[0][0]
                before = len(job.operations)
                for op in parsed:
                    if op in job.seen:  # a resent chunk: same job, set semantics
                        self.duplicates[name] += 1
                    else:
                        job.seen.add(op)
                        job.operations.append(op)
                self.applied[name] += len(job.operations) - before
            return JSONResponse({})

        @app.post("/{version}/customers/{customer_id}/offlineUserDataJobs/{job_id}:run")
        async def run(
            version: str, customer_id: str, job_id: str, request: Request
        ) -> JSONResponse:
            denied = self._auth(request)
            if denied:
                return denied
            name = f"customers/{customer_id}/offlineUserDataJobs/{job_id}"
            with self.lock:
                job = self.jobs.get(name)
                if job is None:
                    return ads_error(
                        f"{name} not found", {"offlineUserDataJobError": "INVALID_JOB_ID"}, 404
                    )
                if job.status != "PENDING":
                    return ads_error(
                        "job already ran", {"offlineUserDataJobError": "JOB_NOT_PENDING"}
                    )
                self.runs[name] += 1
                self._run(job)
            return JSONResponse({"name": f"customers/{customer_id}/operations/run-{job_id}"})

        @app.post("/{version}/customers/{customer_id}/googleAds:search")
        async def search(version: str, customer_id: str, request: Request) -> JSONResponse:
            denied = self._auth(request)
            if denied:
                return denied
            query = str((await request.json()).get("query", ""))
            quoted = re.search(r"= '([^']+)'", query)
            target = quoted.group(1) if quoted else ""
            with self.lock:
                if "FROM offline_user_data_job" in query:
                    job = self.jobs.get(target)
                    rows = (
                        []
                        if job is None
                        else [
                            {"offlineUserDataJob": {"resourceName": job.name, "status": job.status}}
                        ]
                    )
                elif "FROM user_list" in query:
                    rows = (
                        []
                        if target != self.user_list
                        else [
                            {
                                "userList": {
                                    "resourceName": self.user_list,
                                    "name": "fake list",
                                    "sizeForSearch": str(len(self.people)),
                                }
                            }
                        ]
                    )
                else:
                    return ads_error("unsupported query", {"queryError": "UNEXPECTED_END_OF_QUERY"})
            return JSONResponse(
                {"results": rows, "fieldMask": "status"} if rows else {"fieldMask": "status"}
            )

        return app
