"""The Segments screen's words in English and Japanese (registered by ``segments``).

Keys under ``segments.b.`` are the builder's (``static/builder.js`` reads them
from the page, without the prefix, via :func:`builder_texts`).
"""

from __future__ import annotations

from typing import Final

from cdp.console import i18n

_BUILDER: Final[dict[str, tuple[str, str]]] = {
    "all": ("All of these hold", "すべてに当てはまる"),
    "any": ("Any of these holds", "いずれかに当てはまる"),
    "group": ("Group", "グループ"),
    "match": ("Match", "条件の組み合わせ"),
    "negate": ("Exclude (NOT)", "除外する（NOT）"),
    "remove": ("Remove", "削除"),
    "add": ("Add", "追加"),
    "add_kind": ("Add a condition", "条件を追加"),
    "add_filter": ("Add a property filter", "プロパティ条件を追加"),
    "kind.field": ("Profile field or metric", "顧客の属性・指標"),
    "kind.event": ("Did an event", "イベントの実行"),
    "kind.bought": ("Bought a product", "商品の購入"),
    "kind.sequence": ("Sequence: A then B", "順序: A の後に B"),
    "kind.group": ("Group (all / any)", "グループ（すべて／いずれか）"),
    "field": ("Field", "項目"),
    "traits": ("Profile fields", "顧客の属性"),
    "metrics": ("Metrics", "指標"),
    "op": ("Condition", "条件"),
    "value": ("Value", "値"),
    "values_hint": ("several: separate with commas", "複数はカンマ区切り"),
    "event": ("Event", "イベント"),
    "events_hint": ("several: separate with commas", "複数はカンマ区切り"),
    "property": ("Property", "プロパティ"),
    "within": ("In the last N days (empty: any time)", "直近 N 日以内（空欄: 期間指定なし）"),
    "count": ("Number of times", "回数"),
    "first": ("First (A)", "最初（A）"),
    "second": ("Then (B)", "その後（B）"),
    "follow": ("Then", "その後"),
    "follow.then": ("did B", "B をした"),
    "follow.not_then": ("did not do B", "B をしなかった"),
    "seq_within": ("B within N days of A", "A から N 日以内の B"),
    "seq_min": ("A at least N days ago", "A は N 日以上前"),
    "sql_only": (
        "This definition is raw SQL: edit it as text.",
        "この定義は SQL です。テキストで編集してください。",
    ),
    "empty": ("Add a condition to see the count.", "条件を追加すると人数が表示されます。"),
    "counting": ("Counting…", "集計中…"),
    "members": ("members", "人"),
    "failed": ("The count failed", "集計に失敗しました"),
    "op.eq": ("is", "等しい"),
    "op.ne": ("is not", "等しくない"),
    "op.in": ("is one of", "いずれかに等しい"),
    "op.not_in": ("is none of", "いずれにも等しくない"),
    "op.gt": ("greater than", "より大きい"),
    "op.gte": ("at least", "以上"),
    "op.lt": ("less than", "より小さい"),
    "op.lte": ("at most", "以下"),
    "op.between": ("between (two values, inclusive)", "範囲内（2つの値、両端を含む）"),
    "op.contains": ("contains", "含む"),
    "op.is_null": ("is empty", "空である"),
    "op.is_not_null": ("is not empty", "空でない"),
    "true": ("yes (true)", "はい（true）"),
    "false": ("no (false)", "いいえ（false）"),
}

WORDS: Final[dict[str, tuple[str, str]]] = {
    "segments.title": ("Segments", "セグメント"),
    "segments.new": ("New segment", "新しいセグメント"),
    "segments.name": ("Name", "名前"),
    "segments.kind": ("Kind", "種類"),
    "segments.kind.builtin": ("built-in", "組み込み"),
    "segments.kind.saved": ("rules", "ルール"),
    "segments.kind.sql": ("SQL", "SQL"),
    "segments.kind.invalid": ("invalid", "不正"),
    "segments.description": ("Description", "説明"),
    "segments.last_count": ("Last recorded size", "前回記録時の人数"),
    "segments.last_run": ("Recorded at", "記録日時"),
    "segments.never": ("not recorded", "未記録"),
    "segments.list_caption": (
        "Built-in and saved segments; sizes as of their last recorded run",
        "組み込みと保存済みのセグメント（人数は前回記録時点）",
    ),
    "segments.builder": ("Segment builder", "セグメントビルダー"),
    "segments.edit": ("Edit", "編集"),
    "segments.editing": ("Edit segment {name}", "セグメント {name} を編集"),
    "segments.conditions": ("Conditions", "条件"),
    "segments.definition": ("Definition (segment language, YAML)", "定義（セグメント言語、YAML）"),
    "segments.definition_hint": (
        "The form writes this text; you may edit it too, the form follows.",
        "フォームがこのテキストを書きます。直接編集することもでき、フォームが追従します。",
    ),
    "segments.live_count": ("Members now", "現在の人数"),
    "segments.sql": ("Generated SQL", "生成された SQL"),
    "segments.segment_name": ("Segment name (a-z, 0-9, _)", "セグメント名（a-z、0-9、_）"),
    "segments.segment_description": ("Description", "説明"),
    "segments.replace": (
        "Replace the saved segment of this name",
        "同じ名前の保存済みセグメントを置き換える",
    ),
    "segments.viewer_note": (
        "You can try definitions here; saving needs the marketer role.",
        "ここで定義を試せます。保存にはマーケターの権限が必要です。",
    ),
    "segments.no_script": (
        "The form needs JavaScript; without it, write the definition as text and save.",
        "フォームには JavaScript が必要です。無効な場合は定義をテキストで書いて保存してください。",
    ),
    "segments.saved": ("Saved.", "保存しました。"),
    "segments.recorded": ("Membership recorded.", "メンバーを記録しました。"),
    "segments.count_now": ("Members now", "現在の人数"),
    "segments.params": ("Parameters", "パラメーター"),
    "segments.history": ("Membership history", "メンバーの推移"),
    "segments.history_chart": (
        "Members, entered and left at each recorded run",
        "記録ごとの人数・流入・離脱",
    ),
    "segments.no_history": (
        "No recorded runs yet. Record one below, or run `cdp segment refresh`.",
        "まだ記録がありません。下のボタンか `cdp segment refresh` で記録できます。",
    ),
    "segments.run_at": ("Run at", "実行日時"),
    "segments.members": ("Members", "人数"),
    "segments.entered": ("Entered", "流入"),
    "segments.left": ("Left", "離脱"),
    "segments.record": ("Record membership now", "現在のメンバーを記録"),
    "segments.members_table": ("Members (by customer id)", "メンバー（顧客 ID 順）"),
    "segments.col.customer_id": ("Customer", "顧客"),
    "segments.col.name": ("Name", "氏名"),
    "segments.col.email": ("Email", "メール"),
    "segments.col.region": ("Region", "地域"),
    "segments.col.lifecycle_stage": ("Stage", "段階"),
    "segments.col.orders_count": ("Orders", "注文数"),
    "segments.col.revenue": ("Revenue", "売上"),
    "segments.col.last_seen": ("Last seen", "最終アクセス"),
    "segments.missing": ("No such segment", "セグメントが見つかりません"),
    "segments.missing_text": (
        "No segment named {name} (or it cannot be edited here).",
        "{name} という名前のセグメントはありません（またはここでは編集できません）。",
    ),
    "segments.broken": ("This segment does not run", "このセグメントは実行できません"),
    **{f"segments.b.{key}": words for key, words in _BUILDER.items()},
}


def builder_texts(lang: str) -> dict[str, str]:
    """The builder's words in ``lang``, keyed without the ``segments.b.`` prefix."""
    return {key: i18n.text(f"segments.b.{key}", lang) for key in _BUILDER}
