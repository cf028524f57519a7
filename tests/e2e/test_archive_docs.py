"""docs/archive.md stays true to the CLI: every ``cdp ...`` command it shows, in a
code block or inline, parses (global options before the sub-command, every
option known to the command it is given to).

Each command is run with ``--help`` appended: click parses the whole command
line first, so an unknown option or a misplaced global option fails, and
``--help`` then stops it before it touches a broker or a data directory.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cdp.cli import app

DOC = Path(__file__).resolve().parents[2] / "docs" / "archive.md"


def documented_commands() -> list[list[str]]:
    """argv (without ``cdp``) of each command in docs/archive.md."""
    text = DOC.read_text(encoding="utf-8")
    lines: list[str] = []
    for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", text, flags=re.DOTALL):
        lines.extend(line for line in block.splitlines() if line.startswith("cdp "))
    lines.extend(re.findall(r"`(cdp [^`]+)`", text))
    found: list[list[str]] = []
    for line in lines:
        words = shlex.split(line, comments=True)
        for operator in ("||", "&&", "|", ";", ">"):  # the cdp command ends at the shell's
            words = words[: words.index(operator)] if operator in words else words
        argv = words[1:]
        if argv and argv not in found:
            found.append(argv)
    return found


def test_the_doc_shows_the_archive_commands() -> None:
    shown = {" ".join(argv) for argv in documented_commands()}
    for needed in ("archive run", "archive status", "replay --archive", "sql --archive"):
        assert any(needed in command for command in shown), needed


def test_a_global_option_after_the_command_is_caught() -> None:
    """The check itself: the command the doc used to show fails it."""
    wrong = ["replay", "--archive", "DIR", "--data-dir", "D", "--help"]
    assert CliRunner().invoke(app, wrong).exit_code != 0


@pytest.mark.parametrize("argv", documented_commands(), ids=" ".join)
def test_each_documented_command_parses(argv: list[str]) -> None:
    result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, f"`cdp {' '.join(argv)}`: {result.output}"
    assert "Usage:" in result.output
