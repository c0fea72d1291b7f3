"""The README's quick start as a user types it, from a fresh directory (issue 23, items 8, 9).

Its sandbox run, twice (the second one incremental), then the README's `state show` command for
the quick start's marks: each run exits 0 without a traceback on stdout or stderr, and the
marks the runs committed are what `state show` prints.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.prefect_stack import stop_shared_servers

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
RESOURCES = ("tags", "deals", "pages", "tasks", "users")


def _readme_commands() -> tuple[list[str], list[str]]:
    """The quick start's sync command and its `state show` command, as the README writes them."""
    start = README.split("## Five-minute start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", start, re.DOTALL)
    lines = [line.split("#", 1)[0].strip() for block in blocks for line in block.splitlines()]
    [run] = [shlex.split(line) for line in lines if line.endswith("flows/main.py --sandbox")]
    [show] = [shlex.split(line) for line in lines if " state show" in line]
    return run, show


def _as_typed(words: list[str], *extra: str, cwd: Path,
              home: Path) -> subprocess.CompletedProcess[str]:
    """``uv run python flows/main.py ...`` in ``cwd``: this interpreter, the repository's script."""
    assert words[:4] == ["uv", "run", "python", "flows/main.py"], words
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_API_URL", "ANALYTICS_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               ANALYTICS_SYNC_LOCK_DIR=str(home / "locks"))
    return subprocess.run([sys.executable, str(ROOT / "flows" / "main.py"), *words[4:], *extra],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


@pytest.mark.slow
def test_the_quick_start_runs_without_tracebacks_and_state_show_prints_its_marks(
        tmp_path: Path) -> None:
    run, show = _readme_commands()
    home = tmp_path / "prefect"
    try:
        for attempt, server in (("first", "(started;"), ("second", "(already running;")):
            done = _as_typed(run, "--sandbox-scale", "0.02", cwd=tmp_path, home=home)
            output = done.stdout + done.stderr
            assert done.returncode == 0, f"{attempt} run:\n{output[-4000:]}"
            assert "Traceback" not in output, f"{attempt} run:\n{output[-6000:]}"
            assert "total     ok" in done.stdout
            # the second run uses the temporary Prefect server the first one started
            assert "Prefect temporary server at http://127.0.0.1:" in done.stdout
            assert server in done.stdout, done.stdout[-3000:]
    finally:
        stop_shared_servers(home)
    shown = _as_typed(show, cwd=tmp_path, home=home)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert f"lake {tmp_path / 'data' / 'sandbox-lake'}" in shown.stdout, shown.stdout
    for resource in RESOURCES:
        [line] = [line for line in shown.stdout.splitlines()
                  if line.strip().startswith(f"{resource}: block cursor")]
        block = re.search(r"block cursor (\S+), table cursor (\S+)", line)
        assert block is not None and "-" not in (block[1].rstrip(","), block[2]), line


_TAKE_SLOTS = """
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
with get_client(sync_client=True) as client:
    for resource in ("tags", "deals", "pages", "tasks", "users"):
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(
            name=f"analytics-sync:sandbox--{resource}", limit=1, active_slots=1))
"""


@pytest.mark.slow
def test_a_slot_a_dead_run_left_with_no_lease_does_not_lock_the_quick_start(
        tmp_path: Path) -> None:
    """The state an older version left behind (its temporary server kept leases in memory, so a
    run that died holding its slots left them taken with no lease to run out): every later run
    was refused. The README's run takes them back, says so, and syncs."""
    run, _ = _readme_commands()
    home = tmp_path / "prefect"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    subprocess.run([sys.executable, "-c", _TAKE_SLOTS], env=env, check=True, timeout=600,
                   capture_output=True)
    try:
        done = _as_typed(run, "--sandbox-scale", "0.02", cwd=tmp_path, home=home)
    finally:
        stop_shared_servers(home)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "took back the Prefect slot of 'deals', 'pages', 'tags', 'tasks', 'users'" in output
    assert "total     ok" in done.stdout
