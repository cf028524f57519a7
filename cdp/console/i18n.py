"""The console's words in English and Japanese.

Each screen module registers its own texts with :func:`register`
(``{"key": ("English", "日本語")}``) at import; templates call ``t("key")``.
A key registered twice with different words, or asked for and never
registered, is an error (a test renders every screen in both languages).
Values are filled with ``str.format`` (``t("members", n=3)``).
"""

from __future__ import annotations

from typing import Any, Final

LANGS: Final = ("en", "ja")
_TEXTS: dict[str, tuple[str, str]] = {}


def register(texts: dict[str, tuple[str, str]]) -> None:
    """Add a screen's texts; ``ValueError`` for a key already given other words."""
    for key, words in texts.items():
        known = _TEXTS.get(key)
        if known is not None and known != words:
            raise ValueError(f"console text {key!r} registered twice with different words")
        _TEXTS[key] = words


def text(key: str, lang: str, **values: Any) -> str:
    """The words of ``key`` in ``lang`` (``en`` or ``ja``); ``KeyError`` if unknown."""
    try:
        words = _TEXTS[key][1 if lang == "ja" else 0]
    except KeyError:
        raise KeyError(f"console text {key!r} is not registered") from None
    return words.format(**values) if values else words


def registered() -> list[str]:
    """Every registered key (for tests)."""
    return sorted(_TEXTS)


def preferred(accept_language: str) -> str:
    """``ja`` when the browser prefers Japanese to English (RFC 9110 q-values),
    else ``en``."""
    best, best_q = "en", -1.0
    for position, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        # Earlier tags win ties, as browsers list them in order of preference.
        score = q - position * 1e-6
        if primary in LANGS and score > best_q:
            best, best_q = primary, score
    return best


def number(value: Any, digits: int = 0) -> str:
    """A number with thousands separators (``1,234``; ``12.5`` with digits=1);
    ``–`` for none."""
    if value is None:
        return "–"
    if isinstance(value, int) and digits == 0:
        return f"{value:,}"
    return f"{float(value):,.{digits}f}"


register(
    {
        "app.name": ("CDP console", "CDP コンソール"),
        "nav.overview": ("Overview", "概要"),
        "nav.customers": ("Customers", "顧客"),
        "nav.segments": ("Segments", "セグメント"),
        "nav.analytics": ("Analytics", "分析"),
        "nav.audiences": ("Audiences", "オーディエンス"),
        "nav.admin": ("Admin", "管理"),
        "nav.skip": ("Skip to content", "本文へスキップ"),
        "nav.menu": ("Main menu", "メインメニュー"),
        "lang.switch": ("日本語", "English"),
        "auth.title": ("Sign in", "サインイン"),
        "auth.user": ("User name", "ユーザー名"),
        "auth.password": ("Password", "パスワード"),
        "auth.submit": ("Sign in", "サインイン"),
        "auth.signout": ("Sign out", "サインアウト"),
        "auth.signed_in_as": ("Signed in as {name} ({role})", "{name}（{role}）でサインイン中"),
        "auth.failed": ("Wrong user name or password.", "ユーザー名またはパスワードが違います。"),
        "auth.locked": (
            "This user is locked after repeated failures. Wait 15 minutes or ask an admin.",
            "失敗が続いたためこのユーザーはロックされています。15分待つか管理者に連絡してください。",
        ),
        "auth.expired": (
            "Your session ended. Sign in again.",
            "セッションが終了しました。もう一度サインインしてください。",
        ),
        "auth.signed_out": ("You are signed out.", "サインアウトしました。"),
        "auth.no_users": (
            "No console user exists yet. Create one with: cdp users add NAME --role admin",
            "コンソールのユーザーがまだいません。cdp users add NAME --role admin で作成してください。",
        ),
        "role.viewer": ("viewer", "閲覧者"),
        "role.marketer": ("marketer", "マーケター"),
        "role.admin": ("admin", "管理者"),
        "refused.title": ("Not allowed", "許可されていません"),
        "refused.role.marketer": (
            "This needs the marketer or admin role.",
            "この操作にはマーケターまたは管理者の権限が必要です。",
        ),
        "refused.role.admin": (
            "This needs the admin role.",
            "この操作には管理者の権限が必要です。",
        ),
        "refused.csrf": (
            "The form was out of date or not from this console. Reload the page and try again.",
            "フォームが古いか、このコンソールからのものではありません。再読み込みしてやり直してください。",
        ),
        "unavailable.title": ("No data here", "データがありません"),
        "common.download_csv": ("Download CSV", "CSV をダウンロード"),
        "common.download_role": (
            "CSV downloads need the marketer or admin role.",
            "CSV のダウンロードにはマーケターまたは管理者の権限が必要です。",
        ),
        "common.none": ("None yet.", "まだありません。"),
        "common.previous": ("Previous", "前へ"),
        "common.next": ("Next", "次へ"),
        "common.search": ("Search", "検索"),
        "common.save": ("Save", "保存"),
        "common.count": ("Count", "件数"),
        "common.chart_data": ("Chart data", "グラフのデータ"),
    }
)
