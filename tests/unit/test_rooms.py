"""The rooms inside ``cdp`` (docs/architecture.md draws them) keep their doors.

``tests/unit/test_layering.py`` checks the layers between the top-level
packages; this file checks the rooms within ``cdp``:

- services and the read side never reach an entry point, the demo, the
  composition root or the Kafka adapter (the mode-specific pieces come in
  through ``cdp/bootstrap.py``);
- ports import no adapter, service or entry point;
- adapters never import an entry point, the demo or the composition root,
  and one adapter never imports another (DuckDB and Kafka stay swappable),
  except the two built on DuckDB: the Parquet archive (queried and restored
  through DuckDB) and the local socket (it serves a DuckDB connection);
- nothing but the demo and the CLI imports the demo (the synthetic-data
  generator stays off the serving and export paths);
- no module outside tests grows much past 400 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CODE = ("cdp", "schemas", "projections", "streams", "connectors")
ENTRY = ("cdp.http", "cdp.console", "cdp.cli", "cdp.bootstrap", "cdp.demo")
ADAPTERS = (
    "cdp.adapters.duckdb",
    "cdp.adapters.kafka",
    "cdp.adapters.archive",
    "cdp.adapters.socket",
)
# room -> module prefixes it must not import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "cdp.ports": (*ENTRY, "cdp.adapters", "cdp.services", "cdp.read", "cdp.runtime"),
    "cdp.services": (*ENTRY, "cdp.adapters.kafka"),
    "cdp.read": (*ENTRY, "cdp.adapters.kafka"),
    "cdp.runtime": (*ENTRY, "cdp.adapters.kafka"),
    "cdp.adapters": ENTRY,
    "connectors": ENTRY,
    "streams": ("cdp.http", "cdp.cli", "cdp.demo", "cdp.adapters.duckdb", "cdp.adapters.socket"),
}
# Entry points (HTTP routes, CLI commands) may use the demo only from the CLI.
DEMO_USERS = ("cdp.demo", "cdp.cli")
BUILT_ON = {
    "cdp.adapters.archive": ("cdp.adapters.duckdb",),
    "cdp.adapters.socket": ("cdp.adapters.duckdb",),
}
MAX_LINES = 420


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every absolute module a file imports, ``from a import b`` counted as ``a.b`` too."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def files() -> list[Path]:
    return sorted(p for package in CODE for p in (ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_rooms_keep_their_doors(path: Path) -> None:
    name = module_name(path)
    names = imported(path)
    for room, forbidden in FORBIDDEN.items():
        if within(name, room):
            bad = sorted(n for n in names for f in forbidden if within(n, f))
            assert not bad, f"{name} ({room}) imports {bad}"
    if within(name, "cdp.adapters"):
        own = next(a for a in (*ADAPTERS, "cdp.adapters") if within(name, a))
        allowed = (own, *BUILT_ON.get(own, ()))
        others = sorted(
            n
            for n in names
            for a in ADAPTERS
            if a not in allowed and within(n, a) and own != "cdp.adapters"
        )
        assert not others, f"{name} (adapter {own}) imports another adapter: {others}"
    if not any(within(name, user) for user in DEMO_USERS):
        demo = sorted(n for n in names if within(n, "cdp.demo"))
        assert not demo, f"{name} imports the demo: {demo}"


@pytest.mark.parametrize("path", files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_stay_small(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, (
        f"{path.relative_to(ROOT)} has {lines} lines (split it by what it holds)"
    )


def test_the_rules_see_every_room() -> None:
    rooms = {module_name(p).split(".")[1] for p in (ROOT / "cdp").glob("*/__init__.py")}
    assert {"ports", "runtime", "adapters", "services", "read", "http", "cli", "demo"} <= rooms
