"""The customer search's folding: what a typed name matches, and which
identifiers a typed text may be."""

from __future__ import annotations

import duckdb
import pytest

from cdp.services.customer_search import fold, identifier_candidates, pattern

NAMES = [
    "佐藤 花子",
    "サトウ ハナコ",
    "ｻﾄｳ ﾊﾅｺ",
    "さとう はなこ",
    "ガーデン ﾊﾟﾝﾀﾞ",
    "ｶﾞｰﾃﾞﾝ パンダ",
    "ヴァイオリン",
    "Ｈａｎａｋｏ＠Ｅｘａｍｐｌｅ．ＪＰ",
    "hanako@example.jp",
    "Tanaka Ｔａｒｏ",
    "カトウ",
]
QUERIES = [
    "サトウ",
    "さとう",
    "ｻﾄｳﾊﾅｺ",
    "佐藤花子",
    "佐藤　花子",
    "ぱんだ",
    "ガーデン",
    "ｶﾞｰ",
    "かとう",
    "がとう",
    "ゔぁい",
    "HANAKO@example",
    "taro",
    "ｔａｎａｋａ",
]


@pytest.mark.parametrize("query", QUERIES)
def test_the_sql_pattern_matches_exactly_what_folding_says(query: str) -> None:
    con = duckdb.connect()
    wanted = pattern(query)
    assert wanted is not None
    for name in NAMES:
        (matched,) = con.execute(
            "SELECT regexp_matches($n, $p)", {"n": name, "p": wanted}
        ).fetchone()  # type: ignore[misc]
        assert matched == (fold(query) in fold(name)), (query, name)


def test_folding_joins_widths_scripts_and_case() -> None:
    assert fold("ｻﾄｳ ﾊﾅｺ") == fold("サトウ　ハナコ") == fold("さとうはなこ") == "さとうはなこ"
    assert fold("ｶﾞﾊﾟ") == "がぱ"
    assert fold("Ｈａｎａｋｏ") == "hanako"
    assert pattern("  ") is None


def test_identifier_candidates() -> None:
    assert identifier_candidates("Hanako@Example.JP")[0] == "email:hanako@example.jp"
    assert identifier_candidates("email:Hanako@Example.JP") == ["email:hanako@example.jp"]
    assert identifier_candidates("cus_0123") == ["cus_0123"]
    assert "phone:+819012345678" in identifier_candidates("090-1234-5678")
    assert "x:foo" in identifier_candidates("@foo")
    assert not any(c.startswith(("email:", "phone:")) for c in identifier_candidates("佐藤"))
    assert identifier_candidates("email:not an email") == []
