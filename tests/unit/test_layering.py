"""Dependencies point inward: schemas ← projections ← cdp ← connectors, streams.

Only composition modules (the CLI package, the demo, the API app and the worker
entry point) may import every layer. Projections are pure: no I/O, no clock,
no broker or database client.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("schemas", "projections", "cdp", "connectors", "streams")
ALLOWED = {
    "schemas": {"schemas"},
    "projections": {"schemas", "projections"},
    "cdp": {"schemas", "projections", "cdp"},
    "connectors": {"schemas", "projections", "cdp", "connectors"},
    "streams": {"schemas", "projections", "cdp", "streams"},
}
COMPOSITION_DIRS = ("cdp/cli/",)
COMPOSITION = {"cdp/demo/run.py", "cdp/http/app.py"}
IMPURE = {
    "duckdb",
    "faust",
    "kafka",
    "aiokafka",
    "pyarrow",
    "os",
    "time",
    "socket",
    "random",
    "pathlib",
    "subprocess",
    "threading",
    "asyncio",
    "httpx",
    "requests",
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_inward(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    if relative in COMPOSITION or relative.startswith(COMPOSITION_DIRS):
        return
    layer = relative.split("/")[0]
    ours = {name.split(".")[0] for name in imports_of(path)} & set(PACKAGES)
    assert ours <= ALLOWED[layer], f"{relative} imports {sorted(ours - ALLOWED[layer])}"


@pytest.mark.parametrize("path", sorted((ROOT / "projections").rglob("*.py")), ids=lambda p: p.name)
def test_projections_are_pure(path: Path) -> None:
    top = {name.split(".")[0] for name in imports_of(path)}
    assert not top & IMPURE, f"{path.name} imports {sorted(top & IMPURE)}"
    assert "datetime.now" not in path.read_text(encoding="utf-8")


def test_the_layering_test_sees_every_package() -> None:
    seen = {p.relative_to(ROOT).parts[0] for p in modules()}
    assert seen == set(PACKAGES)
