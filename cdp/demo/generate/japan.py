"""Japanese reference data for synthetic people: names, prefectures, email providers.

Names come with their katakana reading (フリガナ, as Japanese forms ask for it)
and a romanisation used to build email addresses. Prefecture weights are the
2020 census population in ten-thousands, with Tokyo, Kanagawa, Osaka and Aichi
boosted because online shoppers are more urban than the population. Postal
codes start with the city's real three-digit prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from cdp.demo.generate.catalog import Weighted


@dataclass(frozen=True, slots=True)
class Name:
    """A family or given name: kanji, katakana reading, romanisation."""

    kanji: str
    kana: str
    roman: str


def _names(rows: str) -> tuple[Name, ...]:
    return tuple(Name(*line.split()) for line in rows.strip().splitlines())


FAMILY_NAMES: Final = _names("""
佐藤 サトウ sato
鈴木 スズキ suzuki
高橋 タカハシ takahashi
田中 タナカ tanaka
伊藤 イトウ ito
渡辺 ワタナベ watanabe
山本 ヤマモト yamamoto
中村 ナカムラ nakamura
小林 コバヤシ kobayashi
加藤 カトウ kato
吉田 ヨシダ yoshida
山田 ヤマダ yamada
佐々木 ササキ sasaki
山口 ヤマグチ yamaguchi
松本 マツモト matsumoto
井上 イノウエ inoue
木村 キムラ kimura
林 ハヤシ hayashi
斎藤 サイトウ saito
清水 シミズ shimizu
山崎 ヤマザキ yamazaki
森 モリ mori
池田 イケダ ikeda
橋本 ハシモト hashimoto
阿部 アベ abe
石川 イシカワ ishikawa
山下 ヤマシタ yamashita
中島 ナカジマ nakajima
石井 イシイ ishii
小川 オガワ ogawa
前田 マエダ maeda
岡田 オカダ okada
長谷川 ハセガワ hasegawa
藤田 フジタ fujita
後藤 ゴトウ goto
近藤 コンドウ kondo
村上 ムラカミ murakami
遠藤 エンドウ endo
青木 アオキ aoki
坂本 サカモト sakamoto
斉藤 サイトウ saito
福田 フクダ fukuda
太田 オオタ ota
西村 ニシムラ nishimura
藤井 フジイ fujii
金子 カネコ kaneko
岡本 オカモト okamoto
藤原 フジワラ fujiwara
中野 ナカノ nakano
三浦 ミウラ miura
原田 ハラダ harada
松田 マツダ matsuda
竹内 タケウチ takeuchi
小野 オノ ono
田村 タムラ tamura
中山 ナカヤマ nakayama
和田 ワダ wada
石田 イシダ ishida
上田 ウエダ ueda
森田 モリタ morita
""")

FEMALE_NAMES: Final = _names("""
陽子 ヨウコ yoko
花子 ハナコ hanako
美咲 ミサキ misaki
結衣 ユイ yui
さくら サクラ sakura
優子 ユウコ yuko
恵子 ケイコ keiko
真由美 マユミ mayumi
愛 アイ ai
彩 アヤ aya
直子 ナオコ naoko
由美子 ユミコ yumiko
葵 アオイ aoi
陽菜 ヒナ hina
美穂 ミホ miho
智子 トモコ tomoko
麻衣 マイ mai
明美 アケミ akemi
久美子 クミコ kumiko
千尋 チヒロ chihiro
菜々子 ナナコ nanako
理恵 リエ rie
香織 カオリ kaori
舞 マイ mai
裕子 ユウコ yuko
幸子 サチコ sachiko
芽衣 メイ mei
凛 リン rin
紀子 ノリコ noriko
絵美 エミ emi
""")

MALE_NAMES: Final = _names("""
翔太 ショウタ shota
大輔 ダイスケ daisuke
健太 ケンタ kenta
拓也 タクヤ takuya
直樹 ナオキ naoki
誠 マコト makoto
浩 ヒロシ hiroshi
隆 タカシ takashi
蓮 レン ren
悠斗 ユウト yuto
大翔 ヒロト hiroto
健一 ケンイチ kenichi
和也 カズヤ kazuya
亮 リョウ ryo
翼 ツバサ tsubasa
修 オサム osamu
学 マナブ manabu
剛 ツヨシ tsuyoshi
陽介 ヨウスケ yosuke
達也 タツヤ tatsuya
一郎 イチロウ ichiro
雄太 ユウタ yuta
智也 トモヤ tomoya
秀樹 ヒデキ hideki
勇気 ユウキ yuki
""")


@dataclass(frozen=True, slots=True)
class City:
    """A city of a prefecture and the first three digits of its postal codes."""

    name: str
    postal_prefix: str


@dataclass(frozen=True, slots=True)
class Prefecture:
    """A prefecture (都道府県) with a few of its cities."""

    name: str
    cities: tuple[City, ...]


def _prefecture(name: str, cities: str) -> Prefecture:
    pairs = (entry.split(":") for entry in cities.split())
    return Prefecture(name, tuple(City(city, prefix) for city, prefix in pairs))


#: (prefecture, weight): population in 10,000s, big metro areas boosted for e-commerce.
PREFECTURES: Final[Weighted[Prefecture]] = Weighted(
    [
        (_prefecture("北海道", "札幌市中央区:060 旭川市:070 函館市:040"), 522),
        (_prefecture("青森県", "青森市:030 八戸市:031"), 124),
        (_prefecture("岩手県", "盛岡市:020"), 121),
        (_prefecture("宮城県", "仙台市青葉区:980 石巻市:986"), 230),
        (_prefecture("秋田県", "秋田市:010"), 96),
        (_prefecture("山形県", "山形市:990"), 107),
        (_prefecture("福島県", "福島市:960 郡山市:963"), 183),
        (_prefecture("茨城県", "水戸市:310 つくば市:305"), 287),
        (_prefecture("栃木県", "宇都宮市:320"), 193),
        (_prefecture("群馬県", "前橋市:371 高崎市:370"), 194),
        (_prefecture("埼玉県", "さいたま市浦和区:330 川口市:332 川越市:350 所沢市:359"), 734),
        (_prefecture("千葉県", "千葉市中央区:260 船橋市:273 柏市:277 市川市:272"), 628),
        (
            _prefecture(
                "東京都",
                "千代田区:102 世田谷区:154 渋谷区:150 新宿区:160 練馬区:176 杉並区:166"
                " 大田区:144 江東区:135 八王子市:192 町田市:194",
            ),
            1405 * 1.5,
        ),
        (
            _prefecture(
                "神奈川県",
                "横浜市西区:220 横浜市港北区:222 川崎市中原区:211 相模原市中央区:252"
                " 藤沢市:251 鎌倉市:248",
            ),
            924 * 1.25,
        ),
        (_prefecture("新潟県", "新潟市中央区:951 長岡市:940"), 220),
        (_prefecture("富山県", "富山市:930"), 103),
        (_prefecture("石川県", "金沢市:920"), 113),
        (_prefecture("福井県", "福井市:910"), 77),
        (_prefecture("山梨県", "甲府市:400"), 81),
        (_prefecture("長野県", "長野市:380 松本市:390"), 205),
        (_prefecture("岐阜県", "岐阜市:500"), 198),
        (_prefecture("静岡県", "静岡市葵区:420 浜松市中央区:430 沼津市:410"), 363),
        (
            _prefecture(
                "愛知県", "名古屋市中区:460 名古屋市千種区:464 豊田市:471 岡崎市:444 一宮市:491"
            ),
            754 * 1.15,
        ),
        (_prefecture("三重県", "津市:514 四日市市:510"), 177),
        (_prefecture("滋賀県", "大津市:520"), 141),
        (_prefecture("京都府", "京都市中京区:604 京都市左京区:606 宇治市:611"), 258),
        (
            _prefecture(
                "大阪府", "大阪市北区:530 大阪市中央区:541 堺市堺区:590 豊中市:560 吹田市:564"
            ),
            884 * 1.25,
        ),
        (_prefecture("兵庫県", "神戸市中央区:650 姫路市:670 西宮市:662 尼崎市:660"), 547),
        (_prefecture("奈良県", "奈良市:630"), 132),
        (_prefecture("和歌山県", "和歌山市:640"), 92),
        (_prefecture("鳥取県", "鳥取市:680"), 55),
        (_prefecture("島根県", "松江市:690"), 67),
        (_prefecture("岡山県", "岡山市北区:700"), 189),
        (_prefecture("広島県", "広島市中区:730 福山市:720"), 280),
        (_prefecture("山口県", "山口市:753 下関市:750"), 134),
        (_prefecture("徳島県", "徳島市:770"), 72),
        (_prefecture("香川県", "高松市:760"), 95),
        (_prefecture("愛媛県", "松山市:790"), 133),
        (_prefecture("高知県", "高知市:780"), 69),
        (_prefecture("福岡県", "福岡市中央区:810 福岡市博多区:812 北九州市小倉北区:802"), 513),
        (_prefecture("佐賀県", "佐賀市:840"), 81),
        (_prefecture("長崎県", "長崎市:850"), 131),
        (_prefecture("熊本県", "熊本市中央区:860"), 174),
        (_prefecture("大分県", "大分市:870"), 112),
        (_prefecture("宮崎県", "宮崎市:880"), 107),
        (_prefecture("鹿児島県", "鹿児島市:892"), 159),
        (_prefecture("沖縄県", "那覇市:900"), 147),
    ]
)

EMAIL_DOMAINS: Final = Weighted(
    [
        ("gmail.com", 30),
        ("yahoo.co.jp", 22),
        ("icloud.com", 12),
        ("docomo.ne.jp", 8),
        ("ezweb.ne.jp", 4),
        ("au.com", 3),
        ("softbank.ne.jp", 3),
        ("i.softbank.jp", 3),
        ("outlook.jp", 4),
        ("hotmail.co.jp", 3),
        ("nifty.com", 2),
        ("outlook.com", 2),
        ("me.com", 2),
    ]
)
