"""deploy/ stays true to the CLI: every cdp command in the compose file, the
Kubernetes manifests and deploy/README.md's code blocks names a real command
with real options, parsed the way click parses it (global options such as
``--data-dir`` before the sub-command, option values skipped).

(No container engine runs here; this is what can be checked without one.
The loaders here are shared by the other ``test_deploy_*`` modules.)
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from cdp.cli import app

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DOCKERFILE = "deploy/Dockerfile"
ROOT = typer.main.get_command(app)

#: ``docker compose run`` options that take a value (the service name follows them).
_RUN_VALUE_OPTIONS = {"-v", "--volume", "-e", "--env", "--name", "-p", "--publish", "-u",
                      "--user", "-w", "--workdir", "--entrypoint", "-l", "--label"}  # fmt: skip
_SHELL_OPERATORS = {"|", "||", "&&", ";"}


def compose() -> dict[str, Any]:
    """deploy/compose.yaml as compose reads it (YAML merge keys applied)."""
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return loaded


def cdp_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the image built from deploy/Dockerfile."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if (service.get("build") or {}).get("dockerfile") == DOCKERFILE
    }


def manifests() -> list[tuple[str, dict[str, Any]]]:
    """(file name, document) of every Kubernetes manifest ``kubectl apply -f deploy/k8s/`` applies."""
    found = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc:
                found.append((path.name, doc))
    return found


def pod_spec(doc: dict[str, Any]) -> dict[str, Any] | None:
    """The pod spec a workload runs (Deployment, StatefulSet, Job, CronJob, Pod)."""
    if doc["kind"] == "Pod":
        return dict(doc["spec"])
    spec = doc.get("spec", {})
    template = spec.get("template") or spec.get("jobTemplate", {}).get("spec", {}).get("template")
    return None if template is None else dict(template["spec"])


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Every container of a workload, init containers included."""
    spec = pod_spec(doc) or {}
    return [*spec.get("initContainers", []), *spec.get("containers", [])]


def is_cdp_image(image: str) -> bool:
    """Whether ``image`` is this project's image (``cdp:TAG``, or a registry path to it)."""
    return image.rsplit("/", 1)[-1].startswith("cdp:")


def readme_commands() -> list[list[str]]:
    """The cdp argv of every command in deploy/README.md's fenced code blocks:
    ``cdp ARGS``, ``... exec SERVICE cdp ARGS``, ``kubectl ... -- cdp ARGS`` and
    ``docker compose ... run [OPTIONS] SERVICE ARGS`` for a service of the cdp image."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    services = set(cdp_services())
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            segment: list[str] = []
            for word in [*words, ";"]:
                if word not in _SHELL_OPERATORS:
                    segment.append(word)
                    continue
                argv = _cdp_argv(segment, services)
                if argv is not None:
                    found.append(argv)
                segment = []
    return found


def _cdp_argv(words: list[str], services: set[str]) -> list[str] | None:
    compose_cmd = words[:2] == ["docker", "compose"]
    for i, word in enumerate(words):  # `cdp` as the command word, not `-n cdp`
        if word == "cdp" and (i == 0 or words[i - 1] == "--" or (compose_cmd and "exec" in words)):
            return words[i + 1 :]
    if compose_cmd and "run" in words:
        rest = iter(words[words.index("run") + 1 :])
        for word in rest:
            if word in _RUN_VALUE_OPTIONS:
                next(rest)
            elif not word.startswith("-"):
                return list(rest) if word in services else None
    return None


def all_commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every cdp command the deploy files run or document."""
    found: list[tuple[str, list[str]]] = []
    for name, service in cdp_services().items():
        if "command" in service:
            found.append((f"compose:{name}", list(service["command"])))
    for file, doc in manifests():
        for container in containers(doc):
            if is_cdp_image(container.get("image", "")):
                found.append((f"{file}:{container['name']}", list(container["args"])))
    found += [(f"README:{' '.join(argv[:3])}", argv) for argv in readme_commands()]
    return found


def problems(argv: list[str]) -> list[str]:
    """What in ``argv`` the CLI would reject: unknown sub-commands and options.

    Walks typer's click command tree (typer vendors click, so duck-typed: a
    group has ``commands``, an option ``opts``)."""
    command: Any = ROOT
    path: list[str] = []
    found = []
    words = iter(argv)
    for word in words:
        if word.startswith("--"):
            name = word.split("=", 1)[0]
            option = _option(command, name)
            if option is None and name != "--help":
                found.append(f"`cdp {' '.join(path)}` has no option {name}")
            elif option is not None and not option.is_flag and "=" not in word:
                next(words, None)  # its value
        elif hasattr(command, "commands"):
            sub = command.commands.get(word)
            if sub is None:
                found.append(f"`cdp {' '.join(path)}` has no command {word!r}")
                break
            command, path = sub, [*path, word]
        # else: a positional argument of the command
    if hasattr(command, "commands"):
        found.append(f"`cdp {' '.join(path)}` needs a sub-command")
    return found


def _option(command: Any, name: str) -> Any:
    for param in command.params:
        if param.param_type_name == "option" and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def test_the_deploy_files_run_cdp_everywhere() -> None:
    where = {w.split(":")[0] for w, _ in all_commands()}
    assert {"compose", "README", "20-kafka-init.yaml", "30-api.yaml", "40-worker.yaml"} <= where
    documented = {" ".join(argv[:2]) for argv in readme_commands()}
    # The README's step-by-step run, as an operator types it.
    assert {"kafka init", "kafka status", "worker --store", "sources add"} <= documented
    assert any("replay" in argv and "--archive" in argv for argv in readme_commands())


def test_the_parser_catches_what_the_cli_refuses() -> None:
    """The check below can fail: a made-up option, a made-up command, a global
    option after its sub-command."""
    assert problems(["worker", "--no-such-option", "1"])
    assert problems(["kafka", "initialise"])
    assert problems(["replay", "--data-dir", "/x", "--archive", "/a"])
    assert not problems(["--data-dir", "/x", "replay", "--archive", "/a"])


@pytest.mark.parametrize(("where", "argv"), all_commands(), ids=str)
def test_each_command_and_option_exists(where: str, argv: list[str]) -> None:
    assert not problems(argv), f"{where}: {' '.join(argv)}"
