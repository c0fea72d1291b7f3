"""allocator.py: jemalloc in polars and deltalake gives freed pages back, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys

from analytics_client.allocator import JEMALLOC_CONF

SHOW = ("import os, analytics_client, polars, deltalake; "
        "print(os.environ.get('_RJEM_MALLOC_CONF'))")


def _conf_after_import(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if env_value is not None:
        env["_RJEM_MALLOC_CONF"] = env_value
    done = subprocess.run([sys.executable, "-c", SHOW], env=env, capture_output=True, text=True,
                          timeout=120, check=True)
    return done.stdout.strip()


def test_importing_the_library_first_sets_both_decays_to_zero_and_they_win() -> None:
    """polars appends what the variable held to its own defaults: ours come last and win."""
    assert _conf_after_import(None).endswith("," + JEMALLOC_CONF)


def test_a_users_own_setting_is_kept() -> None:
    assert _conf_after_import("narenas:2").endswith(",narenas:2")
    assert JEMALLOC_CONF not in _conf_after_import("")
