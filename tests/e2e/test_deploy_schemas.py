"""deploy/ against the schemas the tools use: deploy/compose.yaml against the
Compose Specification's JSON Schema (vendored in tests/fixtures/, see
compose-spec.NOTICE.md) and every Kubernetes manifest against the OpenAPI
schemas of one Kubernetes release in strict mode (``kubernetes-validate``,
which ships the schemas in its wheel: no network). Strict means a field the
API server does not know is an error, as ``kubectl apply --validate=strict``
would say.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from kubernetes_validate import utils as k8s

from tests.e2e.test_deploy_files import compose, manifests

COMPOSE_SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "compose-spec.json"
KUBERNETES = "1.33.0"
"""The Kubernetes release whose schemas the manifests must satisfy (one that
kubernetes-validate ships; every field used is also in older releases)."""


def compose_errors(document: dict[str, Any]) -> list[str]:
    """Every way ``document`` breaks the Compose Specification."""
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_spec() -> None:
    assert compose_errors(compose()) == []


def test_the_compose_schema_rejects_what_compose_rejects() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["worker"]["restart_policy"] = "always"  # not a service key
    broken["services"]["api"]["depends_on"] = {"kafka-init": {"condition": "service_finished"}}
    assert len(compose_errors(broken)) == 2


@pytest.mark.parametrize(("file", "doc"), manifests(), ids=lambda v: str(v)[:40])
def test_manifest_is_valid_kubernetes_strictly(file: str, doc: dict[str, Any]) -> None:
    try:
        k8s.validate(doc, KUBERNETES, strict=True)
    except k8s.ValidationError as error:
        pytest.fail(f"{file} {doc['kind']}/{doc['metadata']['name']}: {error.message}")


def test_strict_validation_rejects_an_unknown_field() -> None:
    (_, deployment) = next((f, d) for f, d in manifests() if d["kind"] == "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    with pytest.raises(k8s.ValidationError):
        k8s.validate(broken, KUBERNETES, strict=True)
