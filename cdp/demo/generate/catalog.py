"""Reference data of the demo shop: products, pages, campaigns, devices, messages.

The shop is 茶の間 (Chanoma), an online store for Japanese tea, teaware and
kitchenware. Everything here is plain data plus ``Weighted``, a fast weighted
picker; the journeys in ``cdp.demo.generate.shop`` draw from it. People's names
and addresses are in ``cdp.demo.generate.japan``.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

T = TypeVar("T")

SHOP_URL: Final = "https://shop.example.jp"
SHOP_NAME: Final = "茶の間"


class Weighted(Generic[T]):
    """Pick items with fixed relative weights: one ``random()`` and a bisect."""

    __slots__ = ("_cumulative", "_items", "_total")

    def __init__(self, pairs: Sequence[tuple[T, float]]) -> None:
        if not pairs:
            raise ValueError("Weighted needs at least one item")
        self._items = tuple(item for item, _ in pairs)
        self._cumulative = tuple(itertools.accumulate(weight for _, weight in pairs))
        self._total = self._cumulative[-1]

    def pick(self, rng: random.Random) -> T:
        """One item, chosen with probability proportional to its weight."""
        return self._items[bisect.bisect_right(self._cumulative, rng.random() * self._total)]

    @property
    def items(self) -> tuple[T, ...]:
        """The items, in the order given."""
        return self._items


@dataclass(frozen=True, slots=True)
class Product:
    """A catalog item; ``price`` is in JPY, tax included (税込), as Japanese shops show it."""

    product_id: str
    sku: str
    name: str
    category: str
    category_slug: str
    price: int
    slug: str

    @property
    def path(self) -> str:
        """The product page's path."""
        return f"/products/{self.slug}"

    def props(self, quantity: int | None = None) -> dict[str, object]:
        """E-commerce spec properties (``quantity`` only inside orders)."""
        props: dict[str, object] = {
            "product_id": self.product_id,
            "sku": self.sku,
            "name": self.name,
            "category": self.category,
            "price": self.price,
        }
        if quantity is not None:
            props["quantity"] = quantity
        return props


STARTER_KIT: Final = Product(
    "TEA-STARTER", "CN-10001", "抹茶スターターキット", "抹茶", "matcha", 4980, "tea-starter"
)
BULK_MATCHA: Final = Product(
    "MATCHA-BULK-500", "CN-10002", "業務用抹茶 500g", "抹茶", "matcha", 6800, "matcha-bulk-500"
)


def _product(row: str) -> Product:
    product_id, sku, name, category, slug, price = row.split("|")
    return Product(product_id, sku, name, category, slug, int(price), product_id.lower())


#: Everything but the planted pair, with its popularity weight.
_REGULAR: Final = [
    (_product(row.split("~")[0]), float(row.split("~")[1]))
    for row in """
MATCHA-UJI-30|CN-10003|宇治抹茶「青嵐」30g|抹茶|matcha|1620~8
MATCHA-KOICHA-40|CN-10004|濃茶用抹茶「松風」40g|抹茶|matcha|3240~3
MATCHA-LATTE-200|CN-10005|抹茶ラテの素 200g|抹茶|matcha|1280~6
SENCHA-SHIZUOKA-100|CN-20001|静岡深蒸し煎茶 100g|煎茶・玉露|sencha|1080~10
SENCHA-YAME-100|CN-20002|八女煎茶 100g|煎茶・玉露|sencha|1296~6
GYOKURO-50|CN-20003|玉露「露の雫」50g|煎茶・玉露|sencha|2160~3
SHINCHA-100|CN-20004|新茶 一番摘み 100g|煎茶・玉露|sencha|1620~4
HOJICHA-TB-20|CN-30001|ほうじ茶ティーバッグ 20包|ほうじ茶・番茶|hojicha|864~9
GENMAICHA-200|CN-30002|抹茶入り玄米茶 200g|ほうじ茶・番茶|hojicha|756~5
WAKOCHA-50|CN-30003|国産和紅茶 50g|和紅茶|wakocha|1188~4
MUGICHA-TB-50|CN-30004|水出し麦茶 50包|ほうじ茶・番茶|hojicha|540~6
KYUSU-TOKONAME|CN-40001|常滑焼 急須 300ml|茶器|teaware|5500~3
YUNOMI-HAGI|CN-40002|萩焼 湯呑|茶器|teaware|2420~3
CHASEN-80|CN-40003|茶筅 八十本立|茶器|teaware|3300~2
CHAWAN-KIYOMIZU|CN-40004|清水焼 抹茶碗|茶器|teaware|6600~1.5
CHAZUTSU-COPPER|CN-40005|銅製 茶筒 200g用|茶器|teaware|4400~1.5
CHAKOSHI|CN-40006|ステンレス茶こし|茶器|teaware|660~4
TETSUBIN-NANBU|CN-50001|南部鉄器 鉄瓶 1.2L|キッチン用品|kitchen|16500~1
DONABE-IGA|CN-50002|伊賀焼 土鍋 8号|キッチン用品|kitchen|9900~1
HOCHO-SANTOKU|CN-50003|三徳包丁 165mm|キッチン用品|kitchen|8800~1.5
MANAITA-HINOKI|CN-50004|桧まな板|キッチン用品|kitchen|3850~2
OROSHIGANE|CN-50005|銅製おろし金|キッチン用品|kitchen|4950~1
SHAMOJI-SET|CN-50006|しゃもじ・おたまセット|キッチン用品|kitchen|1650~2
GIFT-TEA-TRIO|CN-60001|お茶ギフト 3種詰め合わせ|ギフト|gift|3240~4
YOKAN-MATCHA|CN-60002|抹茶羊羹 5本入|和菓子|wagashi|1944~4
DORAYAKI-MATCHA|CN-60003|抹茶どら焼き 6個入|和菓子|wagashi|1728~3
""".strip().splitlines()
]

PRODUCTS: Final[tuple[Product, ...]] = (
    STARTER_KIT,
    BULK_MATCHA,
    *(product for product, _ in _REGULAR),
)
#: What people buy in ordinary orders: never the planted pair.
BUYABLE: Final = Weighted(_REGULAR)
#: What people look at: everything, the starter kit being a popular landing page.
VIEWABLE: Final = Weighted([(STARTER_KIT, 4.0), (BULK_MATCHA, 1.0), *_REGULAR])

CATEGORIES: Final = Weighted(
    [
        (("matcha", "抹茶"), 5),
        (("sencha", "煎茶・玉露"), 5),
        (("hojicha", "ほうじ茶・番茶"), 3),
        (("wakocha", "和紅茶"), 1),
        (("teaware", "茶器"), 3),
        (("kitchen", "キッチン用品"), 2),
        (("gift", "ギフト"), 2),
        (("wagashi", "和菓子"), 1),
    ]
)

#: Content pages: (path, title), visited when browsing and as social landing pages.
ARTICLES: Final = Weighted(
    [
        (("/blog/how-to-make-matcha", "おうちで簡単 抹茶の点て方"), 4),
        (("/blog/cold-brew-sencha", "水出し煎茶のおいしい淹れ方"), 3),
        (("/blog/kyusu-guide", "はじめての急須選び"), 2),
        (("/blog/matcha-latte-recipe", "抹茶ラテのレシピ"), 3),
        (("/blog/tetsubin-care", "鉄瓶のお手入れ方法"), 1),
        (("/guide/shipping", "配送・送料について"), 2),
        (("/guide/gift-wrapping", "ギフト包装について"), 1),
    ]
)

#: (source, medium, campaign name) of paid and social landings (utm_* parameters).
AD_CAMPAIGNS: Final = Weighted(
    [
        (("google", "cpc", "brand-search"), 4),
        (("google", "cpc", "matcha-generic"), 3),
        (("instagram", "social", "matcha-reel"), 4),
        (("instagram", "paid_social", "teaware-carousel"), 2),
        (("line", "social", "line-friends-coupon"), 3),
        (("x", "social", "shincha-post"), 2),
        (("yahoo", "cpc", "gift-search"), 1),
    ]
)


@dataclass(frozen=True, slots=True)
class Device:
    """A browser: its user agent and whether it is a phone."""

    user_agent: str
    mobile: bool


DEVICES: Final = Weighted(
    [
        (
            Device(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
                " (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                True,
            ),
            40,
        ),
        (
            Device(
                "Mozilla/5.0 (Linux; Android 14; SO-51D) AppleWebKit/537.36"
                " (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
                True,
            ),
            22,
        ),
        (
            Device(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15"
                " (KHTML, like Gecko) Mobile/15E148 Safari Line/14.9.1",
                True,
            ),
            8,
        ),
        (
            Device(
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36"
                " (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
                False,
            ),
            18,
        ),
        (
            Device(
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"
                " (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
                False,
            ),
            12,
        ),
    ]
)

LINE_TEXTS: Final = (
    "注文した商品はいつ届きますか？",
    "抹茶の賞味期限を教えてください",
    "クーポンありがとうございます！",
    "ギフト包装はできますか？",
    "急須の容量を教えてください",
    "届きました、とてもおいしかったです",
    "再入荷の予定はありますか？",
    "(スタンプ)",
    "領収書は発行できますか？",
    "住所を変更したいです",
)
X_TEXTS: Final = (
    "新茶おいしかったです！また買います",
    "抹茶ラテの素、在庫ありますか？",
    "キャンペーンに応募しました",
    "配送状況を確認したいです",
)
INSTAGRAM_TEXTS: Final = (
    "この湯呑はどこで買えますか？",
    "投稿の急須の商品名を教えてください",
    "ギフトにおすすめのお茶はありますか？",
    "リールの抹茶の点て方、参考になりました！",
)
SHOP_REPLIES: Final = (
    "お問い合わせありがとうございます。担当者より順次ご案内いたします。",
    "いつも茶の間をご利用いただきありがとうございます。",
    "ご注文の商品は2〜3営業日で発送予定です。",
)

#: (subject, priority) of support tickets not caused by a refund.
TICKET_SUBJECTS: Final = Weighted(
    [
        (("配送状況の確認", "normal"), 5),
        (("ギフト包装・のしについて", "low"), 2),
        (("領収書の発行", "low"), 2),
        (("お届け先住所の変更", "high"), 2),
        (("商品の使い方", "low"), 2),
        (("支払い方法の変更", "normal"), 1),
    ]
)
REFUND_SUBJECTS: Final = Weighted(
    [
        (("商品が破損していた", "high"), 3),
        (("注文と違う商品が届いた", "high"), 2),
        (("返品したい", "normal"), 2),
    ]
)
TICKET_CHANNELS: Final = Weighted([("email", 5), ("form", 3), ("line", 3), ("phone", 2)])
RESOLUTIONS: Final = ("回答済み", "発送済みを案内", "対応完了")
SATISFACTION: Final = Weighted([(1, 5), (2, 8), (3, 20), (4, 37), (5, 30)])
NPS: Final = Weighted([(score, w) for score, w in enumerate((2, 1, 1, 2, 2, 5, 6, 12, 18, 22, 29))])
SURVEY_COMMENTS: Final = (
    "香りがとても良かったです",
    "梱包が丁寧でした",
    "もう少し安いと嬉しいです",
    "配送が早くて助かりました",
    "",
)

#: Preferred contact channel trait; LINE friends lean to LINE.
PREFERRED_CHANNELS: Final = Weighted([("email", 60), ("line", 28), ("sms", 12)])
LINE_PREFERRED_CHANNELS: Final = Weighted([("line", 75), ("email", 20), ("sms", 5)])

#: Relative chance of a session starting in each hour of the day (JST).
_HOURLY: Final = (
    *(1.0, 0.6, 0.3, 0.2, 0.2, 0.3, 0.8, 1.5, 2.0, 2.2, 2.3, 2.5),  # 00-11 JST
    *(3.2, 3.0, 2.4, 2.3, 2.4, 2.6, 3.0, 3.4, 4.0, 4.2, 3.8, 2.5),  # 12-23 JST: lunch, evening
)
HOUR_WEIGHTS: Final = Weighted(list(enumerate(_HOURLY)))
