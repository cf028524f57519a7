"""Server time of the console's analytics pages on the demo shop.

Builds the demo shop once (the demo generator, cached under the system temp
directory, ``cdp-bench-console/shop-<customers>``), adds a marketer, starts
``cdp serve`` on it and, signed in through the form, requests every analytics
page:

- ``cold``: the first request of a page after the server started, whose
  result is computed for it (the service's whole-log query);
- ``warm``: the median and max of ``--repeat`` more requests, answered from
  the result kept for the log's high-water mark;
- ``csv``: the page's first download, warm.

The server time is the page's own ``Server-Timing: total`` (the handler,
rendering included; HTTP and the network not); the wall time as the client
saw it is printed beside it.

    python -m bench.console_analytics [--customers 5200] [--repeat 20]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.common import Server, machine

CACHE = Path(tempfile.gettempdir()) / "cdp-bench-console"
USER, PASSWORD = "bench-marketer", "bench marketer password"
PAGES = ("rfm", "cohorts", "ltv", "sequences", "next-purchase", "email-ab", "campaigns")


def shop(customers: int) -> Path:
    """The cached data directory of a generated shop of ``customers`` people."""
    from cdp.config import Settings  # noqa: PLC0415
    from cdp.demo.generate import GenerateConfig, iter_events  # noqa: PLC0415
    from cdp.read import lookup  # noqa: PLC0415
    from cdp.runtime.engine import Engine  # noqa: PLC0415
    from cdp.services.ingest import ingest  # noqa: PLC0415
    from cdp.services.users import UserStore  # noqa: PLC0415

    directory = CACHE / f"shop-{customers}"
    if not (directory / "complete").exists():
        print(f"building a shop of {customers:,} customers in {directory} (once)...")
        settings = Settings(directory)
        raws = iter_events(GenerateConfig(customers=customers))
        with Engine.open(settings) as engine:
            report = ingest(((f"e{i}", raw) for i, raw in enumerate(raws)), engine, source="bench")
            lookup.ensure_indexes(engine.con)
        (directory / "complete").write_text(f"{report.accepted}\n")
    users = UserStore(directory)
    if users.get(USER) is None:
        users.add(USER, "marketer", PASSWORD)
    return directory


def signed_in(url: str) -> httpx.Client:
    """A client signed in through the console's form."""
    client = httpx.Client(base_url=url, timeout=600)
    form = client.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token, form.text[:500]
    answer = client.post(
        "/console/login", data={"csrf": token.group(1), "user": USER, "password": PASSWORD}
    )
    assert answer.status_code in (200, 303), answer.status_code
    return client


def server_ms(answer: httpx.Response) -> tuple[float, str]:
    """The handler's time and the cache outcome from ``Server-Timing``."""
    timing = answer.headers.get("server-timing", "")
    total = re.search(r"total;dur=([\d.]+)", timing)
    outcome = re.search(r'desc="([^"]+)"', timing)
    return (float(total.group(1)) if total else float("nan"), outcome.group(1) if outcome else "-")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5200)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    directory = shop(args.customers)
    server = Server(directory, directory.parent / "serve.log")
    server.start()
    print(machine())
    print(f"{'page':<16}{'cold ms (wall)':>22}{'warm median':>14}{'warm max':>10}{'csv ms':>9}")
    try:
        client = signed_in(server.url)
        for page in PAGES:
            started = time.perf_counter()
            first = client.get(f"/console/analytics/{page}")
            wall = (time.perf_counter() - started) * 1000
            cold, outcome = server_ms(first)
            assert first.status_code == 200, (page, first.status_code)
            warm = [
                server_ms(client.get(f"/console/analytics/{page}"))[0] for _ in range(args.repeat)
            ]
            started = time.perf_counter()
            csv = client.get(f"/console/analytics/{page}.csv")
            csv_ms = (time.perf_counter() - started) * 1000
            assert csv.status_code == 200, (page, csv.status_code)
            print(
                f"{page:<16}{cold:>10.0f} {outcome:<4}({wall:>5.0f})"
                f"{statistics.median(warm):>14.1f}{max(warm):>10.1f}{csv_ms:>9.1f}"
            )
        client.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
