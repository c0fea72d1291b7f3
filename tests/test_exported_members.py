"""The public surface (issue 20): the root's names are exactly ``__all__``, and few.

The model is httpx's tests/test_exported_members.py. Everything below the root is internal by
convention; ``analytics_client.orchestration`` is the Prefect side, public for flows/.
"""

from __future__ import annotations

import subprocess
import sys
import types

import analytics_client
import analytics_client.orchestration

MAX_ROOT_NAMES = 45


def is_subpackage(value: object) -> bool:
    return isinstance(value, types.ModuleType) and hasattr(value, "__path__")


def test_all_imports_are_exported() -> None:
    """``__all__`` is every public name of the root that is not a sub-package, sorted."""
    public = (name for name, value in vars(analytics_client).items()
              if not name.startswith("_") and not is_subpackage(value))
    assert analytics_client.__all__ == sorted(public, key=str.casefold)


def test_the_root_offers_at_most_45_names() -> None:
    """The root offers at most 45 names; anything more is imported from its module."""
    assert len(analytics_client.__all__) <= MAX_ROOT_NAMES


def test_every_exported_name_resolves() -> None:
    """Each name in ``__all__`` of the root and of orchestration is there to import."""
    for package in (analytics_client, analytics_client.orchestration):
        namespace: dict[str, object] = {}
        exec(f"from {package.__name__} import *", namespace)
        assert [n for n in package.__all__ if namespace.get(n) is None] == []
        assert len(set(package.__all__)) == len(package.__all__)


def test_importing_the_root_and_orchestration_does_not_import_prefect() -> None:
    """``import analytics_client`` and ``import analytics_client.orchestration`` leave Prefect
    unimported: the library runs without it, and the flows set Prefect's settings first."""
    code = ("import sys, analytics_client, analytics_client.orchestration; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'prefect'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
