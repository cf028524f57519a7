"""The large data directory the activation benchmarks run on: ~10M events, 1M customers.

The demo generator simulates shoppers at about 40 events each over a year, so
10M events come from 250,000 simulated shoppers. A real shop's customer base
also holds many people with little or no web activity (a legacy CRM import,
newsletter-only contacts); 750,000 of those are added as one ``identify``
each (email, name, gender, birth date, prefecture, consents), imported as the
CRM would. Together: ~10.75M events and 1,000,000 customers.

Built once with the real ingest path (``cdp ingest``: validation, identity,
folds, checkpoint) and cached: ``python -m bench.large_data [DIR]`` (default
``$CDP_BENCH_DIR`` or ``/tmp/cdp-bench-large``). It takes a while (tens of
minutes on 2 cores); later runs find the cache and return at once.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import orjson

SHOPPER_EVENTS = 10_000_000
CONTACTS = 750_000
PREFECTURES = ("東京都", "大阪府", "神奈川県", "愛知県", "福岡県", "北海道", "京都府", "静岡県")
SURNAMES = ("佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤")
GIVEN = ("陽菜", "蓮", "結衣", "湊", "葵", "大翔", "凛", "悠真", "芽依", "樹")


def default_dir() -> Path:
    return Path(os.environ.get("CDP_BENCH_DIR", "/tmp/cdp-bench-large"))


def write_contacts(path: Path, count: int = CONTACTS, seed: int = 7) -> None:
    """``count`` imported contacts, one identify each, deterministic by ``seed``."""
    rng = random.Random(seed)
    with path.open("wb") as out:
        for n in range(count):
            consent = rng.random() < 0.55
            day = rng.randrange(1, 365)
            item = {
                "type": "identify",
                "messageId": f"crm-import-{n}",
                "userId": f"CRM{n:07d}",
                "timestamp": f"2026-01-{1 + day % 28:02d}T00:00:00Z",
                "traits": {
                    "email": f"contact{n}@example-mail.jp",
                    "last_name": rng.choice(SURNAMES),
                    "first_name": rng.choice(GIVEN),
                    "gender": rng.choice(("female", "male")),
                    "birthday": f"{rng.randrange(1950, 2006)}-{rng.randrange(1, 13):02d}-"
                    f"{rng.randrange(1, 29):02d}",
                    "address": {"state": rng.choice(PREFECTURES), "country": "JP"},
                },
            }
            out.write(orjson.dumps(item) + b"\n")
            if consent:
                consent_item = {
                    "type": "track",
                    "event": "Consent Updated",
                    "messageId": f"crm-consent-{n}",
                    "userId": f"CRM{n:07d}",
                    "timestamp": f"2026-01-{1 + day % 28:02d}T00:00:01Z",
                    "properties": {"consents": {"ads": True, "email": True}},
                }
                out.write(orjson.dumps(consent_item) + b"\n")


def cdp(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "cdp.cli", *args], check=True)


def build(directory: Path | None = None) -> Path:
    """The cached data directory, built if missing; returns its path."""
    root = directory or default_dir()
    data = root / "data"
    done = root / "BUILT"
    if done.exists():
        return data
    root.mkdir(parents=True, exist_ok=True)
    shoppers, contacts = root / "shoppers.jsonl", root / "contacts.jsonl"
    if not shoppers.exists():
        cdp("generate", str(shoppers), "--events", str(SHOPPER_EVENTS))
    write_contacts(contacts)
    cdp("--data-dir", str(data), "ingest", str(shoppers), str(contacts), "--batch-size", "50000")
    done.write_text("ok\n")
    return data


if __name__ == "__main__":
    print(build(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
