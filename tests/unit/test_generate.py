"""The demo-data generator: valid, deterministic, realistic, with the planted pattern.

One module-scoped pass over the default data set (``default_run``) feeds the
tests about its size, window and contents, so the file stays fast.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from cdp.config import SEQUENCE_PRODUCT_A, SEQUENCE_PRODUCT_B
from cdp.demo.generate import (
    PRODUCT_A,
    PRODUCT_B,
    GenerateConfig,
    GenerateStats,
    generate,
    iter_events,
)
from cdp.demo.generate import writer as writer_module
from cdp.demo.generate.clock import IsoFormatter, Window
from cdp.demo.generate.japan import PREFECTURES
from cdp.services.segments import BUILTIN
from schemas import decode
from schemas.sales import SALES_EVENT_NAMES

SMALL = GenerateConfig(seed=7, events=3_000)
DAY_SECONDS = 86_400
# Events a customer sends by themself; lapsed customers send none of these late.
SHOP_INITIATED = {"Email Delivered", "Support Ticket Closed", "Message Sent", "Order Refunded"}


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def tag(raw: dict[str, Any]) -> str:
    return str(raw["event"] if raw["type"] == "track" else raw["type"])


@pytest.fixture(scope="module")
def small_events() -> list[dict[str, Any]]:
    return list(iter_events(SMALL))


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GenerateStats]:
    path = tmp_path_factory.mktemp("gen") / "events.jsonl"
    return path, generate(path, SMALL)


# -- validity and wire form -------------------------------------------------------


def test_every_event_decodes(small_events: list[dict[str, Any]]) -> None:
    assert 2_000 <= len(small_events) <= 5_000
    for raw in small_events:
        decode(raw)  # raises EventValidationError naming the field


def test_events_are_in_wire_form(small_events: list[dict[str, Any]]) -> None:
    for raw in small_events:
        if raw.get("event") in SALES_EVENT_NAMES:
            # As the inbound SFA connectors write them (schemas.sales): ids from the
            # SFA's own, a webhook's delay, the person named by the lead's email.
            assert re.fullmatch(r"(hubspot|salesforce|kintone):\d{7}-\d{3}", raw["messageId"])
            delay = (parse(raw["receivedAt"]) - parse(raw["timestamp"])).total_seconds()
            assert 1.0 <= delay <= 60.0
            assert raw["context"]["traits"]["email"] and "userId" not in raw
            continue
        assert re.fullmatch(r"[0-9a-f]{32}", raw["messageId"])
        assert raw["timestamp"].endswith("Z") and raw["receivedAt"].endswith("Z")
        delay = (parse(raw["receivedAt"]) - parse(raw["timestamp"])).total_seconds()
        assert 0.05 <= delay <= 3.0
        assert {"schemaVersion", "sentAt", "originalTimestamp"}.isdisjoint(raw)
        assert "userId" in raw or "anonymousId" in raw
    assert len({raw["messageId"] for raw in small_events}) == len(small_events)


def test_every_event_type_of_the_brief_occurs(small_file: tuple[Path, GenerateStats]) -> None:
    _, stats = small_file
    wanted = {
        "page",
        "identify",
        "Product Viewed",
        "Product Added",
        "Order Completed",
        "Form Submitted",
        "Email Delivered",
        "Email Opened",
        "Consent Updated",
        "Message Received",
        "Deal Created",
        "Deal Won",
        "Sales Activity Logged",
    }
    assert wanted <= set(stats.by_type)


def test_events_share_no_nested_objects(small_events: list[dict[str, Any]]) -> None:
    seen: set[int] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict | list):
            assert id(value) not in seen
            seen.add(id(value))
            for child in value.values() if isinstance(value, dict) else value:
                walk(child)

    for raw in small_events:
        walk(raw)


def test_iso_formatter_matches_datetime_across_boundaries() -> None:
    window = Window.ending(datetime(2026, 10, 31, 14, 59, 59, tzinfo=UTC), 1)
    iso = IsoFormatter(window)

    def reference(millis: int) -> str:
        moment = datetime.fromtimestamp(millis / 1000, UTC).replace(microsecond=0)
        return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z"

    midnight = int(datetime(2026, 10, 20, tzinfo=UTC).timestamp()) * 1000
    far_outside = int(datetime(2020, 2, 29, 23, 59, 59, tzinfo=UTC).timestamp()) * 1000
    for millis, later in [
        (midnight - 1, midnight + 2_999),  # across midnight
        (midnight + 59_999, midnight + 60_050),  # across a minute
        (midnight + 123, midnight + 173),
        (far_outside + 999, far_outside + 1_000),  # outside the precomputed days
    ]:
        assert iso.pair(millis, later) == (reference(millis), reference(later))
        assert iso.millis(millis) == reference(millis)
    assert iso(1_792_983_599.25) == "2026-10-26T02:59:59.250Z"


# -- determinism, stats, streaming -----------------------------------------------------


def test_same_seed_gives_the_same_bytes(
    tmp_path: Path, small_file: tuple[Path, GenerateStats]
) -> None:
    path, _ = small_file
    again = tmp_path / "again.jsonl"
    generate(again, SMALL)
    assert again.read_bytes() == path.read_bytes()


def test_another_seed_gives_other_events(
    tmp_path: Path, small_file: tuple[Path, GenerateStats]
) -> None:
    path, _ = small_file
    other = tmp_path / "other.jsonl"
    generate(other, GenerateConfig(seed=8, events=3_000))
    assert other.read_bytes() != path.read_bytes()


def test_stats_match_the_file(small_file: tuple[Path, GenerateStats]) -> None:
    path, stats = small_file
    lines = path.read_bytes().splitlines()
    assert stats.events == len(lines) == sum(stats.by_type.values())
    assert stats.bytes == path.stat().st_size
    assert stats.customers == SMALL.customer_count == 75
    assert Counter(tag(orjson.loads(line)) for line in lines) == stats.by_type
    assert list(stats.by_type) == sorted(stats.by_type)
    assert stats.end == datetime(2026, 10, 31, 14, 59, 59, tzinfo=UTC)
    assert stats.start == datetime(2025, 10, 31, 14, 59, 59, tzinfo=UTC)


def test_file_holds_what_iter_events_yields(
    small_file: tuple[Path, GenerateStats], small_events: list[dict[str, Any]]
) -> None:
    path, _ = small_file
    assert path.read_bytes() == b"".join(orjson.dumps(raw) + b"\n" for raw in small_events)


def test_worker_processes_write_the_same_bytes(
    tmp_path: Path, small_file: tuple[Path, GenerateStats], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "CHUNK_CUSTOMERS", 20)  # several chunks in flight
    single = tmp_path / "single.jsonl"
    generate(single, SMALL)
    parallel = tmp_path / "parallel.jsonl"
    stats = generate(parallel, SMALL, workers=2)
    assert parallel.read_bytes() == single.read_bytes()
    assert stats == generate(single, SMALL)
    with pytest.raises(ValueError, match="workers"):
        generate(parallel, SMALL, workers=0)


def test_progress_reports_running_totals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "CHUNK_CUSTOMERS", 20)
    seen: list[int] = []
    stats = generate(tmp_path / "p.jsonl", SMALL, progress=seen.append)
    assert len(seen) == 4  # 75 customers, 20 at a time
    assert seen == sorted(seen) and seen[-1] == stats.events


def test_chunks_are_time_ordered_and_do_not_change_customers(
    small_events: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "CHUNK_CUSTOMERS", 10)
    chunked = list(iter_events(SMALL))
    assert sorted(orjson.dumps(e) for e in chunked) == sorted(orjson.dumps(e) for e in small_events)
    restarts = sum(1 for a, b in itertools.pairwise(chunked) if b["timestamp"] < a["timestamp"])
    assert 1 <= restarts <= 7  # at most one per chunk boundary (8 chunks)
    times = [raw["timestamp"] for raw in small_events]
    assert times == sorted(times)  # one chunk: fully ordered


def test_events_target_sets_the_customer_count() -> None:
    assert GenerateConfig(events=10_000_000).customer_count == 250_000
    assert GenerateConfig(events=10).customer_count == 1
    assert GenerateConfig().customer_count == 5_200
    assert GenerateConfig(customers=12, events=10_000).customer_count == 12


def test_events_target_is_met_roughly() -> None:
    total = sum(1 for _ in iter_events(GenerateConfig(seed=3, events=20_000)))
    assert 16_000 <= total <= 24_000


@pytest.mark.parametrize(
    "kwargs",
    [
        {"customers": 0},
        {"events": 0},
        {"months": 0},
        {"end": datetime(2026, 10, 31)},  # naive
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        GenerateConfig(**kwargs)


# -- the default data set ---------------------------------------------------------------


@dataclass
class Summary:
    """What the tests need from one pass over the default data set."""

    events: int = 0
    first: str = "9999"
    last: str = ""
    orders: dict[str, list[tuple[datetime, dict[str, int]]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    email: Counter[tuple[str, str]] = field(default_factory=Counter)
    anonymous_only: set[str] = field(default_factory=set)
    linked_by_identify: set[str] = field(default_factory=set)
    last_own_event: dict[str, str] = field(default_factory=dict)
    line_by_user: int = 0
    line_anonymous: int = 0
    line_links: int = 0
    sns: Counter[str] = field(default_factory=Counter)
    traits: list[dict[str, Any]] = field(default_factory=list)
    grants: list[dict[str, bool]] = field(default_factory=list)
    withdrawals: int = 0


@pytest.fixture(scope="module")
def default_run() -> Summary:
    s = Summary()
    for raw in iter_events(GenerateConfig()):
        s.events += 1
        ts = raw["timestamp"]
        s.first, s.last = min(s.first, ts), max(s.last, ts)
        kind = tag(raw)
        user, anonymous = raw.get("userId"), raw.get("anonymousId")
        props = raw.get("properties", {})
        if user is not None and kind not in SHOP_INITIATED:
            s.last_own_event[user] = max(s.last_own_event.get(user, ""), ts)
        if kind == "Order Completed":
            items = {p["product_id"]: p["quantity"] for p in props["products"]}
            s.orders[raw["userId"]].append((parse(ts), items))
        elif kind.startswith("Email "):
            s.email[(kind, props["variant"])] += 1
        elif kind == "identify":
            if user is not None and anonymous is not None:
                s.linked_by_identify.add(anonymous)
            if "line_user_id" in raw["traits"]:
                s.line_links += 1
            if "first_name_kana" in raw["traits"]:
                s.traits.append(raw["traits"])
        elif kind == "Message Received":
            s.sns[props["channel"]] += 1
            if props["channel"] == "line":
                assert re.fullmatch(r"U[0-9a-f]{32}", props["channel_user_id"])
                if user is not None:
                    s.line_by_user += 1
                else:
                    assert anonymous == f"line-{props['channel_user_id']}"
                    s.line_anonymous += 1
        elif kind == "Consent Updated":
            if "analytics" in props["consents"]:  # the grant when the email is first given
                s.grants.append(props["consents"])
            elif False in props["consents"].values():
                s.withdrawals += 1
        if user is None and anonymous is not None and kind == "page":
            s.anonymous_only.add(anonymous)
    return s


def test_default_size(default_run: Summary) -> None:
    assert GenerateConfig().customer_count >= 5_000
    assert default_run.events >= 200_000


def test_default_timestamps_lie_in_the_window(default_run: Summary) -> None:
    end = datetime(2026, 10, 31, 14, 59, 59, tzinfo=UTC)
    assert end - timedelta(days=366) <= parse(default_run.first) < end - timedelta(days=360)
    assert end - timedelta(days=2) < parse(default_run.last) <= end


def test_planted_pattern_is_measurable(default_run: Summary) -> None:
    orders = default_run.orders
    a_buyers = [u for u, placed in orders.items() if any(PRODUCT_A in i for _, i in placed)]
    assert 0.06 <= len(a_buyers) / len(orders) <= 0.10  # ~8% of buyers

    def bulk_b_after_a(user: str) -> bool:
        placed = orders[user]
        bought_a = min(t for t, items in placed if PRODUCT_A in items)
        return any(
            items.get(PRODUCT_B, 0) >= 5
            and 45 <= (t - bought_a).total_seconds() / DAY_SECONDS <= 75
            for t, items in placed
        )

    share = sum(map(bulk_b_after_a, a_buyers)) / len(a_buyers)
    assert 0.48 <= share <= 0.72  # ~60%
    others = [u for u in orders if u not in set(a_buyers)]
    with_b = sum(1 for u in others if any(PRODUCT_B in items for _, items in orders[u]))
    assert with_b / len(others) < 0.04  # B is rare without A


def test_newsletter_variant_b_opens_more(default_run: Summary) -> None:
    email = default_run.email

    def rate(variant: str) -> float:
        return email[("Email Opened", variant)] / email[("Email Delivered", variant)]

    assert email[("Email Delivered", "A")] > 5_000
    assert rate("B") > rate("A") + 0.05
    assert email[("Email Link Clicked", "A")] > 0


def test_anonymous_browsers_become_known_customers(default_run: Summary) -> None:
    joined = default_run.anonymous_only & default_run.linked_by_identify
    assert len(joined) >= 1_000


def test_line_messages_come_linked_and_unlinked(default_run: Summary) -> None:
    assert default_run.line_by_user > 50
    assert default_run.line_anonymous > 50
    assert default_run.line_links > 50
    assert default_run.sns["x"] > 10 and default_run.sns["instagram"] > 10


def test_lapsed_buyers_fall_silent(default_run: Summary) -> None:
    cutoff = (datetime(2026, 10, 31, 14, 59, 59, tzinfo=UTC) - timedelta(days=120)).isoformat()
    lapsed = [
        user
        for user, placed in default_run.orders.items()
        if len(placed) >= 2 and default_run.last_own_event[user] < cutoff.replace("+00:00", "Z")
    ]
    assert len(lapsed) >= 100


def test_profiles_look_japanese(default_run: Summary) -> None:
    traits = default_run.traits
    assert len(traits) > 1_000
    prefectures = {p.name for p in PREFECTURES.items}
    states = Counter(t["address"]["state"] for t in traits)
    assert set(states) <= prefectures
    assert states.most_common(1)[0][0] == "東京都"
    assert all(re.fullmatch(r"[ァ-ヶー]+", t["first_name_kana"]) for t in traits)
    assert all(t["address"]["country"] == "JP" for t in traits)
    emails = [t["email"] for t in traits]
    assert any(e != e.strip() for e in emails) and any(e != e.lower() for e in emails)
    phones = [t["phone"] for t in traits if "phone" in t]
    assert any(p.startswith("+81") for p in phones)
    assert any(re.fullmatch(r"0[789]0-\d{4}-\d{4}", p) for p in phones)
    ages = [
        (datetime(2026, 10, 31).date() - datetime.fromisoformat(t["birthday"]).date()).days / 365.25
        for t in traits
    ]
    assert min(ages) >= 18 and max(ages) < 76


def test_consent_shares(default_run: Summary) -> None:
    grants = default_run.grants
    assert len(grants) > 1_000
    email = sum(c["email"] for c in grants) / len(grants)
    ads = sum(c["ads"] for c in grants) / len(grants)
    assert email > 0.8
    assert 0.62 <= ads <= 0.78
    assert default_run.withdrawals > 10


def test_segment_defaults_name_the_planted_pair() -> None:
    # a_buyers_without_b defaults to the demo's A→B pair, kept in cdp.config so that the
    # segment service never imports the generator.
    assert (SEQUENCE_PRODUCT_A, SEQUENCE_PRODUCT_B) == (PRODUCT_A, PRODUCT_B)
    params = BUILTIN["a_buyers_without_b"].params
    assert (params["product_a"], params["product_b"]) == (PRODUCT_A, PRODUCT_B)
