"""The layout's rules (ARCHITECTURE.md): the library imports neither Ray nor `actors/` nor `jobs/`; `jobs/` is
wiring only, in small modules; `actors/` never imports `jobs/`."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: the xtrader modules allowed to reach into Ray: the commands that start or attach to a capture, and the
#: benchmark harness that runs the pipeline
REACH_INTO_RAY = {
    "xtrader/cli.py",
    "xtrader/control.py",
    "xtrader/status.py",
    "xtrader/bench/e2e.py",
    "xtrader/bench/runner.py",
}


def imported(path: Path) -> set[str]:
    """Top-level package names a module imports (at any depth of its code)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_library_imports_neither_ray_nor_actors_nor_jobs() -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(imported(path) & {"ray", "actors", "jobs"})
        for path in sorted((ROOT / "xtrader").rglob("*.py"))
        if str(path.relative_to(ROOT)) not in REACH_INTO_RAY
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_actors_never_import_jobs() -> None:
    assert [str(p.relative_to(ROOT)) for p in (ROOT / "actors").rglob("*.py") if "jobs" in imported(p)] == []


def test_the_driver_is_small_modules() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in (ROOT / "jobs").glob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > 300} == {}
