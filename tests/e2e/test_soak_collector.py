"""The soak benchmark (bench/soak_collector.py) in miniature, so that it keeps working.

Opt-in (``-m slow``): it starts ``cdp serve`` three times and runs SDK client
processes for a few seconds. The full run and its figures: docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import soak_collector

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def test_a_short_soak_loses_and_duplicates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--duration", "6", "--kills", "2", "--clients", "2", "--rate", "40"]
    with pytest.raises(SystemExit) as finished:
        soak_collector.main([*argv, "--keep", str(tmp_path)])
    out = capsys.readouterr().out
    assert finished.value.code == 0, out
    figures = {
        line.rsplit(None, 1)[0].strip(): line.rsplit(None, 1)[1]
        for line in out.splitlines()
        if line[:1].islower() and line.rsplit(None, 1)[-1].replace(",", "").isdigit()
    }
    assert int(figures["acknowledged (200 for their batch)"].replace(",", "")) > 0
    assert figures["lost (acknowledged, not stored)"] == "0"
    assert figures["duplicated (a messageId stored twice)"] == "0"
    assert "ratio stored/acknowledged: 1.000" in out
