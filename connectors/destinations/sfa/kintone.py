"""kintone: records of one app upserted by a unique field (REST records API).

- **Auth**: ``X-Cybozu-API-Token`` (an app API token with view, add and edit
  rights, and delete for erasures; several tokens comma-separated when the app looks up others).
- **Upsert**: ``PUT /k/v1/records.json`` (``/k/guest/{space}/v1/...`` in a guest
  space) with ``{"app": N, "upsert": true, "records": [{"updateKey": {"field":
  <update_key>, "value": <customer id>}, "record": {<code>: {"value": ...}}}]}``,
  at most 100 records. The update key must be a text or number field with
  「値の重複を禁止する」; it is not repeated in ``record``. Values are sent as
  text (numbers too, as kintone's own examples do); booleans as
  ``true_value``/``false_value`` (はい/いいえ by default).
- **Per-record errors**: a request is all or nothing. A ``400`` whose
  ``errors`` name records (``records[3].メールアドレス.value``) fails those
  records; the rest of the chunk is sent again without them. Any other
  ``400`` rejects the push.
- **Delete** (an erasure): ``DELETE /k/v1/records.json`` with ``{"app": N,
  "ids": [<$id>, ...]}``, at most 100 (the ``id`` each upsert answered,
  ``{"records": [{"id", "revision"}]}`` in the order sent). All or nothing: a
  ``404 GAIA_RE01`` (a record not found, deleted already) makes it read which
  ids are left (``GET /k/v1/records.json`` with ``query=$id in (...)``) and
  delete those. The API token needs the delete right too.
- **check**: ``GET /k/v1/app/form/fields.json?app=N``: every mapped code
  exists and the update key is unique.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson

from cdp.errors import ConfigError, DestinationRejectedError
from connectors.destinations.push.base import Run
from connectors.destinations.push.http import Transport
from connectors.destinations.push.journal import Chunk
from connectors.destinations.sfa.base import Deleted, Sent, SfaPlatform, describe
from connectors.destinations.sfa.config import Kintone

MAX_RECORDS = 100
_RECORD_ERROR = re.compile(r"^records\[(\d+)\]")


def _body(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return {}


def _number(record_id: str) -> int | str:
    """A record id as kintone's examples send it (a number)."""
    return int(record_id) if record_id.isdigit() else record_id


class KintonePlatform(SfaPlatform):
    """Push protocol of a kintone app (records upsert by a unique field)."""

    name = "kintone"
    max_chunk = MAX_RECORDS
    max_delete = MAX_RECORDS

    def __init__(self, destination: Kintone) -> None:
        super().__init__(destination)
        self.kt = destination

    def headers(self) -> dict[str, str]:
        return {"X-Cybozu-API-Token": self.kt.secret("api_token")}

    def error_message(self, response: httpx.Response) -> str:
        return describe(_body(response), ("code", "message"))

    def _path(self, tail: str) -> str:
        space = f"/guest/{self.kt.guest_space_id}" if self.kt.guest_space_id else ""
        return f"/k{space}/v1/{tail}"

    def _value(self, value: Any) -> str:
        if isinstance(value, bool):
            return self.kt.true_value if value else self.kt.false_value
        return str(value)

    def _record(self, key: str, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "updateKey": {"field": self.kt.update_key, "value": key},
            "record": {
                code: {"value": self._value(v)}
                for code, v in row.items()
                if code != self.kt.update_key
            },
        }

    def send(self, run: Run, chunk: Chunk, total: int) -> Sent:
        rows = run.rows(chunk)
        entries = [
            (key, row[self.kt.update_key], row) for key, row in zip(chunk.keys, rows, strict=True)
        ]
        failed: dict[str, str] = {}
        while entries:
            response = run.transport.request(
                "PUT",
                self._path("records.json"),
                what=f"upsert chunk {chunk.index + 1} of {total}",
                json={
                    "app": self.kt.app,
                    "upsert": True,
                    "records": [self._record(value, row) for _, value, row in entries],
                },
                accept=(400,),
            )
            if response.is_success:
                # One {"id", "revision"} per record, in the order sent.
                answered = _body(response).get("records") or []
                ids = {
                    key: str(result["id"])
                    for (key, _, _), result in zip(entries, answered, strict=False)
                    if isinstance(result, dict) and result.get("id") is not None
                }
                return Sent(failed, ids)
            body = _body(response)
            refused: dict[int, list[str]] = {}
            for where, detail in (body.get("errors") or {}).items():
                match = _RECORD_ERROR.match(where)
                if match and int(match[1]) < len(entries):
                    messages = detail.get("messages", []) if isinstance(detail, dict) else []
                    field = where.split(".")[1] if "." in where else where
                    refused.setdefault(int(match[1]), []).append(f"{field}: {'; '.join(messages)}")
            if not refused:
                raise DestinationRejectedError(
                    f"destination {self.kt.name!r} (kintone) rejected upsert chunk "
                    f"{chunk.index + 1} of {total} (PUT {self._path('records.json')}): "
                    f"HTTP 400: {self.error_message(response)}"
                )
            code = body.get("code", "CB_VA01")
            for index, messages in refused.items():
                failed[entries[index][0]] = f"{code}: {'; '.join(messages)}"
            entries = [e for i, e in enumerate(entries) if i not in refused]
        return Sent(failed)

    def delete(self, transport: Transport, record_ids: list[str]) -> Deleted:
        # All or nothing: an id that is gone already (GAIA_RE01) fails the request,
        # so the ids still there are read back and only those deleted again.
        wanted = list(record_ids)
        for _ in range(2):
            response = transport.request(
                "DELETE",
                self._path("records.json"),
                what=f"delete {len(wanted)} records",
                json={"app": self.kt.app, "ids": [_number(i) for i in wanted]},
                accept=(404,),
            )
            if response.is_success:
                return Deleted(list(record_ids))
            if _body(response).get("code") != "GAIA_RE01":
                break
            wanted = self._existing(transport, wanted)
            if not wanted:
                return Deleted(list(record_ids))
        raise DestinationRejectedError(
            f"destination {self.kt.name!r} (kintone) rejected delete of {len(wanted)} records "
            f"(DELETE {self._path('records.json')}): HTTP {response.status_code}: "
            f"{self.error_message(response)}"
        )

    def _existing(self, transport: Transport, record_ids: list[str]) -> list[str]:
        """Which of these record ids the app still holds."""
        listed = ", ".join(f'"{_number(i)}"' for i in record_ids)
        response = transport.request(
            "GET",
            self._path("records.json"),
            what="look up records to delete",
            params={"app": str(self.kt.app), "query": f"$id in ({listed})", "fields[0]": "$id"},
        )
        found = {
            str((r.get("$id") or {}).get("value")) for r in _body(response).get("records") or []
        }
        return [i for i in record_ids if i in found]

    def check(self, transport: Transport) -> str:
        response = transport.request(
            "GET",
            self._path("app/form/fields.json"),
            what="read the app's fields",
            params={"app": str(self.kt.app)},
        )
        fields = _body(response).get("properties", {})
        key = fields.get(self.kt.update_key)
        if key is None or not key.get("unique"):
            raise ConfigError(
                f"destination {self.kt.name!r}: update_key {self.kt.update_key!r} must be a "
                f"field of app {self.kt.app} with 値の重複を禁止する (unique)"
            )
        missing = sorted(c for c in [*self.kt.mapping(), *self.kt.constants] if c not in fields)
        if missing:
            raise ConfigError(
                f"destination {self.kt.name!r}: app {self.kt.app} has no field code "
                f'{", ".join(missing)} (add it, or map it to "" in [{self.kt.name}.fields])'
            )
        return f"app {self.kt.app}: upsert by {self.kt.update_key}; every mapped field code exists"
