"""The analytics screen's words in English and Japanese (``analytics.*`` keys)."""

from __future__ import annotations

from typing import Final

from cdp.console import i18n

PAGES: Final = {
    "rfm": (
        ("RFM grid", "RFM グリッド"),
        (
            "Buyers scored by recency, frequency and money, in named segments and on the R × F grid.",
            "購入者を最新購入日・購入頻度・購入金額で採点し、名前付きセグメントと R × F のグリッドに分けます。",
        ),
    ),
    "cohorts": (
        ("Cohort retention", "コホート継続率"),
        (
            "Share of each acquisition cohort that ordered again, period by period since the first order.",
            "初回購入の時期ごとのコホートが、その後の各期間に再購入した割合です。",
        ),
    ),
    "ltv": (
        ("LTV by cohort", "コホート別 LTV"),
        (
            "Cumulative revenue per customer of each acquisition cohort, by periods since the first order.",
            "初回購入の時期ごとのコホートについて、顧客 1 人あたりの累計売上を期間ごとに示します。",
        ),
    ),
    "sequences": (
        ("A → B sequences", "A→B 購買パターン"),
        (
            "“Buyers of A buy B about two months later”: product pairs, their share and the time between.",
            "「A を買った人は約 2 か月後に B を買う」：商品の組、その割合、購入までの日数です。",
        ),
    ),
    "next-purchase": (
        ("Next purchase", "次回購入予測"),
        (
            "Repeat customers with their predicted next order date, soonest first.",
            "リピート顧客の次回購入予測日です（早い順）。",
        ),
    ),
    "email-ab": (
        ("Email A/B tests", "メール A/B テスト"),
        (
            "Open and click rates per campaign variant, tested against the control.",
            "キャンペーンのバリアントごとの開封率・クリック率と、対照との有意差検定です。",
        ),
    ),
    "campaigns": (
        ("Campaigns → sales", "キャンペーン → 商談"),
        (
            "Leads, hot leads, hand-offs, deals and won revenue per first and last campaign touch.",
            "最初・最後に接したキャンペーンごとのリード、ホットリード、営業への引き渡し、商談、受注額です。",
        ),
    ),
}

SEGMENTS: Final = {
    "champions": ("Champions", "優良顧客"),
    "loyal_customers": ("Loyal customers", "ロイヤル顧客"),
    "potential_loyalists": ("Potential loyalists", "ロイヤル候補"),
    "new_customers": ("New customers", "新規顧客"),
    "promising": ("Promising", "有望顧客"),
    "need_attention": ("Need attention", "要注意顧客"),
    "about_to_sleep": ("About to sleep", "休眠予備軍"),
    "cant_lose": ("Can't lose", "失ってはならない顧客"),
    "at_risk": ("At risk", "離反リスク顧客"),
    "hibernating": ("Hibernating", "休眠顧客"),
}

COLUMNS: Final = {
    "segment": ("Segment", "セグメント"),
    "customers": ("Customers", "顧客数"),
    "share": ("Share", "構成比"),
    "revenue": ("Revenue", "売上"),
    "avg_recency_days": ("Avg days since last order", "最終購入からの平均日数"),
    "avg_frequency": ("Avg orders", "平均購入回数"),
    "avg_monetary": ("Avg revenue", "平均売上"),
    "cohort": ("Cohort", "コホート"),
    "pair_customers": ("Buyers of A then B", "A の後に B を購入"),
    "x_buyers": ("Buyers of A", "A の購入者"),
    "confidence": ("Share of A buyers", "A 購入者に占める割合"),
    "lift": ("Lift", "リフト"),
    "median_gap_days": ("Median days to B", "B までの日数（中央値）"),
    "gap_iqr": ("Middle half (days)", "中央 50%（日）"),
    "support": ("Share of all buyers", "全購入者に占める割合"),
    "days_after": ("Days after A", "A の購入からの日数"),
    "customer": ("Customer", "顧客"),
    "orders": ("Orders", "注文数"),
    "last_order": ("Last order", "最終購入日"),
    "predicted": ("Predicted next order", "次回購入予測日"),
    "window": ("Likely between", "予測範囲"),
    "due_in_days": ("Due in (days)", "予測日まで（日）"),
    "overdue": ("Overdue", "予測超過"),
    "due": ("Predicted next order", "次回購入予測"),
    "variant": ("Variant", "バリアント"),
    "delivered": ("Sent", "配信数"),
    "opened": ("Opened", "開封数"),
    "open_rate": ("Open rate", "開封率"),
    "clicked": ("Clicked", "クリック数"),
    "click_rate": ("Click rate", "クリック率"),
    "open_p": ("p-value (opens)", "p 値（開封）"),
    "confidence_level": ("Confidence (opens)", "信頼度（開封）"),
    "click_p": ("p-value (clicks)", "p 値（クリック）"),
    "touch": ("Touch", "接点"),
    "source": ("Source", "流入元"),
    "campaign": ("Campaign", "キャンペーン"),
    "leads": ("Leads", "リード"),
    "hot_leads": ("Hot leads", "ホットリード"),
    "handed": ("Handed to sales", "営業へ引き渡し"),
    "deals": ("Deals", "商談"),
    "won": ("Won", "受注"),
    "won_revenue": ("Won revenue", "受注額"),
    "lead_to_won": ("Lead → won", "リード→受注"),
}

OPTIONS: Final = {
    "period": ("Cohort period", "コホートの期間"),
    "tz": ("Time zone", "タイムゾーン"),
    "currency": ("Currency (empty: the most used)", "通貨（空欄：最も多い通貨）"),
    "product": ("Only patterns from product A", "商品 A からのパターンのみ"),
    "within_days": ("B within days of A", "A の購入から B までの日数（以内）"),
    "min_support": ("Minimum share of all buyers (0–1)", "全購入者に占める最小割合（0〜1）"),
    "min_customers": ("Minimum customers per pair", "組あたりの最小顧客数"),
    "limit": ("Pairs shown", "表示する組の数"),
    "show": ("Customers", "表示する顧客"),
    "prior_weight": ("Weight of the shop-wide prior (gaps)", "全体の事前分布の重み（間隔数）"),
    "campaign": ("Campaign id (empty: all)", "キャンペーン ID（空欄：すべて）"),
    "alpha": ("Significance level", "有意水準"),
    "touch": ("Campaign touch", "キャンペーンの接点"),
}

WORDS: Final = {
    "analytics.title": ("Analytics", "分析"),
    "analytics.intro": (
        "CRM analytics over the whole event log, the same numbers as `cdp analytics`.",
        "イベントログ全体に対する CRM 分析です。`cdp analytics` と同じ数値を表示します。",
    ),
    "analytics.apply": ("Show", "表示"),
    "analytics.as_of": (
        "Data as of the log clock {as_of}; computed at {computed} in {ms} ms.",
        "ログ時刻 {as_of} 時点のデータ（{computed} に {ms} ミリ秒で計算）。",
    ),
    "analytics.stale": (
        "New events arrived since; an updated result is being computed (reload in a moment).",
        "その後に新しいイベントが届きました。最新の結果を計算中です（しばらくして再読み込みしてください）。",
    ),
    "analytics.pending": (
        "Being computed over the whole log… this page reloads by itself.",
        "ログ全体を集計しています… このページは自動で再読み込みされます。",
    ),
    "analytics.error": (
        "This cannot be computed with these options: {reason}",
        "この条件では計算できません：{reason}",
    ),
    "analytics.bad_option": (
        "The value “{value}” of {option} cannot be used.",
        "{option} の値「{value}」は使えません。",
    ),
    "analytics.cli": ("Same numbers on the command line:", "コマンドラインで同じ数値を表示："),
    "analytics.download": ("Download {name}", "{name} をダウンロード"),
    "analytics.yes": ("yes", "はい"),
    "analytics.period.week": ("week", "週"),
    "analytics.period.month": ("month", "月"),
    "analytics.period.quarter": ("quarter", "四半期"),
    "analytics.touch.first": ("first touch", "最初の接点"),
    "analytics.touch.last": ("last touch", "最後の接点"),
    "analytics.touch.both": ("first and last touch", "最初と最後の接点"),
    "analytics.rfm.buyers": ("{n} buyers, revenue {revenue}.", "購入者 {n} 人、売上 {revenue}。"),
    "analytics.rfm.segments": ("Customers per RFM segment", "RFM セグメント別の顧客数"),
    "analytics.rfm.grid": ("Recency × frequency", "最新購入日（R）× 購入頻度（F）"),
    "analytics.rfm.grid_note": (
        "Rows: R score (5 = bought most recently); columns: F score (5 = most orders). "
        "Each cell: customers, revenue, segment. Scores that tie share a quintile, so some stay empty.",
        "行：R スコア（5 = 最も最近購入）、列：F スコア（5 = 最も多く購入）。"
        "各セルは顧客数・売上・セグメント。同点は同じ 5 分位になるため空のセルもあります。",
    ),
    "analytics.cohorts.summary": (
        "{cohorts} cohorts, {customers} buyers.",
        "コホート {cohorts} 件、購入者 {customers} 人。",
    ),
    "analytics.cohorts.chart": (
        "Share of each cohort ordering again, by periods since the first order",
        "初回購入からの期間ごとに再購入したコホートの割合",
    ),
    "analytics.cohorts.cut": (
        "Shown: the latest {n} cohorts and the first {n} periods; the CSV has them all.",
        "表示は直近 {n} コホートと最初の {n} 期間です。CSV にはすべて含まれます。",
    ),
    "analytics.cohorts.note": (
        "Cohort: the {period} of a customer's first order; column n: n {period}s later (0 = the first).",
        "コホート：初回購入の{period}。列 n：その n {period}後（0 = 初回）。",
    ),
    "analytics.ltv.summary": (
        "{cohorts} cohorts, {customers} buyers, revenue {revenue} {currency}.",
        "コホート {cohorts} 件、購入者 {customers} 人、売上 {revenue} {currency}。",
    ),
    "analytics.ltv.other": (
        "{n} orders in other currencies are left out.",
        "他通貨の注文 {n} 件は含みません。",
    ),
    "analytics.ltv.chart": (
        "LTV per customer to date, by cohort",
        "コホート別、現在までの顧客あたり LTV",
    ),
    "analytics.ltv.table": (
        "Cumulative revenue per customer, by periods since the first order",
        "初回購入からの期間ごとの顧客あたり累計売上",
    ),
    "analytics.ltv.to_date": ("LTV to date", "現在までの LTV"),
    "analytics.ltv.note": (
        "Net of refunds, one currency. Column n: n {period}s after the first order.",
        "返金差し引き後、単一通貨。列 n：初回購入の n {period}後。",
    ),
    "analytics.sequences.summary": (
        "{pairs} pairs found among {buyers} buyers (B within {days} days); the top {shown} by lift.",
        "購入者 {buyers} 人の中で {pairs} 組（{days} 日以内に B）。リフト上位 {shown} 組を表示。",
    ),
    "analytics.sequences.chart": (
        "Share of A buyers who buy B within {days} days (%)",
        "A 購入者のうち {days} 日以内に B を買った割合（%）",
    ),
    "analytics.sequences.table": (
        "Buyers of A who buy B within {days} days",
        "A の購入後 {days} 日以内に B を買った顧客",
    ),
    "analytics.sequences.distribution": ("Time to B", "B までの日数"),
    "analytics.sequences.show": ("Distribution", "分布を表示"),
    "analytics.sequences.gaps": ("Days from {x} to {y}", "{x} から {y} までの日数"),
    "analytics.sequences.gaps_summary": (
        "{n} customers bought B within {days} days of A; median {median} days.",
        "{n} 人が A の購入後 {days} 日以内に B を購入（中央値 {median} 日）。",
    ),
    "analytics.sequences.note": (
        "Only buyers whose first A is at least {days} days old count. "
        "Lift = share of A buyers who buy B ÷ share of all buyers who buy B.",
        "最初の A 購入から {days} 日以上経過した購入者のみを数えます。"
        "リフト = A 購入者のうち B を買った割合 ÷ 全購入者のうち B を買った割合。",
    ),
    "analytics.next.summary": (
        "{n} repeat customers, {overdue} of them overdue.",
        "リピート顧客 {n} 人、うち予測超過 {overdue} 人。",
    ),
    "analytics.next.chart": (
        "Customers by predicted next order (days from the log clock)",
        "次回購入予測日別の顧客数（ログ時刻からの日数）",
    ),
    "analytics.next.late": ("already past", "予測日を経過"),
    "analytics.next.within": ("in {low}–{high} days", "{low}〜{high} 日後"),
    "analytics.next.later": ("in {days}+ days", "{days} 日以上先"),
    "analytics.next.list": ("Customers by predicted next order", "次回購入予測日順の顧客"),
    "analytics.next.range": ("{first}–{last} of {total}", "{total} 人中 {first}〜{last} 人目"),
    "analytics.next.page": ("Page {page} of {pages}", "{pages} ページ中 {page} ページ"),
    "analytics.next.pages": ("Pages", "ページ"),
    "analytics.next.show.upcoming": (
        "due from now on, soonest first",
        "これから購入予定（近い順）",
    ),
    "analytics.next.show.overdue": ("overdue only", "予測超過のみ"),
    "analytics.next.show.all": ("every repeat customer", "すべてのリピート顧客"),
    "analytics.next.csv_all": (
        "(The CSV has all {n} of the report, with due_in_days to sort by.)",
        "（CSV にはレポートの全 {n} 人が due_in_days 付きで含まれます。）",
    ),
    "analytics.next.note": (
        "Predicted from each customer's gaps between orders, shrunk towards the shop's "
        "(gamma–exponential model); overdue = past the likely window.",
        "顧客ごとの購入間隔を店舗全体の傾向で補正して予測（ガンマ－指数モデル）。"
        "予測超過 = 予測範囲を過ぎた顧客。",
    ),
    "analytics.email.summary": (
        "{n} campaigns; significance level {alpha}; {significant} significant differences in opens.",
        "キャンペーン {n} 件、有意水準 {alpha}、開封率の有意差 {significant} 件。",
    ),
    "analytics.email.chart": (
        "Open rate per campaign and variant",
        "キャンペーン・バリアント別の開封率",
    ),
    "analytics.email.table": ("Variants per campaign", "キャンペーンごとのバリアント"),
    "analytics.email.control": ("control", "対照"),
    "analytics.email.winner": ("winner: {variant}", "勝者：{variant}"),
    "analytics.email.not_significant": ("not significant", "有意差なし"),
    "analytics.email.note": (
        "Each variant against the campaign's first variant (the control), two-sided pooled "
        "two-proportion z-test on the open rate; confidence = 1 − p.",
        "各バリアントをキャンペーンの最初のバリアント（対照）と比較。開封率について両側の"
        "2 標本比率の z 検定（プール）を行います。信頼度 = 1 − p。",
    ),
    "analytics.campaigns.summary": (
        "{leads} leads, {deals} deals, {won} won, won revenue {revenue}.",
        "リード {leads}、商談 {deals}、受注 {won}、受注額 {revenue}。",
    ),
    "analytics.campaigns.chart": (
        "Won deals per campaign ({touch})",
        "キャンペーン別の受注数（{touch}）",
    ),
    "analytics.campaigns.table": (
        "Conversion per campaign touch",
        "キャンペーンの接点別のコンバージョン",
    ),
}


def register() -> None:
    """Register every word of the analytics screen (idempotent)."""
    texts = dict(WORDS)
    for page, (title, description) in PAGES.items():
        texts[f"analytics.page.{page}"] = title
        texts[f"analytics.desc.{page}"] = description
    texts.update({f"analytics.segment.{k}": v for k, v in SEGMENTS.items()})
    texts.update({f"analytics.col.{k}": v for k, v in COLUMNS.items()})
    texts.update({f"analytics.opt.{k}": v for k, v in OPTIONS.items()})
    i18n.register(texts)
