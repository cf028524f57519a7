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
"""

from __future__ import annotations

import secrets
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.fakes.base import FakeServer, error

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
class FakeKintone(FakeServer):
    token: str = "kintone-api-token-0123456789"
    app_id: int = 12
    records: dict[str, dict[str, str]] = field(default_factory=dict)
    upserts: Counter[str] = field(default_factory=Counter)
    bad_emails: set[str] = field(default_factory=set)

    def reset(self) -> None:
        with self.lock:
            self.log.clear()
            self.faults.clear()
            self.records.clear()
            self.upserts.clear()
            self.bad_emails.clear()

    def build(self) -> FastAPI:
        app = FastAPI()

        def unauthorised(request: Request) -> JSONResponse | None:
            tokens = request.headers.get("x-cybozu-api-token", "").split(",")
            if self.token not in tokens:
                return kintone_error(401, "GAIA_IA02", "APIトークンが不正です。")
            return None

        @app.get("/k/v1/app/form/fields.json")
        async def fields(request: Request) -> JSONResponse:
            refused = unauthorised(request)
            if refused:
                return refused
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
            refused = unauthorised(request)
            if refused:
                return refused
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

        return app

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
                else {"$id": str(len(self.records) + 1), "$revision": "0"}
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
