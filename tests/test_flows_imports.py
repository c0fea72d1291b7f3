"""flows/ is orchestration only: it imports the library through two doors, and no data stack.

Read with `ast` (imports inside functions too), so a flow cannot reach into a sub-package
unseen: from the library, only `analytics_client` (the root) and `analytics_client.orchestration`
(its Prefect side), and only names in their `__all__`; besides those, the standard library and
Prefect.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import analytics_client
import analytics_client.orchestration

ROOT = Path(__file__).resolve().parents[1]
FLOWS = sorted((ROOT / "flows").glob("*.py"))
DOORS = {
    "analytics_client": set(analytics_client.__all__),
    "analytics_client.orchestration": set(analytics_client.orchestration.__all__),
}
DATA_STACK = ("httpx", "deltalake", "polars")


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """Every import in the file: (line, module, names imported from it; [] for `import m`)."""
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            found.append((node.lineno, module, [alias.name for alias in node.names]))
    return found


def _top(module: str) -> str:
    return module.split(".")[0]


def test_there_are_flows_to_check() -> None:
    """The scan sees main, fanout, maintenance and alerts (a moved folder would pass vacuously)."""
    assert {p.stem for p in FLOWS} >= {"main", "fanout", "maintenance", "alerts"}


@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.name)
def test_a_flow_imports_the_library_only_through_its_root_and_orchestration(path: Path) -> None:
    """From analytics_client: the root or analytics_client.orchestration, names of their __all__."""
    wrong = []
    for line, module, names in _imports(path):
        if _top(module) != "analytics_client":
            continue
        if module not in DOORS:
            wrong.append(f"{path.name}:{line}: {module}")
        elif unexported := [n for n in names if n not in DOORS[module]]:
            wrong.append(f"{path.name}:{line}: {module} has no public {unexported}")
    assert wrong == []


@pytest.mark.parametrize("path", FLOWS, ids=lambda p: p.name)
def test_a_flow_imports_nothing_but_the_library_prefect_and_the_standard_library(
        path: Path) -> None:
    """No httpx, deltalake or polars (the library's work), nor any other package."""
    allowed = {"__future__", "analytics_client", "prefect", *sys.stdlib_module_names}
    modules = [(line, module) for line, module, _ in _imports(path)]
    assert [f"{path.name}:{line}: {m}" for line, m in modules if _top(m) in DATA_STACK] == []
    assert [f"{path.name}:{line}: {m}" for line, m in modules if _top(m) not in allowed] == []


def test_every_name_of_the_orchestration_door_loads() -> None:
    """Each name in analytics_client.orchestration.__all__ resolves (they load lazily)."""
    missing = [n for n in analytics_client.orchestration.__all__
               if getattr(analytics_client.orchestration, n, None) is None]
    assert missing == []


def test_importing_the_library_root_neither_imports_prefect_nor_sets_its_environment() -> None:
    """The root reads secrets from analytics_client.orchestration; that loads no Prefect."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    script = ("import os, sys, analytics_client; "
              "print('prefect' in sys.modules, any(k.startswith('PREFECT_') for k in os.environ))")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
