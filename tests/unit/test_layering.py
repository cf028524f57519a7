"""Dependencies point inward: schemas ← projections ← cdp ← connectors, streams.

Only composition modules (the CLI package, the demo, the API app and the worker
entry point) may import every layer. Projections are pure: no I/O, no clock,
no broker or database client.
"""

from __future__ import annotations

import ast
import subprocess
import sys
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
# The HTTP routes are entry points: they sit above the connectors whose pure
# mappings they call (the webhook and form routes), never above streams.
ENTRY_DIRS = ("cdp/http/", "cdp/console/")
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
    allowed = ALLOWED[layer] | ({"connectors"} if relative.startswith(ENTRY_DIRS) else set())
    ours = {name.split(".")[0] for name in imports_of(path)} & set(PACKAGES)
    assert ours <= allowed, f"{relative} imports {sorted(ours - allowed)}"


@pytest.mark.parametrize("path", sorted((ROOT / "projections").rglob("*.py")), ids=lambda p: p.name)
def test_projections_are_pure(path: Path) -> None:
    top = {name.split(".")[0] for name in imports_of(path)}
    assert not top & IMPURE, f"{path.name} imports {sorted(top & IMPURE)}"
    assert "datetime.now" not in path.read_text(encoding="utf-8")


def test_the_layering_test_sees_every_package() -> None:
    seen = {p.relative_to(ROOT).parts[0] for p in modules()}
    assert seen == set(PACKAGES)


ENV_READS = {"environ", "environb", "getenv", "getenvb"}


def env_reads(path: Path) -> list[int]:
    """Lines where a module reads the environment (``os.environ``, ``os.getenv``, or
    those names imported from ``os``)."""
    lines: list[int] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ENV_READS
            and isinstance(node.value, ast.Name)
            and node.value.id == "os"
        ) or (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and any(alias.name in ENV_READS for alias in node.names)
        ):
            lines.append(node.lineno)
    return lines


def test_only_the_config_module_reads_the_environment() -> None:
    config = ROOT / "cdp" / "config.py"
    assert env_reads(config), "the check no longer sees cdp/config.py's reads"
    readers = {
        f"{path.relative_to(ROOT)}:{line}"
        for path in modules()
        if path != config
        for line in env_reads(path)
    }
    assert not readers, f"environment read outside cdp/config.py (add a function there): {readers}"


WORKER_WITHOUT_STORAGE = """
import sys
sys.modules["duckdb"] = None  # any import of these now raises ImportError
sys.modules["pyarrow"] = None
import streams.agents, streams.app, streams.worker
try:
    import cdp.adapters.duckdb.store
except ImportError:
    pass
else:
    raise SystemExit("the block did not hold: the DuckDB store imported")
"""


def test_the_faust_worker_imports_without_duckdb_or_pyarrow() -> None:
    # The worker publishes the same snapshot rows as the DuckDB store; it must not
    # drag the embedded storage (and its native libraries) into every worker process.
    run = subprocess.run(
        [sys.executable, "-c", WORKER_WITHOUT_STORAGE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:] or run.stdout[-2000:]
