"""A fake kintone app: form fields and the records upsert (``PUT /k/v1/records.json``).

Checks each request as cybozu.dev documents it: ``X-Cybozu-API-Token`` (else
``401`` ``GAIA_IA02``); JSON ``{"app", "upsert": true, "records": [...]}``
for the configured app, 1..100 records, each ``{"updateKey": {"field",
"value"}, "record": {code: {"value": ...}}}`` (no ``id`` beside
``updateKey``); the update key a unique field, not repeated in ``record``;
every code a field of the app (else ``400 GAIA_FC01``). A request is all or
nothing: an e-mail in ``bad_emails`` fails the whole request with
``400 CB_VA01`` and ``errors`` keyed ``records[i].<code>.value``. Answers
``{"records": [{"id", "revision", "operation": INSERT|UPDATE}]}``.
``GET /k/v1/app/form/fields.json?app=N`` lists the fields.
``DELETE /k/v1/records.json`` (JSON ``{"app", "ids"}``, 1..100, all or nothing:
``404 GAIA_RE01`` names an unknown id) deletes; ``GET /k/v1/records.json`` with
``query=$id in ("1", ...)`` and ``fields[0]=$id`` reads which ids exist.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.fakes.base import error
from tests.fakes.crm import FakeCrm

FIELDS = {
    "顧客ID": {"type": "SINGLE_LINE_TEXT", "unique": True},
    "メールアドレス": {"type": "LINK", "unique": False},
    "電話番号": {"type": "LINK", "unique": False},
    "氏名": {"type": "SINGLE_LINE_TEXT", "unique": False},
    "ユーザーID": {"type": "SINGLE_LINE_TEXT", "unique": False},
    "リードスコア": {"type": "NUMBER", "unique": False},
    "スコア理由": {"type": "MULTI_LINE_TEXT", "unique": False},
    "ライフサイクル": {"type": "SINGLE_LINE_TEXT", "unique": False},
    "ファネル": {"type": "SINGLE_LINE_TEXT", "unique": False},
    "同意": {"type": "SINGLE_LINE_TEXT", "unique": False},
    "都道府県": {"type": "SINGLE_LINE_TEXT", "unique": False},
}
MAX_RECORDS = 100


def kintone_error(
    status: int, code: str, message: str, errors: dict[str, Any] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "id": secrets.token_hex(10), "message": message}
    if errors is not None:
        body["errors"] = errors
    return error(status, body)


@dataclass
class FakeKintone(FakeCrm):
    token: str = "kintone-api-token-0123456789"
    app_id: int = 12
    records: dict[str, dict[str, str]] = field(default_factory=dict)
    deleted: dict[str, dict[str, str]] = field(default_factory=dict)
    """Deleted records by ``$id`` (ids are never reused)."""

    def forget(self) -> None:
        self.records.clear()

    def refusal(self, request: Request) -> JSONResponse | None:
        tokens = request.headers.get("x-cybozu-api-token", "").split(",")
        if self.token not in tokens:
            return kintone_error(401, "GAIA_IA02", "APIトークンが不正です。")
        return None

    def routes(self, app: FastAPI) -> None:
        @app.get("/k/v1/app/form/fields.json")
        async def fields(request: Request) -> JSONResponse:
            if request.query_params.get("app") != str(self.app_id):
                return kintone_error(404, "GAIA_AP01", "指定したアプリ（id: {}）が見つかりません。")
            return JSONResponse(
                {
                    "properties": {
                        code: {"code": code, "label": code, **spec} for code, spec in FIELDS.items()
                    },
                    "revision": "3",
                }
            )

        @app.put("/k/v1/records.json")
        async def upsert(request: Request) -> JSONResponse:
            if request.headers.get("content-type", "").split(";")[0] != "application/json":
                return kintone_error(415, "CB_IJ01", "JSON形式で送信してください。")
            body = orjson.loads(await request.body())
            problem = self._check(body)
            if problem is not None:
                return problem
            invalid: dict[str, Any] = {}
            for i, entry in enumerate(body["records"]):
                email = entry["record"].get("メールアドレス", {}).get("value")
                if email in self.bad_emails:
                    invalid[f"records[{i}].メールアドレス.value"] = {
                        "messages": ["メールアドレスの形式が正しくありません。"]
                    }
            if invalid:
                return kintone_error(400, "CB_VA01", "入力内容が正しくありません。", invalid)
            return JSONResponse({"records": [self._apply(entry) for entry in body["records"]]})

        self._delete_routes(app)

    def _check(self, body: Any) -> JSONResponse | None:
        if not isinstance(body, dict) or set(body) - {"app", "upsert", "records"}:
            return kintone_error(
                400, "CB_VA01", "入力内容が正しくありません。", {"": {"messages": ["unknown key"]}}
            )
        if str(body.get("app")) != str(self.app_id):
            return kintone_error(
                404, "GAIA_AP01", f"指定したアプリ（id: {body.get('app')}）が見つかりません。"
            )
        if body.get("upsert") is not True:
            return kintone_error(
                400,
                "CB_VA01",
                "入力内容が正しくありません。",
                {"upsert": {"messages": ["must be true here"]}},
            )
        records = body.get("records")
        if not isinstance(records, list) or not 1 <= len(records) <= MAX_RECORDS:
            return kintone_error(
                400,
                "CB_VA01",
                "入力内容が正しくありません。",
                {"records": {"messages": [f"一度に{MAX_RECORDS}件までのレコードを更新できます。"]}},
            )
        for i, entry in enumerate(records):
            if (
                not isinstance(entry, dict)
                or set(entry) - {"updateKey", "record", "revision"}
                or "id" in entry
            ):
                return kintone_error(
                    400,
                    "CB_VA01",
                    "入力内容が正しくありません。",
                    {f"records[{i}]": {"messages": ["updateKey and record only"]}},
                )
            key = entry.get("updateKey") or {}
            spec = FIELDS.get(key.get("field", ""))
            if spec is None or not spec["unique"] or not isinstance(key.get("value"), str | int):
                return kintone_error(
                    400,
                    "CB_VA01",
                    "入力内容が正しくありません。",
                    {
                        f"records[{i}].updateKey": {
                            "messages": ["重複禁止のフィールドを指定してください。"]
                        }
                    },
                )
            record = entry.get("record") or {}
            if key["field"] in record:
                return kintone_error(
                    400,
                    "CB_VA01",
                    "入力内容が正しくありません。",
                    {f"records[{i}].record": {"messages": ["updateKey field given twice"]}},
                )
            for code, value in record.items():
                if code not in FIELDS:
                    return kintone_error(
                        400, "GAIA_FC01", f"指定したフィールド（code: {code}）が見つかりません。"
                    )
                if (
                    not isinstance(value, dict)
                    or set(value) != {"value"}
                    or not isinstance(value["value"], str)
                ):
                    return kintone_error(
                        400,
                        "CB_VA01",
                        "入力内容が正しくありません。",
                        {f"records[{i}].{code}.value": {"messages": ["value must be text"]}},
                    )
        return None

    def _apply(self, entry: dict[str, Any]) -> dict[str, str]:
        key = str(entry["updateKey"]["value"])
        with self.lock:
            existing = self.records.get(key)
            record = (
                existing
                if existing is not None
                else {"$id": str(len(self.records) + len(self.deleted) + 1), "$revision": "0"}
            )
            record.update({code: value["value"] for code, value in entry["record"].items()})
            record[entry["updateKey"]["field"]] = key
            record["$revision"] = str(int(record["$revision"]) + 1)
            self.records[key] = record
            self.upserts[key] += 1
            self.applied[key] += 1
            return {
                "id": record["$id"],
                "revision": record["$revision"],
                "operation": "UPDATE" if existing else "INSERT",
            }

    def _delete_routes(self, app: FastAPI) -> None:
        """``DELETE /k/v1/records.json`` with JSON ``{"app", "ids"[, "revisions"]}``,
        1..100 ids, all or nothing (an unknown id: ``404 GAIA_RE01``, nothing
        deleted), answering ``{}``; and ``GET /k/v1/records.json?app=N&query=$id in
        ("1", ...)&fields[0]=$id``, the one query form the platform reads back."""

        @app.delete("/k/v1/records.json")
        async def delete(request: Request) -> JSONResponse:
            if request.headers.get("content-type", "").split(";")[0] != "application/json":
                return kintone_error(415, "CB_IJ01", "JSON形式で送信してください。")
            body = orjson.loads(await request.body())
            if not isinstance(body, dict) or set(body) - {"app", "ids", "revisions"}:
                return kintone_error(400, "CB_VA01", "入力内容が正しくありません。", {})
            if str(body.get("app")) != str(self.app_id):
                return kintone_error(404, "GAIA_AP01", "指定したアプリが見つかりません。")
            ids = body.get("ids")
            if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_RECORDS:
                return kintone_error(
                    400,
                    "CB_VA01",
                    "入力内容が正しくありません。",
                    {"ids": {"messages": [f"一度に{MAX_RECORDS}件までのレコードを削除できます。"]}},
                )
            with self.lock:
                by_id = {r["$id"]: key for key, r in self.records.items()}
                for record_id in ids:
                    if str(record_id) not in by_id:
                        return kintone_error(
                            404,
                            "GAIA_RE01",
                            f"指定したレコード（id: {record_id}）が見つかりません。",
                        )
                for record_id in ids:
                    self.deleted[str(record_id)] = self.records.pop(by_id[str(record_id)])
            return JSONResponse({})

        @app.get("/k/v1/records.json")
        async def read(request: Request) -> JSONResponse:
            params = request.query_params
            if params.get("app") != str(self.app_id):
                return kintone_error(404, "GAIA_AP01", "指定したアプリが見つかりません。")
            query = re.fullmatch(r'\$id in \(((?:"\d+"(?:, ?)?)+)\)', params.get("query", ""))
            if query is None or params.get("fields[0]") != "$id":
                return kintone_error(400, "GAIA_IQ11", "クエリ記法が間違っています。")
            wanted = set(re.findall(r'"(\d+)"', query[1]))
            with self.lock:
                found = [r["$id"] for r in self.records.values() if r["$id"] in wanted]
            return JSONResponse(
                {
                    "records": [{"$id": {"type": "__ID__", "value": i}} for i in found],
                    "totalCount": None,
                }
            )
