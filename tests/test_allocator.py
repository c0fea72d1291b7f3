"""allocator.py: jemalloc in polars and deltalake gives freed pages back, unless the user chose."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import analytics_client.core.allocator as allocator

SOURCE = Path(allocator.__file__)
# allocator.py run on its own, asking both allocators to also print their settings at exit
# (jemalloc's stats_print): what they print is what they were configured with.
PRINTING = (
    "import os\n"
    f"source = open({str(SOURCE)!r}).read().rsplit('configured = configure()', 1)[0]\n"
    "source += \"print(configure(JEMALLOC_CONF + ',stats_print:true'), flush=True)\"\n"
    "exec(compile(source, 'allocator', 'exec'), {'__name__': 'allocator'})\n"
    "print(os.environ.get('_RJEM_MALLOC_CONF'), flush=True)\n"
)


def _run(code: str, conf: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if conf is not None:
        env["_RJEM_MALLOC_CONF"] = conf
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120, check=True)


def test_both_allocators_take_zero_decays_and_the_variable_is_put_back() -> None:
    done = _run(PRINTING, None)
    configured, left = done.stdout.split("\n")[:2]
    assert configured == "True"
    # polars' and deltalake's jemalloc each print their options at exit
    assert done.stderr.count("opt.dirty_decay_ms: 0 ") == 2, done.stderr[-3000:]
    assert done.stderr.count("opt.muzzy_decay_ms: 0 ") == 2
    # unset again, as found: a process started later decides for itself
    assert left == "None"


@pytest.mark.slow  # a Prefect server or a fresh interpreter: the slow tier
def test_a_users_own_setting_is_kept() -> None:
    code = ("import os, analytics_client, polars\n"
            "print(os.environ['_RJEM_MALLOC_CONF'])")
    assert _run(code, "narenas:2").stdout.strip().endswith(",narenas:2")
    assert allocator.JEMALLOC_CONF not in _run(code, "").stdout


@pytest.mark.slow  # a Prefect server or a fresh interpreter: the slow tier
def test_importing_the_library_configures_before_polars_loads() -> None:
    code = "import analytics_client.core.allocator as a; print(a.configured)"
    assert _run(code, None).stdout.strip() == "True"
    assert _run(code, "narenas:2").stdout.strip() == "False"
