"""Customers: search (``GET /console/customers?q=``) and the profile 360
(``GET /console/customers/{customer_id}``).

Search: the text is tried as every identifier it could be
(``cdp.services.customer_search.identifier_candidates``), each resolved by the
profile lookups (indexed point reads; in Kafka mode too), and as a name, kana
reading or email substring over the ``customers`` table (folded: full- and
half-width kana, katakana and hiragana alike), paged by keyset (``after``).

Profile: the lookup's answer (identifiers, profile, consent, lead score and
stages, segments, merges with their reasons), and from SQL the customer's
own rows only: the timeline (paged by ``before``), the orders, the lead score
day by day over the last 90 days with every contribution that makes it
(``cdp.read.timeline``). Every profile view is audited (``profile.view``,
the customer as an HMAC subject); a search is audited without its text.
"""

from __future__ import annotations

import sys
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from cdp.console import i18n
from cdp.console.web import PREFIX, ConsoleContext, Viewer, render, signed_in
from cdp.errors import LogUnavailableError, NotFoundError
from cdp.read import timeline
from cdp.services import customer_search
from projections import lead_score

TIMELINE_PAGE: Final = 25
ORDERS_SHOWN: Final = 50
SCORE_DAYS: Final = 90
CONSENTS: Final = ("email", "sms", "line", "phone", "ads", "analytics")

i18n.register(
    {
        "customers.title": ("Customers", "顧客"),
        "customers.search_label": (
            "Email, phone, user id, LINE / X / Instagram id, cus_ id, or a name (kana too)",
            "メール・電話番号・ユーザーID・LINE / X / Instagram ID・cus_ ID、または氏名（カナ可）",
        ),
        "customers.results": ("Matches", "検索結果"),
        "customers.all": ("All customers", "すべての顧客"),
        "customers.no_match": ("No customer matches.", "一致する顧客はいません。"),
        "customers.names_unavailable": (
            "Searching by name needs SQL reads here: {reason}",
            "氏名での検索には SQL の読み取りが必要です: {reason}",
        ),
        "customers.customer": ("Customer", "顧客"),
        "customers.name": ("Name", "氏名"),
        "customers.kana": ("Reading", "フリガナ"),
        "customers.email": ("Email", "メール"),
        "customers.stage": ("Stage", "段階"),
        "customers.orders": ("Orders", "注文数"),
        "customers.revenue": ("Revenue", "売上"),
        "customers.last_seen": ("Last seen", "最終アクセス"),
        "customers.matched_by": ("Matched by", "一致した識別子"),
        "customers.not_found": ("No such customer", "該当する顧客がいません"),
        "customers.unnamed": ("(no name)", "（氏名なし）"),
        "customers.merged_note": (
            "{old} was merged into this customer.",
            "{old} はこの顧客に統合されました。",
        ),
        "customers.summary": ("Summary", "概要"),
        "customers.phone": ("Phone", "電話番号"),
        "customers.gender_age": ("Gender / age", "性別 / 年齢"),
        "customers.region": ("Region", "地域"),
        "customers.preferred_channel": ("Preferred channel", "希望する連絡手段"),
        "customers.lifecycle": ("Lifecycle stage", "ライフサイクル段階"),
        "customers.funnel": ("Funnel stage", "ファネル段階"),
        "customers.first_last_seen": ("First / last seen", "初回 / 最終アクセス"),
        "customers.ltv": ("Orders / revenue (AOV)", "注文数 / 売上（平均単価）"),
        "customers.last_contacted": (
            "Last contacted (contacts in 30 days)",
            "最終接触（30日間の接触回数）",
        ),
        "customers.segments": ("Segments", "セグメント"),
        "customers.identifiers": ("Identifiers", "識別子"),
        "customers.kind": ("Kind", "種類"),
        "customers.value": ("Value", "値"),
        "customers.merges": ("Merge history", "統合の履歴"),
        "customers.merge_from": ("Merged customer", "統合された顧客"),
        "customers.merge_into": ("Into", "統合先"),
        "customers.merge_via": ("Shared identifier", "共通の識別子"),
        "customers.merge_reason": ("Reason", "理由"),
        "customers.merge_at": ("When", "日時"),
        "customers.no_merges": (
            "No merges: this customer was never joined with another.",
            "統合なし：他の顧客と統合されたことはありません。",
        ),
        "customers.consent": ("Consent", "同意"),
        "customers.channel": ("Channel", "チャネル"),
        "customers.state": ("State", "状態"),
        "customers.consent.yes": ("granted", "同意あり"),
        "customers.consent.no": ("refused", "拒否"),
        "customers.consent.unknown": ("not asked", "未確認"),
        "customers.consent_history": (
            "Changes appear in the timeline as Consent Updated.",
            "変更はタイムラインに Consent Updated として表示されます。",
        ),
        "customers.lead_score": ("Lead score", "リードスコア"),
        "customers.score_now": (
            "{now} now (as of the log clock), {then} at the last activity",
            "現在 {now}（ログ時刻）、最終行動時 {then}",
        ),
        "customers.hot": ("Hot lead now", "現在ホットリード"),
        "customers.not_hot": (
            "Not hot now (threshold {threshold})",
            "現在ホットではない（閾値 {threshold}）",
        ),
        "customers.score_chart": (
            "Lead score at the end of each day (last {days} days)",
            "各日の終わりのリードスコア（直近{days}日）",
        ),
        "customers.threshold": ("Hot threshold", "ホットの閾値"),
        "customers.day": ("Day", "日"),
        "customers.score": ("Score", "スコア"),
        "customers.why": ("Why: the rules that fired", "理由：加点したルール"),
        "customers.why_note": (
            "Each rule scores its points per day (up to its daily cap); points halve every "
            "{half_life} days. Decayed: what they are worth as of the log clock.",
            "各ルールは1日ごとに加点（上限あり）し、ポイントは{half_life}日ごとに半減します。"
            "減衰後：ログ時刻時点の価値。",
        ),
        "customers.rule": ("Rule", "ルール"),
        "customers.matches": ("Matches", "条件"),
        "customers.points_each": ("Points", "ポイント"),
        "customers.events": ("Events", "イベント数"),
        "customers.points": ("Points earned", "獲得ポイント"),
        "customers.decayed": ("Decayed", "減衰後"),
        "customers.by_day": ("Contributions by day", "日ごとの内訳"),
        "customers.no_score": ("No scored activity.", "加点された行動はありません。"),
        "customers.sales": ("Sales", "営業"),
        "customers.deals": ("Deals (open / won / lost)", "商談（進行中 / 受注 / 失注）"),
        "customers.open_value": ("Open deal value", "進行中の商談額"),
        "customers.won_revenue": ("Won revenue", "受注額"),
        "customers.sales_owner": ("Owner / last stage", "担当 / 最終ステージ"),
        "customers.last_sales_touch": ("Last sales touch", "最終営業接触"),
        "customers.order": ("Order", "注文"),
        "customers.placed_at": ("Placed", "注文日時"),
        "customers.items": ("Items", "商品"),
        "customers.refunded": ("Refunded", "返金"),
        "customers.no_orders": ("No orders.", "注文はありません。"),
        "customers.timeline": ("Timeline", "タイムライン"),
        "customers.time": ("Time (UTC)", "日時（UTC）"),
        "customers.type": ("Type", "種別"),
        "customers.event": ("Event", "イベント"),
        "customers.source": ("Source", "ソース"),
        "customers.detail": ("Detail", "詳細"),
        "customers.older": ("Older events", "古いイベント"),
        "customers.newest": ("Newest events", "最新のイベント"),
        "customers.sql_unavailable": (
            "Not shown here: {reason}",
            "ここでは表示できません: {reason}",
        ),
    }
)


def _load(answer: bytes) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(answer)
    return loaded


def _row_of(answer: dict[str, Any], matched: str) -> dict[str, Any]:
    """A search result row from a lookup answer."""
    p = answer.get("profile") or {}
    return {
        "customer_id": answer["customer_id"],
        "name": p.get("name"),
        "last_name_kana": p.get("last_name_kana"),
        "first_name_kana": p.get("first_name_kana"),
        "email": p.get("email"),
        "lifecycle_stage": p.get("lifecycle_stage"),
        "orders_count": p.get("orders_count"),
        "revenue": p.get("revenue"),
        "last_seen": p.get("last_seen"),
        "matched": matched,
    }


def _time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _rule_text(rule: lead_score.Rule | None) -> str:
    """What a rule matches, in the rules file's words."""
    if rule is None:
        return "–"
    parts = [
        f"{name}={value}"
        for name, value in (
            ("type", rule.type),
            ("event", rule.event),
            ("path", rule.path_prefix),
            ("property", rule.prop),
            ("equals", rule.equals),
        )
        if value is not None
    ]
    return ", ".join(parts) or "–"


def _why(
    state: lead_score.State | None, rules: lead_score.Rules, as_of: datetime | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every contribution (by rule and day) and their sums per rule, heaviest first."""
    if state is None:
        return [], []
    contributions = lead_score.explain(state, rules, at=as_of, top=sys.maxsize)
    per_rule: dict[str, dict[str, Any]] = {}
    for c in contributions:
        rule = rules.rule(c["rule"])
        entry = per_rule.setdefault(
            c["rule"],
            {
                "rule": c["rule"],
                "matches": _rule_text(rule),
                "points_each": rule.points if rule else None,
                "daily_cap": rule.daily_cap if rule else None,
                "events": 0,
                "points": 0.0,
                "decayed": 0.0,
            },
        )
        entry["events"] += c["events"]
        entry["points"] += c["points"]
        entry["decayed"] += c["decayed_points"]
    return contributions, sorted(per_rule.values(), key=lambda e: -abs(e["decayed"]))


def router(ctx: ConsoleContext) -> APIRouter:
    """``GET /console/customers`` and ``GET /console/customers/{customer_id}``."""
    routes = APIRouter(include_in_schema=False)
    rules = ctx.settings.runtime_config().scoring

    @routes.get(PREFIX + "/customers")
    def search(
        request: Request,
        viewer: Annotated[Viewer, Depends(signed_in)],
        q: str = "",
        after: str | None = None,
    ) -> Response:
        text = q.strip()[:200]
        exact: list[dict[str, Any]] = []
        seen: set[str] = set()
        if text and after is None:
            for candidate in customer_search.identifier_candidates(text):
                try:
                    answer, _ = ctx.lookups.profile(candidate, 0)
                except (NotFoundError, ValueError, LogUnavailableError):
                    continue
                row = _row_of(_load(answer), candidate)
                if row["customer_id"] not in seen:
                    seen.add(row["customer_id"])
                    exact.append(row)
        names: customer_search.Page | None = None
        names_error = None
        named = exact and customer_search.names_one(text)
        try:
            if not named:
                names = customer_search.search_names(ctx.sql(), text, after=after)
        except LogUnavailableError as error:
            names_error = str(error)
        if text:
            found = len(exact) + (len(names.rows) if names else 0)
            ctx.record(viewer, "customers.search", "customers", results=found)
        return render(
            request,
            viewer,
            "customers/search.html",
            q=text,
            after=after,
            rows=exact
            + [
                {**r, "matched": ""}
                for r in (names.rows if names else [])
                if r["customer_id"] not in seen
            ],
            names=names,
            names_error=names_error,
        )

    @routes.get(PREFIX + "/customers/{customer_id}")
    def profile(
        request: Request,
        customer_id: str,
        viewer: Annotated[Viewer, Depends(signed_in)],
        before: str | None = None,
    ) -> Response:
        try:
            answer = _load(ctx.lookups.profile(customer_id, 0)[0])
        except (NotFoundError, ValueError) as error:
            return render(request, viewer, "customers/missing.html", status=404, reason=str(error))
        except LogUnavailableError as error:
            return render(request, viewer, "unavailable.html", status=503, reason=str(error))
        survivor = answer["customer_id"]
        if survivor != customer_id:  # a merged-away id: show the customer it is now part of
            return RedirectResponse(
                f"{PREFIX}/customers/{survivor}?merged={customer_id}", status_code=303
            )
        ctx.record(viewer, "profile.view", ctx.audit.subject(customer_id))
        lead = answer.get("lead") or {}
        as_of = _time(lead.get("as_of"))
        sql_error = None
        events: list[dict[str, Any]] = []
        older: timeline.Before | None = None
        orders: list[dict[str, Any]] = []
        state = None
        try:
            con = ctx.sql()
            events, older = timeline.events(
                con,
                customer_id,
                answer["identifiers"],
                TIMELINE_PAGE,
                timeline.Before.parse(before),
            )
            orders = timeline.orders(con, customer_id, answer["identifiers"])
            state = timeline.lead_state(con, customer_id)
        except LogUnavailableError as error:
            sql_error = str(error)
        contributions, per_rule = (
            _why(state, rules, as_of) if state is not None else (lead.get("explanation") or [], [])
        )
        last_day = (as_of or datetime.now().astimezone()).date()
        scores: list[tuple[date, float]] = (
            timeline.score_by_day(state, rules, last_day - timedelta(days=SCORE_DAYS - 1), last_day)
            if state is not None
            else []
        )
        return render(
            request,
            viewer,
            "customers/profile.html",
            a=answer,
            p=answer.get("profile") or {},
            lead=lead,
            as_of=as_of,
            merged_from=request.query_params.get("merged"),
            events=events,
            older=older.token() if older else None,
            paged=before is not None,
            orders=orders[:ORDERS_SHOWN],
            orders_total=len(orders),
            contributions=contributions,
            per_rule=per_rule,
            scores=[(d.isoformat(), round(s, 2)) for d, s in scores],
            threshold=rules.hot_threshold,
            half_life=rules.half_life_days,
            score_days=SCORE_DAYS,
            consents=CONSENTS,
            sql_error=sql_error,
            time_of=_time,
        )

    return routes
