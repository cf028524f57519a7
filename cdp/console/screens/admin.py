"""Admin (``/console/admin``, the admin role only; anyone else gets a 403 page).

One page with five parts, each backed by the service the CLI uses:

- sources and their write keys (``cdp.services.sources``; ``cdp sources``):
  add (the key is shown once), rotate (a new key, shown once), revoke, the
  browser origins allowed;
- read tokens (``cdp.services.tokens``; ``cdp tokens``): add (shown once), revoke;
- console users (``cdp.services.users``; ``cdp users``): add with a role and an
  initial password, change the role, unlock, remove (their sessions end);
- privacy requests (``cdp.services.privacy.requests``): the list with status,
  and a new one filed as ``POST /v1/privacy/requests`` files it
  (``cdp.services.privacy.filing``: suppression at once; an erasure waits for
  the data directory in embedded mode, runs at once in Kafka mode);
- the audit log's newest lines (``cdp audit``), filtered by action.

The routes of the first four live in ``admin_access`` and ``admin_people``.
Every change is audited with the console user as the actor, with names of
sources, tokens and users as targets: never a key, token, password or
identifier. A secret is shown on the page that answers its POST, never in a
URL, and the page is not cached.

Cost per view: five small files (sources, tokens, users, requests) and the
audit log's tail (``audit_tail``: at most 8 MiB read).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Final

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from cdp.console import i18n
from cdp.console.screens import admin_access, admin_people
from cdp.console.web import PREFIX, ConsoleContext, Viewer, needs, render
from cdp.errors import CdpError
from cdp.services import tokens as read_tokens
from cdp.services.privacy import audit_tail
from cdp.services.privacy import requests as privacy_requests
from cdp.services.sources import SourceRegistry
from cdp.services.users import ROLES

PAGE: Final = PREFIX + "/admin"
AUDIT_SHOWN: Final = 50
REQUESTS_SHOWN: Final = 100

i18n.register(
    {
        "admin.title": ("Admin", "管理"),
        "admin.sources": ("Sources and write keys", "ソースと書き込みキー"),
        "admin.tokens": ("Read tokens", "読み取りトークン"),
        "admin.users": ("Console users", "コンソールのユーザー"),
        "admin.privacy": ("Privacy requests", "プライバシー請求"),
        "admin.audit": ("Audit log (newest first)", "監査ログ（新しい順）"),
        "admin.name": ("Name", "名前"),
        "admin.created": ("Created (UTC)", "作成日時（UTC）"),
        "admin.state": ("State", "状態"),
        "admin.active": ("active", "有効"),
        "admin.revoked_at": ("revoked {at}", "{at} に無効化"),
        "admin.actions": ("Actions", "操作"),
        "admin.add": ("Add", "追加"),
        "admin.revoke": ("Revoke", "無効化"),
        "admin.confirm": ("Are you sure?", "よろしいですか？"),
        "admin.error": ("Not done:", "実行できませんでした:"),
        "admin.shown_once": (
            "Copy it now: it is shown this once and stored only hashed.",
            "今すぐコピーしてください。表示はこの一度だけで、ハッシュ化して保存されます。",
        ),
        "admin.back": ("Back to admin", "管理に戻る"),
        "admin.secret.source": ("Write key of source {name}", "ソース {name} の書き込みキー"),
        "admin.secret.token": ("Read token {name}", "読み取りトークン {name}"),
        "admin.secret.source_use": (
            "Send events with it as the HTTP Basic user name, e.g.:",
            "HTTP Basic 認証のユーザー名として送信します。例:",
        ),
        "admin.secret.token_use": (
            "Send it as Authorization: Bearer, e.g.:",
            "Authorization: Bearer として送信します。例:",
        ),
        "admin.name_rule": (
            "1-63 lower-case letters, digits, '_', '.' or '-'.",
            "英小文字・数字・'_'・'.'・'-' で 1〜63 文字。",
        ),
        "admin.sources.add": ("Add a source", "ソースを追加"),
        "admin.sources.origins": ("Browser origins allowed", "許可するブラウザのオリジン"),
        "admin.sources.origins_help": (
            "Browser origins allowed to send with the key (one a line, e.g. https://shop.example.jp)",
            "このキーで送信できるブラウザのオリジン（1行に1つ。例: https://shop.example.jp）",
        ),
        "admin.sources.allow": ("Allow origin", "オリジンを許可"),
        "admin.sources.disallow": ("Stop allowing", "許可をやめる"),
        "admin.sources.origins_save": ("Change origins", "オリジンを変更"),
        "admin.sources.rotate": ("New key", "キーを再発行"),
        "admin.sources.rotate_confirm": (
            "The current key stops working at once. Make a new key?",
            "現在のキーはすぐに使えなくなります。キーを再発行しますか？",
        ),
        "admin.tokens.add": ("Add a read token", "読み取りトークンを追加"),
        "admin.tokens.scopes": ("Scopes", "スコープ"),
        "admin.users.add": ("Add a user", "ユーザーを追加"),
        "admin.users.role": ("Role", "権限"),
        "admin.users.password": (
            "Initial password (at least 10 characters)",
            "初期パスワード（10文字以上）",
        ),
        "admin.users.last_sign_in": ("Last sign-in (UTC)", "最終サインイン（UTC）"),
        "admin.users.locked": ("locked", "ロック中"),
        "admin.users.failures": ("{n} failed sign-ins", "サインイン失敗 {n} 回"),
        "admin.users.set_role": ("Change role", "権限を変更"),
        "admin.users.unlock": ("Unlock", "ロック解除"),
        "admin.users.remove": ("Remove", "削除"),
        "admin.users.you": ("you", "あなた"),
        "admin.done.source.add": ("Source {name} added.", "ソース {name} を追加しました。"),
        "admin.done.source.revoke": ("Source {name} revoked.", "ソース {name} を無効化しました。"),
        "admin.done.source.origins": (
            "Origins of source {name} changed.",
            "ソース {name} のオリジンを変更しました。",
        ),
        "admin.done.token.revoke": (
            "Read token {name} revoked.",
            "読み取りトークン {name} を無効化しました。",
        ),
        "admin.done.user.add": ("User {name} added.", "ユーザー {name} を追加しました。"),
        "admin.done.user.role": ("Role of {name} changed.", "{name} の権限を変更しました。"),
        "admin.done.user.remove": (
            "User {name} removed; their sessions ended.",
            "ユーザー {name} を削除し、セッションを終了しました。",
        ),
        "admin.done.user.unlock": (
            "User {name} unlocked.",
            "ユーザー {name} のロックを解除しました。",
        ),
        "admin.done.privacy": ("Request {name} filed.", "請求 {name} を受け付けました。"),
        "admin.privacy.id": ("Request", "請求"),
        "admin.privacy.type": ("Type", "種類"),
        "admin.privacy.type.delete": ("erase", "削除"),
        "admin.privacy.type.suppress": ("suppress", "受信停止"),
        "admin.privacy.type.suppress-with-delete": ("suppress and erase", "受信停止と削除"),
        "admin.privacy.type.unsuppress": ("unsuppress", "受信停止の解除"),
        "admin.privacy.named_by": ("Named by", "識別子の種類"),
        "admin.privacy.status": ("Status", "状態"),
        "admin.privacy.received": ("Received (UTC)", "受付日時（UTC）"),
        "admin.privacy.by": ("Filed by", "請求者"),
        "admin.privacy.outcome": ("Steps, counts, failures", "手順・件数・失敗"),
        "admin.privacy.new": ("File a new request", "新しい請求"),
        "admin.privacy.identifier": (
            "The person's identifier (email:…, phone:…, user_id:…, line:…) or customer id (cus_…)",
            "本人の識別子（email:…、phone:…、user_id:…、line:…）または顧客ID（cus_…）",
        ),
        "admin.privacy.file": ("File the request", "請求を登録"),
        "admin.privacy.embedded": (
            "Suppression applies at once. An erasure needs the data directory to itself: it "
            "runs when the server starts again, or with `cdp privacy process` while it is "
            "stopped (docs/privacy.md).",
            "受信停止はすぐに適用されます。削除はデータディレクトリを専有する必要があるため、"
            "サーバーの次回起動時、または停止中の `cdp privacy process` で実行されます（docs/privacy.md）。",
        ),
        "admin.privacy.kafka": (
            "Suppression applies at once; an erasure starts at once (Kafka mode).",
            "受信停止はすぐに適用され、削除もすぐに開始されます（Kafka モード）。",
        ),
        "admin.audit.at": ("At (UTC)", "日時（UTC）"),
        "admin.audit.actor": ("Who", "実行者"),
        "admin.audit.action": ("Action", "操作"),
        "admin.audit.target": ("Target", "対象"),
        "admin.audit.details": ("Details", "詳細"),
        "admin.audit.filter": (
            "Only actions (e.g. user, token, source, sync, export, privacy)",
            "操作で絞り込み（例: user, token, source, sync, export, privacy）",
        ),
        "admin.audit.show": ("Show", "表示"),
    }
)


def short(target: str) -> str:
    """``email:<64 hex>`` as ``email:<first 12>…`` (as ``cdp audit`` shows it)."""
    kind, _, rest = target.partition(":")
    if len(rest) == 64 and all(c in "0123456789abcdef" for c in rest):
        return f"{kind}:{rest[:12]}…"
    return target


class AdminPage:
    """Renders the admin page (with an error, a notice or a secret) for the routes."""

    def __init__(self, ctx: ConsoleContext) -> None:
        self.ctx = ctx
        self.sources = SourceRegistry(ctx.settings.data_dir)
        self.tokens = read_tokens.TokenRegistry(ctx.settings.data_dir)
        self.requests = privacy_requests.Requests(ctx.settings.data_dir)

    def show(
        self, request: Request, viewer: Viewer, status: int = 200, error: str = ""
    ) -> Response:
        """The admin page; ``error``: why the last change was not made."""
        action = request.query_params.get("action", "").strip() or None
        self.ctx.audit.flush()  # the console's own lines first (they are buffered)
        done = request.query_params.get("m", "")
        notice = ""
        if done.startswith("admin.done."):
            with contextlib.suppress(KeyError):  # a made-up link shows nothing
                notice = viewer.t(done, name=request.query_params.get("n", ""))
        now = datetime.now(UTC)
        return render(
            request,
            viewer,
            "admin/index.html",
            status=status,
            error=error,
            notice=notice,
            sources=self.sources.list(),
            tokens=self.tokens.list(),
            scopes=read_tokens.SCOPES,
            users=[(u, u.locked(now)) for u in self.ctx.users.list()],
            roles=ROLES,
            requests=list(reversed(self.requests.all()))[:REQUESTS_SHOWN],
            request_types=privacy_requests.TYPES,
            audit=audit_tail.tail(self.ctx.settings.data_dir, AUDIT_SHOWN, action),
            audit_action=action or "",
            short=short,
        )

    async def change(
        self,
        request: Request,
        viewer: Viewer,
        work: Callable[[], Any],
        action: str,
        name: str,
        anchor: str,
        **details: Any,
    ) -> Response:
        """Make a change (``work``, off the event loop): the page with the
        service's reason when it refuses (400), else the audit line ``action``
        on ``<kind>:<name>``, on disk at once (as the CLI does for these rare,
        weighty events), and back to the page at ``#anchor`` saying what was done."""
        try:
            await anyio.to_thread.run_sync(work)
        except CdpError as error:
            return self.show(request, viewer, 400, str(error))
        self.ctx.record_now(viewer, action, f"{action.partition('.')[0]}:{name}", **details)
        return self.done(action, name, anchor)

    def issue(
        self,
        request: Request,
        viewer: Viewer,
        kind: str,
        name: str,
        make: Callable[[], str],
        action: str,
        details: Callable[[], dict[str, Any]] = dict,
    ) -> Response:
        """A new write key or read token (``make``): the page with the service's
        reason when it refuses (400), else the audit line ``action`` on
        ``<kind>:<name>`` with ``details()`` (on disk at once) and the page
        showing it this once."""
        try:
            value = make()
        except CdpError as error:
            return self.show(request, viewer, 400, str(error))
        self.ctx.record_now(viewer, action, f"{kind}:{name}", **details())
        return self.secret(request, viewer, kind, name, value)

    @staticmethod
    def done(message: str, name: str, anchor: str) -> Response:
        """Back to the page after a change, saying what was done."""
        from urllib.parse import urlencode  # noqa: PLC0415

        query = urlencode({"m": f"admin.done.{message}", "n": name})
        return RedirectResponse(f"{PAGE}?{query}#{anchor}", status_code=303)

    def secret(
        self, request: Request, viewer: Viewer, kind: str, name: str, value: str
    ) -> Response:
        """The page showing a new write key or read token, this once."""
        return render(
            request,
            viewer,
            "admin/secret.html",
            kind=kind,
            name=name,
            value=value,
            base=str(request.base_url).rstrip("/"),
        )


def router(ctx: ConsoleContext) -> APIRouter:
    """The Admin screen's routes (every one needs the admin role)."""
    routes = APIRouter(include_in_schema=False)
    page = AdminPage(ctx)

    @routes.get(PAGE)
    def admin(request: Request, viewer: Annotated[Viewer, Depends(needs("admin"))]) -> Response:
        return page.show(request, viewer)

    admin_access.add_routes(routes, ctx, page)
    admin_people.add_routes(routes, ctx, page, _on_filed)
    return routes


def _on_filed(request: Request) -> Any:
    """What the server does with an erasure as soon as it is filed (Kafka mode), else None."""
    return getattr(request.app.state, "on_privacy_filed", None)
