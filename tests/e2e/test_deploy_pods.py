"""What the schemas cannot see in deploy/: Pod Security "restricted" on every
pod, the image's writable directories, probes that hit routes and ports the
code serves, Services and budgets that select what exists, and one topic
layout across compose and Kubernetes.
"""

from __future__ import annotations

import re
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import pytest

from cdp.adapters.kafka.topics import KafkaSettings
from cdp.config import Settings
from cdp.http.app import create_app
from tests.e2e.test_deploy_files import (
    DEPLOY,
    ROOT,
    cdp_services,
    compose,
    containers,
    is_cdp_image,
    manifests,
    pod_spec,
    readme_commands,
)

APP_UID = 10001
STREAMS = Path(__file__).resolve().parents[2] / "streams"
# Volume kinds Pod Security "restricted" admits (kubernetes.io/docs/concepts/security/pod-security-standards).
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}  # fmt: skip


def workloads() -> list[tuple[str, dict[str, Any]]]:
    """(kind/name, document) of every manifest that runs pods."""
    return [(f"{d['kind']}/{d['metadata']['name']}", d) for _, d in manifests() if pod_spec(d)]


def options(argv: list[str]) -> dict[str, str]:
    """``--name value`` pairs of an argv (flags map to "")."""
    found = {}
    for i, word in enumerate(argv):
        if word.startswith("--"):
            nxt = argv[i + 1] if i + 1 < len(argv) else ""
            found[word] = "" if nxt.startswith("--") else nxt
    return found


def served_paths() -> set[str]:
    """Routes of the API in Kafka mode (its app, built without starting it)."""
    with TemporaryDirectory() as tmp:
        kafka = KafkaSettings.resolve("127.0.0.1:9", None, None)
        app = create_app(Settings(data_dir=Path(tmp)), kafka=kafka)
        return set(app.openapi()["paths"])


def worker_paths() -> set[str]:
    """Routes the worker's metrics server adds (``cdp worker --metrics-port``)."""
    source = (STREAMS / "metrics.py").read_text(encoding="utf-8")
    return set(re.findall(r"add_get\(\"([^\"]+)\"", source))


# ------------------------------------------------------------ Pod Security


def test_the_namespace_enforces_restricted() -> None:
    (namespace,) = [d for _, d in manifests() if d["kind"] == "Namespace"]
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert all(
        d["metadata"].get("namespace") == "cdp" for _, d in manifests() if d["kind"] != "Namespace"
    )


@pytest.mark.parametrize(("name", "doc"), workloads(), ids=lambda v: str(v)[:30])
def test_every_pod_passes_pod_security_restricted(name: str, doc: dict[str, Any]) -> None:
    spec = pod_spec(doc)
    assert spec is not None
    pod = spec.get("securityContext", {})
    assert pod.get("runAsNonRoot") is True, name
    assert pod.get("runAsUser") == APP_UID and pod.get("runAsGroup") == APP_UID, name
    assert pod.get("fsGroup") == APP_UID, f"{name}: volumes must be writable by the app user"
    assert pod.get("seccompProfile", {}).get("type") in {"RuntimeDefault", "Localhost"}, name
    assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
    for volume in spec.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= RESTRICTED_VOLUMES, f"{name}: volume {volume['name']} is {kinds}"
    for container in containers(doc):
        where = f"{name}:{container['name']}"
        context = container.get("securityContext", {})
        assert context.get("allowPrivilegeEscalation") is False, where
        assert "ALL" in context.get("capabilities", {}).get("drop", []), where
        assert set(context.get("capabilities", {}).get("add", [])) <= {"NET_BIND_SERVICE"}
        assert not context.get("privileged") and context.get("runAsUser", APP_UID) != 0, where
        assert context.get("runAsNonRoot", True) is True, where
        assert all("hostPort" not in p for p in container.get("ports", [])), where


@pytest.mark.parametrize(("name", "doc"), workloads(), ids=lambda v: str(v)[:30])
def test_the_image_is_pinned_and_not_pulled_every_start(name: str, doc: dict[str, Any]) -> None:
    for container in containers(doc):
        assert is_cdp_image(container["image"]), name
        assert not container["image"].endswith(":latest"), name
        assert container.get("imagePullPolicy") == "IfNotPresent", name


# ------------------------------------------------------------- the image


def dockerfile() -> tuple[set[str], set[str], set[str], list[str]]:
    """(directories made, chowned to the app user, declared volumes, the lines)."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if not line.lstrip().startswith("#")]
    made, owned, volumes = set(), set(), set()
    for line in lines:
        for command in line.split("&&"):
            words = command.split()
            if "mkdir" in words:
                made |= {w for w in words if w.startswith("/")}
            if "chown" in words and f"{APP_UID}:{APP_UID}" in words:
                owned |= {w for w in words if w.startswith("/")}
        if line.startswith("VOLUME"):
            volumes |= set(re.findall(r'"(/[^"]+)"', line))
    return made, owned, volumes, lines


def written_paths() -> set[str]:
    """Every path compose, the manifests or the README mount into the cdp image,
    and every CDP_DATA_DIR they set."""
    paths = set()
    for service in cdp_services().values():
        paths |= {v.split(":")[1] for v in service.get("volumes", [])}
        paths.add(service["environment"]["CDP_DATA_DIR"])
    for _, doc in manifests():
        if doc["kind"] == "ConfigMap":
            paths.add(doc["data"]["CDP_DATA_DIR"])
        for container in containers(doc):
            paths |= {m["mountPath"] for m in container.get("volumeMounts", [])}
    readme = (DEPLOY / "README.md").read_text(encoding="utf-8")
    paths |= set(re.findall(r" -v [\w.-]+:(/[\w/.-]+)", readme))
    return paths


def test_the_image_owns_every_directory_the_app_writes() -> None:
    made, owned, volumes, lines = dockerfile()
    written = written_paths()
    assert {"/var/lib/cdp", "/archive"} <= written
    for path in written:
        assert path in made and path in owned, f"{path} is mounted but not made + chowned"
        assert path in volumes, f"{path}: declare it (VOLUME) so new volumes copy its owner"
    user = [i for i, line in enumerate(lines) if line.startswith("USER")]
    chown = [i for i, line in enumerate(lines) if "chown" in line]
    assert user and chown and max(chown) < user[0]
    assert lines[user[0]].split()[1] == f"{APP_UID}:{APP_UID}"  # numeric: runAsNonRoot can check it


def test_every_role_runs_the_one_image() -> None:
    images = {s["image"] for s in cdp_services().values()}
    images |= {c["image"] for _, d in manifests() for c in containers(d)}
    assert len({i.rsplit("/", 1)[-1] for i in images if not i.startswith("$")}) == 1


# ----------------------------------------------------------------- probes


def _named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    return next(int(p["containerPort"]) for p in container["ports"] if p["name"] == port)


def _container(args0: str) -> dict[str, Any]:
    return next(
        c for _, d in manifests() for c in containers(d) if c.get("args", [None])[0] == args0
    )


def test_api_probes_hit_routes_it_serves() -> None:
    api = _container("serve")
    port = int(options(api["args"])["--port"])
    paths = served_paths()
    probes = {k: api[k]["httpGet"] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
    for kind, probe in probes.items():
        assert probe["path"] in paths, f"{kind} {probe['path']}"
        assert _named_port(api, probe["port"]) == port, kind
    # Liveness never depends on Kafka; readiness does.
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == "/health/live"
    assert probes["readinessProbe"]["path"] == "/health"
    startup = api["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 15 * 60  # a long re-read


def test_worker_probes_hit_its_metrics_port() -> None:
    worker = _container("worker")
    port = int(options(worker["args"])["--metrics-port"])
    assert _named_port(worker, "metrics") == port
    for kind in ("startupProbe", "livenessProbe"):
        probe = worker[kind]["httpGet"]
        assert probe["path"] in worker_paths() and probe["path"] == "/health/live", kind
        assert _named_port(worker, probe["port"]) == port, kind
    (worker_command,) = [c for c in ROOT.commands["worker"].params if c.name == "metrics_port"]
    assert worker_command.default == port


def test_compose_healthchecks_hit_served_routes() -> None:
    served = {"serve": served_paths(), "worker": worker_paths()}
    port_option = {"serve": "--port", "worker": "--metrics-port"}
    checked = 0
    for name, service in cdp_services().items():
        command = service.get("command", [""])
        if command[0] not in served:
            continue
        test = " ".join(service["healthcheck"]["test"])
        assert "curl" not in test  # the image has python, not curl
        (port, path) = re.findall(r"http://127\.0\.0\.1:(\d+)(/[\w/]*)", test)[0]
        assert port == options(command)[port_option[command[0]]], name
        assert path in served[command[0]], name
        checked += 1
    assert checked == 2


# ------------------------------------------------ services, budgets, layout


def test_services_and_budgets_select_running_pods() -> None:
    labels = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"]
              for _, d in manifests() if d["kind"] in {"Deployment", "StatefulSet"}}  # fmt: skip
    services = {d["metadata"]["name"]: d["spec"] for _, d in manifests() if d["kind"] == "Service"}
    for _, doc in manifests():
        if doc["kind"] == "StatefulSet":
            governing = services[doc["spec"]["serviceName"]]  # KeyError: no such Service
            assert governing.get("clusterIP") == "None"
    for spec in services.values():
        assert any(spec["selector"].items() <= pod.items() for pod in labels.values())
    budgets = [d for _, d in manifests() if d["kind"] == "PodDisruptionBudget"]
    covered = {
        name
        for name, pod in labels.items()
        for b in budgets
        if b["spec"]["selector"]["matchLabels"].items() <= pod.items()
    }
    assert {"cdp-api", "cdp-worker"} <= covered


def test_compose_and_kubernetes_make_the_same_topics() -> None:
    inits = [argv for _, d in manifests() for c in containers(d) if (argv := c["args"])[:2] == ["kafka", "init"]]  # fmt: skip
    inits.append(cdp_services()["kafka-init"]["command"])
    partitions = {options(argv)["--partitions"] for argv in inits}
    assert partitions == {"12"}
    (config,) = [d for _, d in manifests() if d["kind"] == "ConfigMap"]
    assert config["data"]["CDP_KAFKA_REPLICATION"] == "3"
    assert compose()["x-cdp"]["environment"]["CDP_KAFKA_REPLICATION"] == "3"
    assert "PARTITIONS" not in config["data"]  # nothing reads it: init takes --partitions
    (workers,) = [d for _, d in manifests() if d["metadata"]["name"] == "cdp-worker" and d["kind"] == "StatefulSet"]  # fmt: skip
    assert workers["spec"]["replicas"] <= 12
    # Workers learn the partitions from the topics: no deploy file pins them.
    assert all("--partitions" not in argv for argv in readme_commands() if argv[:1] == ["worker"])
    assert all("--partitions" not in c["args"] for _, d in manifests() for c in containers(d) if c["args"][0] == "worker")  # fmt: skip


def test_no_secret_is_applied_with_the_manifests() -> None:
    """An applied empty Secret would make the README's `kubectl create secret` fail."""
    assert all(d["kind"] != "Secret" for _, d in manifests())


def test_every_environment_variable_set_is_one_cdp_reads() -> None:
    from cdp import config  # noqa: PLC0415

    known = {v for k, v in vars(config).items() if k.endswith("_ENV") and isinstance(v, str)}
    example = (DEPLOY / "cdp.env.example").read_text(encoding="utf-8")
    named = set(re.findall(r"^#?(CDP_[A-Z_]+)=", example, flags=re.M))
    named |= {k for s in cdp_services().values() for k in s["environment"]}
    named |= {k for _, d in manifests() if d["kind"] == "ConfigMap" for k in d["data"]}
    assert "CDP_KAFKA_REPLICATION" in named
    assert named <= known, named - known
