"""Ad-platform formats checked against each platform's documented examples.

Every expected hash is computed here with ``hashlib`` on the normalised string
the platform's documentation gives (quoted next to it), never with the code
under test.
"""

from __future__ import annotations

import hashlib
from datetime import date

import pytest

from cdp.errors import ConfigError
from cdp.services.query import AUDIENCE_COLUMNS, Audience
from connectors.destinations import google_ads, line, meta, registry, tiktok, x_ads
from connectors.destinations import normalise as n
from connectors.destinations.accounting import REASONS, describe, tally
from connectors.destinations.members import Member, members_from_audience


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


HANAKO = Member(
    customer_id="cus_1",
    email="Hanako.Yamada@Gmail.com",
    phone="+819012345678",
    first_name="花子",
    last_name="山田",
    first_name_kana="ハナコ",
    last_name_kana="ヤマダ",
    gender="female",
    birthday=date(1985, 4, 3),
    city="渋谷区",
    region="東京都",
    postal_code="150-0002",
    country="JP",
    line_user_id="U4af4980629a1b2c3d4e5f60718293a4b",
    x_user_id="143567",
)


# ------------------------------------------------------------ documented examples
def test_sha256_matches_the_x_ads_documented_example() -> None:
    # X Ads API "Custom Audiences User Data": hashlib.sha256("adsapi".encode()).hexdigest()
    # -> 49e0be2aeccfb51a8dee4c945c8a70a9ac500cf6f5cb08112575f74db9b1470d
    assert n.sha256_hex("adsapi") == (
        "49e0be2aeccfb51a8dee4c945c8a70a9ac500cf6f5cb08112575f74db9b1470d"
    )
    assert n.sha256_hex("adsapi") == sha("adsapi")


def test_meta_documented_email_and_phone_examples() -> None:
    # Meta hashing guide: input "John_Smith@gmail.com", normalised "john_smith@gmail.com",
    # SHA-256 62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f.
    member = Member("c", email=" John_Smith@gmail.com ", phone="03-4405-7597", country="JP")
    assert meta.normalised(member)["EMAIL"] == "john_smith@gmail.com"
    assert meta.row(member)[0] == (
        "62a14e44f765419d10fea99367361a727c12365e2520f32218d505ed9aa0f62f"
    )
    # Same guide (Japanese edition): the Japanese number 03-4405-7597 is "81344057597",
    # SHA-256 574f12b7409ae74d10bebbcb5e79ce749d76c37d2590d689043c73d1a8e162d0.
    assert meta.normalised(member)["PHONE"] == "81344057597"
    assert meta.row(member)[1] == (
        "574f12b7409ae74d10bebbcb5e79ce749d76c37d2590d689043c73d1a8e162d0"
    )


def test_tiktok_documented_examples() -> None:
    # TikTok "supported IDs and formats": normalised "janedoe@gmail.com" hashes to
    # d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69; the
    # international number 374-93-828222 normalises to "37493828222", hash 65b7e6dc...a422d4.
    member = Member("c", email="JaneDoe@gmail.com", phone="+374 93 828222")
    assert tiktok.normalised(member) == ("janedoe@gmail.com", "37493828222")
    assert tiktok.file_rows([member]) == [
        [
            "d6117306485ed0e50afab3ac871e98f81699151f30281527d63ff5f233656c69",
            "65b7e6dcf6f4310f8d7cbfbd78289a753062fb054d6664fb9aaac5df66a422d4",
        ]
    ]
    # "(657)777-0000 is normalized to 16577770000" (US number, country code added).
    assert n.phone_digits("+1 (657) 777-0000") == "16577770000"
    # "Remove '+' and any characters following the '+' symbol until '@'."
    assert n.email_without_tag("Jane+shop@Example.jp") == "jane@example.jp"
    assert tiktok.CSV_HEADERS == ("Email_SHA256", "Phone_SHA256")


def test_google_api_example_records() -> None:
    # Google Ads API add_customer_match_user_list example: "+1 800 5550102" in E.164,
    # and the address Alex / Quinn / US / 94045 with the names hashed, country and zip clear.
    alex = Member(
        "c",
        email="alex.2@example.com",
        phone="+1 800 5550102",
        first_name="Alex",
        last_name="Quinn",
        country="US",
        postal_code="94045",
    )
    assert google_ads.user_identifiers(alex) == [
        {"hashedEmail": sha("alex.2@example.com")},
        {"hashedPhoneNumber": sha("+18005550102")},
        {
            "addressInfo": {
                "hashedFirstName": sha("alex"),
                "hashedLastName": sha("quinn"),
                "countryCode": "US",
                "postalCode": "94045",
            }
        },
    ]


@pytest.mark.parametrize(
    ("raw", "google"),
    [
        ("Jane.Doe@Gmail.com ", "janedoe@gmail.com"),  # dots before @gmail.com removed
        ("j.a.n.e@googlemail.com", "jane@googlemail.com"),
        # Data Manager API "Format user data": gmail drops dots and the +suffix ...
        ("cloudy.sanfrancisco+shopping@gmail.com", "cloudysanfrancisco@gmail.com"),
        ("jane.doe+shop@googlemail.com", "janedoe@googlemail.com"),
        # ... every other domain keeps both: "user.name+NYC@Example.com → user.name+nyc@example.com"
        ("user.name+NYC@Example.com", "user.name+nyc@example.com"),
        ("Jane.Doe@example.jp", "jane.doe@example.jp"),
    ],
)
def test_google_email_normalisation(raw: str, google: str) -> None:
    assert n.email_google(raw) == google
    assert google_ads.user_identifiers(Member("c", email=raw))[0] == {"hashedEmail": sha(google)}


# ---------------------------------------------------------------- Japanese text
def test_japanese_names_are_hashed_as_typed_in_utf8() -> None:
    # The exact strings hashed for 山田 花子: Meta LN/FN and Google hashedLastName/FirstName.
    assert meta.normalised(HANAKO)["LN"] == "山田"
    assert meta.normalised(HANAKO)["FN"] == "花子"
    row = dict(zip(meta.SCHEMA, meta.row(HANAKO), strict=True))
    assert row["LN"] == sha("山田") and row["FN"] == sha("花子")
    address = google_ads.user_identifiers(HANAKO)[2]["addressInfo"]
    assert address == {
        "hashedFirstName": sha("花子"),
        "hashedLastName": sha("山田"),
        "countryCode": "JP",
        "postalCode": "1500002",
    }


@pytest.mark.parametrize(
    ("raw", "meta_form", "google_form"),
    [
        ("ﾔﾏﾀﾞ", "ヤマダ", "ヤマダ"),  # half-width katakana → full width (NFKC)
        ("山田 太郎", "山田太郎", "山田 太郎"),  # Meta: no spaces; Google: one space kept
        ("  山田   太郎 ", "山田太郎", "山田 太郎"),  # Google: extra spaces removed
        ("　山田　", "山田", "山田"),  # ideographic spaces trimmed
        ("Ｙａｍａｄａ", "yamada", "yamada"),  # full-width Latin → ASCII, lower-cased
        ("Mary-Ann O'Neil", "maryannoneil", "maryann oneil"),  # no punctuation (both)
        ("Émilie", "émilie", "émilie"),  # accents kept (UTF-8)
        ("ヨウコ・オノ", "ヨウコオノ", "ヨウコオノ"),  # katakana middle dot is punctuation
        ("佐々木", "佐々木", "佐々木"),  # 々 is a letter (Lm), never stripped
        ("ユーコ", "ユーコ", "ユーコ"),  # ー is a letter (Lm), never stripped
        ("はなこ。", "はなこ", "はなこ"),  # 。 is punctuation
    ],
)
def test_name_normal_forms(raw: str, meta_form: str, google_form: str) -> None:
    assert n.name_meta(raw) == meta_form
    assert n.name_google(raw) == google_form


def test_google_names_lower_case_without_punctuation() -> None:
    # OfflineUserAddressInfo.hashed_last_name: "lower case only and no punctuation";
    # hashed_first_name: "Lowercase all characters; Remove any extra spaces before,
    # after, and in between". O'Brien is hashed as "obrien".
    member = Member(
        "c", first_name=" Seán  Óg ", last_name="O'Brien", country="ie", postal_code="D02 X285"
    )
    assert google_ads.user_identifiers(member) == [
        {
            "addressInfo": {
                "hashedFirstName": sha("seán óg"),
                "hashedLastName": sha("obrien"),
                "countryCode": "IE",
                "postalCode": "d02x285",
            }
        }
    ]
    assert google_ads.csv_rows([member], hashed=False) == [
        ["", "", "seán óg", "obrien", "IE", "d02x285"]
    ]
    # Only punctuation is no name at all: the address is incomplete and not sent.
    assert n.name_google("'-.") is None
    assert google_ads.exclusion(Member("c", first_name="-", last_name="?", country="JP")) == (
        "no_email_phone_or_address"
    )


def test_japanese_names_survive_every_no_punctuation_rule() -> None:
    # A "no punctuation" rule must never strip kanji or kana to nothing.
    for raw in ("山田", "花子", "ヤマダ", "やまだ", "佐々木", "ﾊﾅｺ"):
        assert n.name_google(raw) and n.name_meta(raw), raw


def test_japanese_places_postcode_gender_and_year_for_meta() -> None:
    values = meta.normalised(HANAKO)
    assert values == {
        "EMAIL": "hanako.yamada@gmail.com",  # Meta: trim + lower case only
        "PHONE": "819012345678",
        "FN": "花子",
        "LN": "山田",
        "GEN": "f",
        "DOBY": "1985",
        "CT": "渋谷区",
        "ST": "東京都",
        "ZIP": "1500002",
        "COUNTRY": "jp",
        "EXTERN_ID": "cus_1",
    }
    assert meta.row(HANAKO) == [sha(v) for v in list(values.values())[:-1]] + ["cus_1"]


@pytest.mark.parametrize(
    "typed",
    [
        "090-1234-5678",
        "09012345678",
        "+81 90-1234-5678",
        "０９０−１２３４−５６７８",
        "090 1234 5678",
    ],
)
def test_japanese_phone_forms(typed: str) -> None:
    assert n.phone_e164(typed) == "+819012345678"  # Google: E.164 with "+"
    assert n.phone_digits(typed) == "819012345678"  # Meta, TikTok, LINE Ads: no "+"


@pytest.mark.parametrize(
    ("value", "country", "expected"),
    [("150-0002", "JP", "1500002"), ("1500002", "jp", "1500002"), ("94016-1234", "US", "94016")],
)
def test_postal_codes(value: str, country: str, expected: str) -> None:
    assert n.postal_code(value, country) == expected


# --------------------------------------------------------------------- Google
def test_google_csv_rows_hashed_and_plain() -> None:
    assert google_ads.CSV_HEADERS_HASHED == (
        "Email",
        "Phone",
        "First Name",
        "Last Name",
        "Country",
        "Zip",
    )
    assert google_ads.CSV_HEADERS_PLAIN == google_ads.CSV_HEADERS_HASHED
    plain_row = [
        "hanakoyamada@gmail.com",
        "+819012345678",
        "花子",
        "山田",
        "JP",
        "1500002",
    ]
    assert google_ads.csv_rows([HANAKO], hashed=False) == [plain_row]
    assert google_ads.csv_rows([HANAKO]) == [[sha(v) for v in plain_row[:4]] + plain_row[4:]]


def test_google_partial_address_is_dropped_and_empty_members_skipped() -> None:
    no_zip = Member("c", email="a@example.jp", first_name="花子", last_name="山田", country="JP")
    assert google_ads.csv_rows([no_zip], hashed=False) == [["a@example.jp", "", "", "", "", ""]]
    assert google_ads.user_identifiers(no_zip) == [{"hashedEmail": sha("a@example.jp")}]
    nothing = Member("c", first_name="花子")
    assert google_ads.csv_rows([nothing]) == [] and google_ads.user_identifiers(nothing) == []


# ----------------------------------------------------------------------- Meta
def test_meta_missing_values_are_empty_strings_not_hashes_of_empty() -> None:
    row = meta.row(Member("cus_2", email="a@example.jp"))
    assert row == [sha("a@example.jp")] + [""] * 9 + ["cus_2"]
    assert sha("") not in row


def test_meta_batches_of_at_most_10000() -> None:
    members = [Member(f"cus_{i}", email=f"p{i}@example.jp") for i in range(25_001)]
    batches = list(meta.payloads(members))
    assert [len(b["data"]) for b in batches] == [10_000, 10_000, 5_001]
    assert all(b["schema"] == list(meta.SCHEMA) for b in batches)
    ids = [r[-1] for b in batches for r in b["data"]]
    assert ids == [m.customer_id for m in members]  # every member once, in order
    assert [len(b["data"]) for b in meta.payloads(members[:7], batch_size=3)] == [3, 3, 1]
    with pytest.raises(ValueError, match="between 1 and 10000"):
        list(meta.payloads(members, batch_size=10_001))


def test_meta_skips_members_it_cannot_match() -> None:
    only_city = Member("c", city="渋谷区", country="JP")
    assert not meta.matchable(only_city)
    assert list(meta.payloads([only_city])) == []
    assert meta.CSV_HEADERS == (
        "email",
        "phone",
        "fn",
        "ln",
        "gen",
        "doby",
        "ct",
        "st",
        "zip",
        "country",
    )
    assert meta.csv_rows([HANAKO]) == [meta.row(HANAKO)[:-1]]


# ----------------------------------------------------------------------- LINE
def test_line_messaging_audience_and_batches() -> None:
    members = [Member(f"c{i}", line_user_id=f"U{i:032x}") for i in range(25)]
    members += [Member("dup", line_user_id="U" + "0" * 32), Member("none")]
    audience = line.messaging_audience(members)
    assert audience[0] == {"id": "U" + "0" * 32}
    assert len(audience) == 25  # duplicate and missing ids left out
    assert [len(b) for b in line.messaging_batches(members, batch_size=10)] == [10, 10, 5]


def test_line_ads_rows() -> None:
    assert line.ads_rows([HANAKO, HANAKO]) == [[sha("hanako.yamada@gmail.com")]]
    assert line.ads_rows([HANAKO], "phone") == [[sha("819012345678")]]
    assert line.ads_rows([Member("c")], "phone") == []


# -------------------------------------------------------------------------- X
def test_x_rows_one_identifier_type_per_file() -> None:
    assert x_ads.file_rows([HANAKO]) == [[sha("hanako.yamada@gmail.com")]]
    # "Twitter User IDs: Standard integer; ex: 143567"
    assert x_ads.file_rows([HANAKO], "user_id") == [[sha("143567")]]
    assert x_ads.file_rows([Member("c", x_user_id="@jack")], "user_id") == []


# ------------------------------------------------------------ members, registry
def test_members_from_audience_reads_every_field() -> None:
    values = {
        "customer_id": "cus_1",
        "email": "hanako.yamada@gmail.com",
        "phone": "+819012345678",
        "last_name": "山田",
        "first_name": "花子",
        "region": "東京都",
        "country": "JP",
        "line_user_id": "U4af4980629a1b2c3d4e5f60718293a4b",
        "lifecycle_stage": "customer",
        "lead_score_now": 12.5,
        "gender": "female",
        "birthday": date(1985, 4, 3),
        "city": "渋谷区",
        "postal_code": "150-0002",
        "first_name_kana": "ハナコ",
        "last_name_kana": "ヤマダ",
        "x_user_id": "143567",
    }
    assert set(values) == set(AUDIENCE_COLUMNS)
    row = tuple(values[c] for c in AUDIENCE_COLUMNS)
    aud = Audience("seg", "ads", 1, 0, AUDIENCE_COLUMNS, [row])
    expected = Member(**{**HANAKO.__dict__, "email": "hanako.yamada@gmail.com"})
    assert members_from_audience(aud) == [expected]


def test_registry_names_and_option_errors() -> None:
    assert {
        "google_ads_csv",
        "meta_csv",
        "meta_json",
        "line_audience",
        "line_ads",
        "x_csv",
        "tiktok_csv",
        "csv",
        "parquet",
    } <= set(registry.DESTINATIONS)
    assert registry.get("line_audience").consent == "line"
    assert registry.get("meta_json").consent == "ads"
    assert registry.get("line_ads").resolve_options({}) == {"identifier": "email"}
    with pytest.raises(ConfigError, match="no option 'hash'"):
        registry.get("google_ads_csv").resolve_options({"hash": "false"})
    with pytest.raises(ConfigError, match="use one of true, false"):
        registry.get("google_ads_csv").resolve_options({"hashed": "no"})
    with pytest.raises(ConfigError, match="'mailchimp' is not supported"):
        registry.get("mailchimp")


# ----------------------------------------------------------- who is left out, why
def test_line_user_ids_must_have_lines_form() -> None:
    # Messaging API "Get user IDs": "formatted as U[0-9a-f]{32}", e.g. U8189cf6745fc0d808977bdb0b9f22995.
    documented = Member("c", line_user_id="U8189cf6745fc0d808977bdb0b9f22995")
    assert line.user_id(documented) == "U8189cf6745fc0d808977bdb0b9f22995"
    assert line.exclusion(documented) is None
    for typed in ("U8189CF6745FC0D808977BDB0B9F22995", "U8189cf6745", "hanako_line", "@hanako"):
        member = Member("c", line_user_id=typed)
        assert line.user_id(member) is None and line.exclusion(member) == "invalid_line_user_id"
        assert line.messaging_audience([member]) == []
    assert line.exclusion(Member("c")) == "no_line_user_id"
    assert line.exclusion(Member("c", line_user_id="  ")) == "no_line_user_id"


def test_every_format_states_why_a_member_is_left_out() -> None:
    nobody = Member("c")
    assert google_ads.exclusion(nobody) == "no_email_phone_or_address"
    assert meta.exclusion(nobody) == "no_email_phone_or_name"
    assert tiktok.exclusion(nobody) == "no_email_or_phone"
    assert line.ads_exclusion(nobody, "email") == "no_email"
    assert line.ads_exclusion(nobody, "phone") == "no_phone"
    assert x_ads.exclusion(nobody, "email") == "no_email"
    assert x_ads.exclusion(nobody, "user_id") == "no_x_user_id"
    assert x_ads.exclusion(Member("c", x_user_id="@jack"), "user_id") == "invalid_x_user_id"
    for reason in (google_ads.exclusion, meta.exclusion, tiktok.exclusion, line.exclusion):
        assert reason(HANAKO) is None
    # Each format's rows are exactly the members its exclusion lets through.
    members = [HANAKO, nobody, Member("d", phone="090-1234-5678")]
    kept, excluded = tally(members, meta.exclusion)
    assert kept == [HANAKO, members[2]] and excluded == {"no_email_phone_or_name": 1}
    assert len(meta.csv_rows(members)) == len(kept)
    kept, excluded = tally(members, google_ads.exclusion)
    assert len(google_ads.csv_rows(members)) == len(kept) == 2
    assert set(REASONS) >= {"no_consent", *excluded}


def test_describe_names_each_reason_with_its_count() -> None:
    text = describe({"no_consent": 3, "no_line_user_id": 1, "invalid_line_user_id": 0}, "line")
    assert text == "3 no line consent, 1 consenting but no LINE user id"
    assert describe({"no_consent": 0}, "none") == "none"


def test_a_gmail_address_that_is_only_a_tag_is_no_address() -> None:
    assert n.email_google("+promo@gmail.com") is None
    assert google_ads.exclusion(Member("c", email="+promo@gmail.com")) == (
        "no_email_phone_or_address"
    )
