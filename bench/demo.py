"""`cdp demo` end to end, as a fresh user runs it (a subprocess, default size).

python -m bench.demo
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import machine, timed


def run() -> float:
    workdir = Path(tempfile.mkdtemp(prefix="cdp-bench-demo-"))
    try:
        command = [
            sys.executable,
            "-m",
            "cdp.cli",
            "--data-dir",
            str(workdir / "data"),
            "demo",
            "--fresh",
        ]
        result, seconds = timed(
            lambda: subprocess.run(command, capture_output=True, text=True, check=False)
        )
        if result.returncode != 0:
            raise SystemExit(f"demo failed:\n{result.stdout}\n{result.stderr}")
        print(f"demo benchmark on {machine()}")
        for text in result.stdout.splitlines():
            if text[:2] in {"1.", "2.", "4.", "6."} or text.startswith("done"):
                print("  " + text)
        print(f"cdp demo end to end: {seconds:.1f} s (target: under 60 s)")
        return seconds
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    run()
