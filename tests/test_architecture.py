"""The shape of the library (issue 20), read from its source with ``ast``, without importing it.

Independent of import-linter (pyproject.toml, ``[tool.importlinter]``): the same layers, plus the
rules it does not check (file length, the number of sub-packages, where ``ResourceConfig``
travels). Every import counts, at module top, inside a function or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "analytics_client"
LIBRARY = ROOT / PACKAGE
MAX_LINES = 700
# Top to bottom, as the import-linter contract: a module imports its own sub-package or lower
# ones. lake and http share a layer and are independent of each other.
LAYERS: list[tuple[str, ...]] = [
    ("orchestration",), ("run",), ("read",), ("state",), ("lake", "http"), ("config",), ("core",),
]


# --- the source, as modules and imports -------------------------------------------------------


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def library_files() -> dict[str, Path]:
    """Every module of the library by dotted name."""
    return {module_name(path): path for path in sorted(LIBRARY.rglob("*.py"))}


def imports(path: Path) -> Iterator[tuple[str, int]]:
    """Each module an import statement imports, with its line, as grimp reads it:
    ``from a import b`` imports ``a.b`` when that is a module of ours, else ``a``."""
    modules = library_files()
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield (full if full in modules else base), node.lineno


@cache
def import_graph() -> dict[str, dict[str, int]]:
    """module -> {library module it imports: the line of the first such import}."""
    modules = library_files()
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        edges: dict[str, int] = {}
        for target, line in imports(path):
            if target in modules and target != name:
                edges.setdefault(target, line)
        graph[name] = edges
    return graph


def subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] != "__init__") else None


def layer_of(module: str) -> int | None:
    sub = subpackage(module)
    return next((i for i, layer in enumerate(LAYERS) if sub in layer), None)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


# --- the rules ----------------------------------------------------------------------------------


def test_no_import_cycle_among_modules() -> None:
    """No library module imports, directly or through others, a module that imports it."""
    graph = {module: set(edges) for module, edges in import_graph().items()}
    assert cycles(graph) == []


def test_no_import_cycle_among_subpackages() -> None:
    """No sub-package imports, directly or through others, a sub-package that imports it."""
    graph: dict[str, set[str]] = {}
    for module, edges in import_graph().items():
        for target in edges:
            source, dest = subpackage(module), subpackage(target)
            if source and dest and source != dest:
                graph.setdefault(source, set()).add(dest)
    assert cycles(graph) == []


def test_no_module_imports_a_higher_layer() -> None:
    """A module imports only from its own sub-package or a lower layer (lake and http apart)."""
    upward = []
    for module, edges in import_graph().items():
        for target, line in edges.items():
            here, there = layer_of(module), layer_of(target)
            if here is None or there is None or subpackage(module) == subpackage(target):
                continue
            if there <= here:
                upward.append(f"{module} -> {target} (l.{line})")
    assert upward == []


def test_no_library_file_is_over_700_lines() -> None:
    """No file of the library is longer than 700 lines."""
    lengths = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
               for path in library_files().values()}
    long = {f"{name} ({n} lines)" for name, n in lengths.items() if n > MAX_LINES}
    assert long == set()


def test_the_library_has_at_least_four_subpackages() -> None:
    """The library is made of at least four sub-packages, not flat modules."""
    subpackages = {path.parent.name for path in LIBRARY.glob("*/__init__.py")}
    assert len(subpackages) >= 4, sorted(subpackages)


def test_the_sandbox_lives_beside_the_library() -> None:
    """The sandbox API is a sibling package (analytics_sandbox), not a part of the library."""
    assert (ROOT / "analytics_sandbox" / "__init__.py").is_file()
    assert not any("sandbox" in path.parts for path in LIBRARY.rglob("*.py"))


def test_only_orchestration_imports_prefect() -> None:
    """No module outside analytics_client/orchestration imports prefect."""
    found = []
    for module, path in library_files().items():
        if subpackage(module) == "orchestration":
            continue
        found += [f"{module} (l.{line})" for target, line in imports(path)
                  if target.split(".")[0] == "prefect"]
    assert sorted(set(found)) == []


def resource_config_parameters(path: Path) -> Iterator[str]:
    """``function(parameter)`` for each parameter whose annotation names ``ResourceConfig``."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]:
            if arg is not None and arg.annotation is not None \
                    and "ResourceConfig" in _names_in(arg.annotation):
                yield f"{node.name}({arg.arg})"


def _names_in(annotation: ast.expr) -> set[str]:
    if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
        annotation = ast.parse(annotation.value, mode="eval").body
    return {n.id for n in ast.walk(annotation) if isinstance(n, ast.Name)} \
        | {n.attr for n in ast.walk(annotation) if isinstance(n, ast.Attribute)}


def test_resource_config_stops_at_the_plan() -> None:
    """At most 5 parameters outside config/ and read/plan.py take a ``ResourceConfig``."""
    found = []
    for module, path in library_files().items():
        rel = path.relative_to(ROOT).as_posix()
        if subpackage(module) == "config" or rel == "analytics_client/read/plan.py":
            continue
        found += [f"{module}.{where}" for where in resource_config_parameters(path)]
    assert len(found) <= 5, f"{len(found)} parameters take a ResourceConfig: {sorted(found)}"
