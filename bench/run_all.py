"""Run every benchmark once and print the figures (``make bench``)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from bench import cli_startup, collector, demo, folds, ingest, lookup, replay


def main() -> None:
    for bench in (ingest, replay):
        workdir = Path(tempfile.mkdtemp(prefix="cdp-bench-"))
        try:
            bench.run(200_000, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        print()
    folds.run(200_000, 5)
    print()
    demo.run()
    print()
    collector.main([])
    print()
    lookup.main([])
    print()
    cli_startup.main([])


if __name__ == "__main__":
    main()
