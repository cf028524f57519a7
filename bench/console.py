"""Console page times: every screen of the console, on a real ``cdp serve``.

Builds the demo shop once (``cdp demo --fresh``, cached under the system temp
directory as ``cdp-bench-console/demo``) or takes ``--data DIR`` (e.g. the
1M-customer directory of ``bench.large_data``), adds a bench console user,
starts ``cdp serve`` in a subprocess and signs in through the form. Then it
crawls the console from ``/console/`` (links under ``/console``, at most
``--per-kind`` pages of each path shape, CSV downloads included), and times
each page ``--repeat`` times over keep-alive HTTP on loopback: the request's
whole round trip, which bounds the server time from above.

Printed per page: median and worst time and the page's size; the same-run
baseline is the sign-in page (a template and no data), and each page's ratio
to it. The target: every page's median ≤ 200 ms on the demo shop.

    python -m bench.console [--data DIR] [--repeat 5] [--per-kind 2]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import httpx

from bench.common import ROOT, Server, machine
from cdp.config import Settings
from cdp.services.users import UserStore

CACHE = Path(tempfile.gettempdir()) / "cdp-bench-console"
USER, PASSWORD = "bench-admin", "bench password 1"
LINK = re.compile(r'href="(/console/[^"#]*)"')
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
SKIP = ("/console/static/", "/console/login", "/console/logout", "/console/lang")
TARGET_MS = 200.0


def demo_shop() -> Path:
    """The demo shop's data directory (made once with ``cdp demo --fresh``)."""
    data = CACHE / "demo"
    if not (data / "cdp.duckdb").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        print(f"building the demo shop in {data} (once) ...", flush=True)
        subprocess.run(
            [sys.executable, "-m", "cdp.cli", "--data-dir", str(data), "demo", "--fresh"],
            cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return data


def bench_user(data: Path) -> None:
    """The bench's admin user in ``data``, with the bench's password."""
    users = UserStore(Settings(data).data_dir)
    if users.get(USER) is None:
        users.add(USER, "admin", PASSWORD)
    else:
        users.set_password(USER, PASSWORD)


def shape(path: str) -> str:
    """A page's kind: its path with ids and query values blanked."""
    path, _, query = path.partition("?")
    parts = ["*" if re.search(r"\d|@|%|cus_", p) else p for p in path.split("/")]
    keys = sorted(k.split("=")[0] for k in query.split("&") if k)
    return "/".join(parts) + ("?" + "&".join(keys) if keys else "")


def sign_in(client: httpx.Client) -> None:
    token = CSRF.search(client.get("/console/login").text)
    assert token, "no sign-in form"
    answer = client.post(
        "/console/login", data={"csrf": token.group(1), "user": USER, "password": PASSWORD}
    )
    if answer.status_code != 303:
        sys.exit(f"sign-in failed: {answer.status_code} {answer.text[:300]}")


def crawl(client: httpx.Client, per_kind: int, limit: int) -> list[str]:
    """Console pages reachable from the overview, at most ``per_kind`` of a shape."""
    seen: set[str] = set()
    kinds: dict[str, int] = {}
    pages: list[str] = []
    queue = deque(["/console/"])
    while queue and len(pages) < limit:
        path = queue.popleft().replace("&amp;", "&")
        if path in seen or path.startswith(SKIP):
            continue
        seen.add(path)
        kind = shape(path)
        if kinds.get(kind, 0) >= per_kind:
            continue
        answer = client.get(path)
        if answer.status_code != 200:  # timed below all the same, with its status
            print(f"  {path}: answered {answer.status_code}", file=sys.stderr)
        kinds[kind] = kinds.get(kind, 0) + 1
        pages.append(path)
        if "text/html" in answer.headers.get("content-type", ""):
            queue.extend(LINK.findall(answer.text))
    return pages


def timed(client: httpx.Client, path: str, repeat: int) -> tuple[list[float], int, int]:
    """Round-trip times in ms, the page's size and its status (a page that fails,
    e.g. a segment count stopped at its time bound, is timed and reported too)."""
    times, size, status = [], 0, 0
    for _ in range(repeat):
        started = time.perf_counter()
        answer = client.get(path)
        size = len(answer.content)
        times.append((time.perf_counter() - started) * 1000)
        status = answer.status_code
    return times, size, status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, help="an existing data directory (default: demo shop)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--per-kind", type=int, default=2)
    parser.add_argument("--limit", type=int, default=80, help="pages at most")
    args = parser.parse_args()
    data = args.data or demo_shop()
    bench_user(data)
    server = Server(data, CACHE / "serve.log")
    CACHE.mkdir(parents=True, exist_ok=True)
    server.start()
    try:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            sign_in(client)
            pages = crawl(client, args.per_kind, args.limit)
            timed(client, "/console/", 1)  # warm the connection and caches once
            base, _, _ = timed(client, "/console/login", args.repeat)
            baseline = statistics.median(base)
            print(f"console page times, {machine()}, data {data}, {args.repeat} runs each")
            print(f"baseline: the sign-in page, median {baseline:.1f} ms")
            print(f"{'page':<60} {'median ms':>10} {'max ms':>8} {'KB':>6} {'ratio':>7}")
            worst = 0.0
            for path in pages:
                times, size, status = timed(client, path, args.repeat)
                median = statistics.median(times)
                worst = max(worst, median)
                flag = "" if median <= TARGET_MS else "  over 200 ms"
                flag += "" if status == 200 else f"  answered {status}"
                print(
                    f"{path[:60]:<60} {median:>10.1f} {max(times):>8.1f} {size / 1024:>6.0f}"
                    f" {median / baseline:>7.1f}{flag}"
                )
            print(
                f"{len(pages)} pages; slowest median {worst:.1f} ms (target ≤ {TARGET_MS:.0f} ms)"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
