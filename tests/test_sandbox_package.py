"""The sandbox is a package of its own that imports nothing of the library (issue 20, point 4)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "analytics_sandbox"
# The library and the heavy dependencies only it needs; httpx and uvicorn are the sandbox's own.
FORBIDDEN = ("analytics_client", "polars", "deltalake", "pydantic")

_AUTH = 'AUTH = {"api_key": "sandbox-key", "X-Organization-Id": "org_sandbox"}\n'
_REPORT = f"""
import json, sys
print(json.dumps(sorted(m for m in sys.modules
                        if any(m == f or m.startswith(f + ".") for f in {FORBIDDEN!r}))))
"""
# Import, build a world and the app, answer one request in process.
_IN_PROCESS = """
import httpx
import analytics_sandbox
from analytics_sandbox import SandboxApp, SandboxTransport, World
world = World(seed=3, scale=0.05)
SandboxApp(world)
with httpx.Client(transport=SandboxTransport(world=world), headers=AUTH) as client:
    client.get("http://sandbox/v1/deals").raise_for_status()
"""
# The same over a real loopback server (uvicorn in a thread).
_LOOPBACK = """
import httpx
from analytics_sandbox import World, serve
with serve(World(seed=3, scale=0.05)) as running:
    httpx.get(f"{running.base_url}/v1/tags", headers=AUTH, timeout=10).raise_for_status()
"""
# `python -m analytics_sandbox serve --help`, as the README runs it.
_SERVE_HELP = """
import contextlib, io, runpy, sys
sys.argv = ["analytics_sandbox", "serve", "--help"]
with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):
    runpy.run_module("analytics_sandbox", run_name="__main__", alter_sys=True)
assert "usage: python -m analytics_sandbox serve" in out.getvalue(), out.getvalue()
"""


@pytest.mark.parametrize("script", [
    pytest.param(_IN_PROCESS, id="in-process"),
    pytest.param(_SERVE_HELP, id="serve-help"),
    pytest.param(_LOOPBACK, id="loopback", marks=pytest.mark.slow),
])
def test_start_loads_no_library_module(script: str) -> None:
    """Using the sandbox, or asking its command for help, loads no polars, deltalake, pydantic
    or analytics_client module."""
    done = subprocess.run([sys.executable, "-c", _AUTH + script + _REPORT], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == []


def library_imports(source: str, module: str) -> list[str]:
    """Each import of analytics_client in ``source`` (the module named ``module``), wherever it is:
    module level, inside functions, under ``if TYPE_CHECKING``, relative or by importlib."""
    package = module.split(".")[:-1]  # a relative import starts here (also for __init__)
    found = []
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: max(len(package) - node.level + 1, 0)] if node.level else []
            parent = ".".join([*base, *([node.module] if node.module else [])])
            names = [parent, *(f"{parent}.{a.name}" if parent else a.name for a in node.names)]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Name) and node.func.id == "__import__")
                   or (isinstance(node.func, ast.Attribute)
                       and node.func.attr == "import_module"))):
            names = [node.args[0].value]
        found += [name for name in names if name.split(".")[0] == "analytics_client"]
    return found


def test_no_module_imports_the_library() -> None:
    """No file under analytics_sandbox/ imports analytics_client, not even inside a function or
    a TYPE_CHECKING block."""
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) >= 6  # __init__, __main__, app, profiles, server, world
    offenders = {}
    for path in files:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if imports := library_imports(path.read_text(), module):
            offenders[str(path.relative_to(ROOT))] = imports
    assert offenders == {}


@pytest.mark.parametrize("source", [
    "import analytics_client",
    "from analytics_client.core import errors",
    "def f():\n    from analytics_client import Lake\n",
    "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import analytics_client.lake\n",
    "from .. import analytics_client",
    "import importlib\nimportlib.import_module('analytics_client.read')\n",
    "__import__('analytics_client')",
])
def test_scan_sees_every_form_of_import(source: str) -> None:
    """The scan above finds an import of the library in each form it can take."""
    assert library_imports(source, "analytics_sandbox.app")


def test_scan_passes_the_sandboxs_own_imports() -> None:
    """The scan does not count the sandbox's imports of itself or of third-party packages."""
    source = "from . import world\nfrom .app import SandboxApp\nimport httpx, uvicorn\n"
    assert library_imports(source, "analytics_sandbox.server") == []
