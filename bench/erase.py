"""Erasure of one customer on a data directory (issue 16: < 10 s on the 11M-event set).

    python -m bench.erase --data /tmp/cdp-bench-memory/large/data   # a COPY is erased
    python -m bench.erase                                         # a generated 2,000-customer shop
    python -m bench.erase --data /tmp/copy/data --in-place        # erase a copy made beforehand
    python -m bench.erase --served [--data ...]                   # through a running cdp serve

The data directory is copied first (the copy is erased, the original kept).
Prints the time of each part of ``cdp privacy erase`` (finding the person,
the deletes, the file rewrite, the file scrub) and, as the same-run baseline,
the time to copy the database file with the operating system (``shutil``):
the rewrite cannot be faster than reading and writing the file once.

``--served`` files the erasure over the API of a running ``cdp serve`` instead
and prints how long the server paused (answered 503, read from ``/health``
every 50 ms) and how long until the request was finished.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import duckdb
import httpx
import orjson

from cdp.adapters.duckdb import erase as duckdb_erase
from cdp.config import Settings
from cdp.runtime.engine import Engine
from cdp.services.privacy import erase
from cdp.services.privacy.scrub import scrub


def _generated(root: Path, customers: int) -> Path:
    from typer.testing import CliRunner  # noqa: PLC0415

    from cdp.cli import app  # noqa: PLC0415
    from cdp.demo.generate import GenerateConfig, iter_events  # noqa: PLC0415

    events = root / "events.jsonl"
    with events.open("wb") as out:
        for event in iter_events(GenerateConfig(5, customers)):
            out.write(orjson.dumps(event) + b"\n")
    data = root / "source"
    result = CliRunner().invoke(app, ["--data-dir", str(data), "ingest", str(events)])
    assert result.exit_code in (0, 1), result.output
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, help="data directory to copy and erase from")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="erase from --data itself, not a copy (for a copy you made already: 11 GB)",
    )
    parser.add_argument(
        "--served", action="store_true", help="erase through the API of a running cdp serve"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.data.parent if args.data else None) as tmp:
        root = Path(tmp)
        source = args.data or _generated(root, args.customers)
        data = source if args.in_place and args.data else root / "data"
        if data != source:
            shutil.copytree(source, data)
        settings = Settings.resolve(data)
        started = time.perf_counter()
        shutil.copyfile(settings.database, root / "baseline.duckdb")
        baseline = time.perf_counter() - started
        (root / "baseline.duckdb").unlink()

        con = duckdb.connect(str(settings.database), read_only=True)
        row = con.execute(
            "SELECT identifier FROM identities WHERE kind = 'email' ORDER BY identifier LIMIT 1"
        ).fetchone()
        con.close()
        assert row is not None, "no customer with an email"
        identifier = str(row[0])

        if args.served:
            _served(settings, identifier, root)
            return
        t0 = time.perf_counter()
        person = erase.find_person(settings, identifier)
        t1 = time.perf_counter()
        Engine.catch_up_file(settings)
        t2 = time.perf_counter()
        con = duckdb.connect(str(settings.database))
        removed = duckdb_erase.remove(con, person)
        con.close()
        t3 = time.perf_counter()
        size = duckdb_erase.rewrite(settings.database)
        t4 = time.perf_counter()
        lines = scrub(data, person.values)
        t5 = time.perf_counter()
        total = t5 - t0
        events = removed.rows.get("event_log", 0)
        print(f"erasure of one customer ({len(person.identifiers)} identifiers, {events} events)")
        print(f"  find the person      {t1 - t0:8.2f} s")
        print(f"  catch up (if behind) {t2 - t1:8.2f} s")
        print(f"  delete rows          {t3 - t2:8.2f} s  ({removed.total} rows)")
        print(f"  rewrite the file     {t4 - t3:8.2f} s  ({size / 1e9:.2f} GB)")
        print(f"  scrub other files    {t5 - t4:8.2f} s  ({sum(lines.values())} lines)")
        print(f"  total                {total:8.2f} s")
        print(
            f"baseline: copy the database file {baseline:.2f} s; ratio total/copy {total / baseline:.2f}"
        )


def _served(settings: Settings, identifier: str, root: Path) -> None:
    """File the erasure over the API of ``cdp serve`` on ``settings``; print the pause."""
    from typer.testing import CliRunner  # noqa: PLC0415

    from bench.common import Server  # noqa: PLC0415
    from cdp.cli import app  # noqa: PLC0415

    token = ["tokens", "add", "bench-dpo", "--scope", "privacy:write"]
    made = CliRunner().invoke(app, ["--data-dir", str(settings.data_dir), "--json", *token])
    auth = {"authorization": f"Bearer {orjson.loads(made.stdout)['token']}"}
    server = Server(settings.data_dir, root / "serve.log")
    started = time.perf_counter()
    server.start()
    print(f"cdp serve up in {time.perf_counter() - started:.2f} s")
    try:
        filed = httpx.post(
            f"{server.url}/v1/privacy/requests",
            headers=auth,
            json={"type": "suppress-with-delete", "identifier": identifier},
            timeout=30,
        )
        filed.raise_for_status()
        t0 = time.perf_counter()
        first_503 = last_503 = None
        status = "received"
        while status not in ("finished", "partial", "failed"):
            health = httpx.get(f"{server.url}/health", timeout=30).status_code
            now = time.perf_counter() - t0
            if health == 503:
                first_503 = now if first_503 is None else first_503
                last_503 = now
            elif first_503 is not None:
                answer = httpx.get(
                    f"{server.url}/v1/privacy/requests/{filed.json()['id']}", headers=auth
                )
                status = answer.json()["status"]
            time.sleep(0.05)
        done = time.perf_counter() - t0
    finally:
        server.stop()
    paused = 0.0 if first_503 is None or last_503 is None else last_503 - first_503
    print(f"erasure through cdp serve: request {status} {done:.2f} s after filing")
    print(f"  the server paused (503) for {paused:.2f} s, from {first_503 or 0:.2f} s")


if __name__ == "__main__":
    main()
