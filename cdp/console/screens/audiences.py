"""Audiences (``/console/audiences``): where segments go, and sending them.

- The destinations of ``destinations.toml`` (Google Ads, Meta, LINE, webhooks,
  and the SFA pushes to Salesforce, HubSpot, kintone): per audience the last
  sync, its adds and removes, a sync left half-way, refused records, and a
  "sync now" button (marketer and up; ``cdp.console.screens.sync_jobs`` runs it
  in the background, the page follows it). The numbers are
  ``cdp destinations status``'s (``cdp.console.screens.audience_state``).
- Audience files as ``cdp export`` writes them, downloaded (marketer and up;
  ``cdp.console.screens.audience_export``: APPI provision record and audit).
- The recent syncs, pushes and exports from the audit log (anyone's, CLI too).

Cost per view: a stat of each audience's journal files (parsed again only
when they changed), the segment names, and the audit log's tail (bounded).
"""

from __future__ import annotations

import functools
from typing import Annotated, Final

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.background import BackgroundTask

from cdp.console import i18n
from cdp.console.screens import audience_export
from cdp.console.screens.audience_state import StatusCache, audience_rows
from cdp.console.screens.sync_jobs import SyncJobs, runner
from cdp.console.web import (
    PREFIX,
    SECURITY_HEADERS,
    ConsoleContext,
    Viewer,
    checked_form,
    json_response,
    needs,
    render,
    signed_in,
    unavailable,
)
from cdp.errors import CdpError, LogUnavailableError
from cdp.services.privacy import audit_tail
from cdp.services.segment_lang import SegmentCatalog
from connectors.destinations import registry
from connectors.destinations.push import config as push_config

PAGE: Final = PREFIX + "/audiences"
ACTIVITY: Final = ("sync", "sfa.push", "export")
"""Audit actions shown as recent activity."""
ACTIVITY_SHOWN: Final = 20

i18n.register(
    {
        "audiences.title": ("Audiences", "オーディエンス"),
        "audiences.intro": (
            "Segments sent to ad platforms, webhooks and sales tools, and audience files.",
            "広告プラットフォーム・Webhook・営業支援ツールへ送るセグメントと、オーディエンスのファイル。",
        ),
        "audiences.destinations": ("Destinations", "連携先"),
        "audiences.none_configured": (
            "No destination is configured. Add one to destinations.toml in the data directory "
            "(see docs/destinations.md).",
            "連携先が設定されていません。データディレクトリの destinations.toml に追加してください"
            "（docs/destinations.md 参照）。",
        ),
        "audiences.config_error": (
            "destinations.toml has a problem:",
            "destinations.toml に問題があります:",
        ),
        "audiences.destination": ("Destination", "連携先"),
        "audiences.platform": ("Platform", "プラットフォーム"),
        "audiences.target": ("Target", "送信先"),
        "audiences.consent": ("Consent", "同意"),
        "audiences.segment": ("Segment", "セグメント"),
        "audiences.synced_members": ("Synced members", "同期済みの人数"),
        "audiences.last_sync": ("Last sync", "最終同期"),
        "audiences.changes": ("Adds / removes", "追加 / 削除"),
        "audiences.problems": ("Failures", "失敗"),
        "audiences.action": ("Action", "操作"),
        "audiences.never": ("never", "未同期"),
        "audiences.no_segment": ("no segment synced yet", "まだ同期したセグメントはありません"),
        "audiences.pending": (
            "stopped half-way (plan {plan} chunks done); the next sync resumes it",
            "途中で停止（計画 {plan} チャンク完了）。次の同期で再開します",
        ),
        "audiences.refused": ("{n} records refused", "{n} 件のレコードが拒否されました"),
        "audiences.missing": ("secrets missing: {names}", "未設定の秘密情報: {names}"),
        "audiences.sync_now": ("Sync now", "今すぐ同期"),
        "audiences.sync_segment": ("Sync a segment", "セグメントを同期"),
        "audiences.sync_start": ("Start sync", "同期を開始"),
        "audiences.needs_marketer": (
            "Syncing and exporting need the marketer or admin role.",
            "同期とエクスポートにはマーケターまたは管理者の権限が必要です。",
        ),
        "audiences.jobs": ("Syncs started here", "ここで開始した同期"),
        "audiences.job_started": ("Sync started.", "同期を開始しました。"),
        "audiences.started": ("Started", "開始"),
        "audiences.by": ("By", "実行者"),
        "audiences.state": ("State", "状態"),
        "audiences.result": ("Result", "結果"),
        "audiences.state.queued": ("queued", "待機中"),
        "audiences.state.running": ("running", "実行中"),
        "audiences.state.done": ("done", "完了"),
        "audiences.state.failed": ("failed", "失敗"),
        "audiences.result_text": (
            "{status}: +{adds} −{removes}, {members} members",
            "{status}: +{adds} −{removes}、{members} 人",
        ),
        "audiences.refused_records": (
            "Records the sales tool refused",
            "営業支援ツールが拒否したレコード",
        ),
        "audiences.customer": ("Customer", "顧客"),
        "audiences.error": ("Error", "エラー"),
        "audiences.export": ("Download an audience file", "オーディエンスのファイルをダウンロード"),
        "audiences.export_help": (
            "The segment's consenting members in a platform's upload format, as `cdp export` "
            "writes them. Each download is recorded (APPI provision record, audit log).",
            "同意のあるセグメントのメンバーを各プラットフォームのアップロード形式で出力します"
            "（cdp export と同じ）。ダウンロードはすべて記録されます（個人情報保護法の提供記録、監査ログ）。",
        ),
        "audiences.format": ("Format", "形式"),
        "audiences.consent_default": ("the format's own", "形式の既定"),
        "audiences.recipient": (
            "Who receives the file (e.g. the ad account)",
            "ファイルの受領者（例: 広告アカウント）",
        ),
        "audiences.options": ("Options (name=value)", "オプション（名前=値）"),
        "audiences.download": ("Download", "ダウンロード"),
        "audiences.activity": ("Recent syncs and exports", "最近の同期とエクスポート"),
        "audiences.at": ("At (UTC)", "日時（UTC）"),
        "audiences.actor": ("Who", "実行者"),
        "audiences.what": ("What", "内容"),
        "audiences.details": ("Details", "詳細"),
    }
)


def router(ctx: ConsoleContext) -> APIRouter:
    """The Audiences screen's routes."""
    routes = APIRouter(include_in_schema=False)
    data_dir = ctx.settings.data_dir
    cache = StatusCache(data_dir)
    jobs = SyncJobs(runner(ctx))

    def page(request: Request, viewer: Viewer, status: int = 200, error: str = "") -> Response:
        config_error = ""
        try:
            rows = audience_rows(data_dir, cache)
            names = sorted(push_config.load_all(data_dir))
        except CdpError as problem:
            rows, names, config_error = [], [], str(problem)
        activity = audit_tail.tail(data_dir, ACTIVITY_SHOWN, ACTIVITY)
        return render(
            request,
            viewer,
            "audiences/index.html",
            status=status,
            rows=rows,
            destination_names=names,
            config_error=config_error,
            segments=SegmentCatalog(data_dir).names(),
            jobs=jobs.recent(),
            highlight=request.query_params.get("job", ""),
            formats=list(registry.DESTINATIONS.values()),
            consents=audience_export.CONSENTS,
            activity=activity,
            error=error,
        )

    @routes.get(PAGE)
    def audiences(request: Request, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
        return page(request, viewer)

    @routes.post(PAGE + "/sync")
    async def sync_now(
        request: Request, viewer: Annotated[Viewer, Depends(needs("marketer"))]
    ) -> Response:
        form = await checked_form(request, viewer)
        destination, segment = form.get("destination", ""), form.get("segment", "")
        try:
            push_config.load(data_dir, destination)
            SegmentCatalog(data_dir).get(segment)
        except CdpError as problem:
            return page(request, viewer, 400, str(problem))
        job = jobs.submit(viewer, destination, segment)
        return RedirectResponse(f"{PAGE}?job={job.id}#sync-jobs", status_code=303)

    @routes.get(PAGE + "/jobs/{job_id}")
    def job_state(job_id: str, viewer: Annotated[Viewer, Depends(signed_in)]) -> Response:
        job = jobs.get(job_id)
        if job is None:
            return json_response({"error": f"no sync job {job_id!r} here"}, 404)
        return json_response(job.to_json())

    @routes.post(PAGE + "/export")
    async def export(
        request: Request, viewer: Annotated[Viewer, Depends(needs("marketer"))]
    ) -> Response:
        form = await checked_form(request, viewer)
        work = functools.partial(
            audience_export.export,
            ctx,
            viewer,
            form.get("segment", ""),
            form.get("format", "csv"),
            form.get("consent", ""),
            form.get("recipient", ""),
            form.get("options", ""),
        )
        try:  # off the event loop: it queries DuckDB and writes a file
            made = await anyio.to_thread.run_sync(work)
        except LogUnavailableError as problem:
            return unavailable(request, viewer, problem)
        except CdpError as problem:
            return page(request, viewer, 400, str(problem))
        return FileResponse(
            made.path,
            filename=made.filename,
            headers=SECURITY_HEADERS,
            background=BackgroundTask(made.remove),
        )

    return routes
