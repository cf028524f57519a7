"""deploy/ stays true to the CLI: every cdp command in the compose file and the
Kubernetes manifests names a real command with real options.

(No container engine runs here; this is what can be checked without one.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from cdp.cli import app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def cdp_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every container that runs the cdp image."""
    found: list[tuple[str, list[str]]] = []
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        if "command" in service and service.get("image", "").startswith("cdp"):
            found.append((f"compose:{name}", list(service["command"])))
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            for container in _containers(doc):
                if container.get("image", "").startswith("cdp"):
                    found.append((f"{path.name}:{container['name']}", list(container["args"])))
    return found


def _containers(doc: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not doc:
        return []
    spec = doc.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    return list((template or {}).get("spec", {}).get("containers", []))


def test_the_deploy_files_run_cdp_somewhere() -> None:
    where = {w.split(":")[0] for w, _ in cdp_commands()}
    assert "compose" in where
    assert any(w.endswith(".yaml") for w in where)


@pytest.mark.parametrize(("where", "argv"), cdp_commands(), ids=str)
def test_each_command_and_option_exists(where: str, argv: list[str]) -> None:
    words = [a for a in argv if not a.startswith("-")]
    path: list[str] = []
    for word in words:  # the command path: leading words that are sub-commands
        probe = CliRunner().invoke(app, [*path, word, "--help"])
        if probe.exit_code != 0:
            break
        path.append(word)
        if "Commands" not in probe.output:
            break
    assert path, f"{where}: {argv[0]!r} is not a cdp command"
    help_text = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).output
    options = set(re.findall(r"--[a-z][a-z-]*", help_text))
    for option in (a for a in argv if a.startswith("--")):
        assert option in options, f"{where}: `cdp {' '.join(path)}` has no option {option}"
