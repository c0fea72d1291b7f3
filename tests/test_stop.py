"""Ctrl-C and SIGTERM stop a run: real process, real signal, real Prefect API, real sandbox.

On the first signal each resource ends after its current page and commits what it fetched
with its mark; the flow run ends Cancelled in Prefect (not RUNNING forever); the process exits
with 128 + the signal's number; a rerun ends equal to the API, which kept changing meanwhile.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics_client import Lake
from analytics_client.read.keyset import parse_cursor
from analytics_client.state.marks import app_id
from analytics_sandbox import RunningSandbox, serve_subprocess
from tests.groundtruth import fetch_truth
from tests.support import RESOURCES, assert_lake_equals_truth, sync

ROOT = Path(__file__).resolve().parents[1]
# Long enough that the signal lands mid-run on any machine: 5,450 records, 20 ms a page.
COUNTS = {"tags": 250, "users": 1000, "deals": 2000, "pages": 1200, "tasks": 1000}
# A limit, not a speed: the run stops after its current pages and a few commits. It took
# 386 s to stop before this was fixed; about 4 s since (measured on 2 loaded cores).
STOP_WITHIN = 60.0

pytestmark = pytest.mark.slow


@pytest.fixture
def api() -> Iterator[RunningSandbox]:
    """A sandbox of its own process that keeps changing records while the run pages."""
    with serve_subprocess(counts=COUNTS, seed=7, latency_ms=20, mutate_every_n_requests=5,
                          mutate_updates=2, mutate_creates=1,
                          late_visibility=False) as sandbox:
        yield sandbox


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the harness fixture sets PREFECT_API_URL"
    return str(url)


def _start(sandbox: RunningSandbox, lake: Path, pipeline: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": _api_url(),
           "ANALYTICS_API_KEY": sandbox.api_key,
           "ANALYTICS_ORGANIZATION_ID": sandbox.organization_id}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "flows" / "main.py"), "--base-url", sandbox.base_url,
         "--lake", str(lake), "--pipeline", pipeline, "--batch-rows", "100",
         "--api-key-block", "", "--organization-block", ""],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_a_commit(process: subprocess.Popen[str], lake: Path) -> None:
    """Mid-run: a table exists (a first commit happened) and the run is still going."""
    deadline = time.monotonic() + 300  # a limit for a broken run, not a speed
    while not any((lake / r / "_delta_log").exists() for r in RESOURCES):
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "no commit within 300 s"
        time.sleep(0.05)


def _stop(process: subprocess.Popen[str], signum: int,
          *, group: bool = False) -> tuple[int, str, float]:
    """Send ``signum`` (to the process group, as a terminal's Ctrl-C does, if ``group``) and
    wait for the exit: (exit code, output, seconds)."""
    sent = time.monotonic()
    if group:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        output, _ = process.communicate(timeout=STOP_WITHIN)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"still running {STOP_WITHIN:.0f} s after {signum}:\n{output[-3000:]}")
    return process.returncode, output, time.monotonic() - sent


def _last_flow_run_state(pipeline: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=20)
    ours = [r for r in runs if r.parameters.get("pipeline") == pipeline]
    assert ours, f"no flow run of pipeline {pipeline!r} in the Prefect API"
    assert ours[0].state is not None
    return ours[0].state.type.value


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_commits_with_marks_and_cancels_the_flow_run(
        harness: None, api: RunningSandbox, tmp_path: Path, signum: int, code: int) -> None:
    """First signal: stop after the current page, commit, Cancelled, exit 128+n; a rerun is exact."""
    pipeline = f"stop-{signum}"
    process = _start(api, tmp_path, pipeline)
    _wait_for_a_commit(process, tmp_path)
    returncode, output, took = _stop(process, signum)
    print(f"\nstopped {took:.1f} s after {signal.Signals(signum).name}")

    assert returncode == code, output[-3000:]
    assert f"{signal.Signals(signum).name} received" in output
    assert "Traceback" not in output
    assert _last_flow_run_state(pipeline) == "CANCELLED"
    lake = Lake(str(tmp_path))
    marked = [r for r in RESOURCES if lake.mark(r, app_id(pipeline)) is not None]
    assert marked, "what was fetched was committed with its mark"
    # No mark ahead of its data: below each table's mark, every record of the API is there.
    for resource in marked:
        mark = lake.mark(resource, app_id(pipeline))
        assert mark is not None
        ids = set(lake.read(resource)["id"])
        below = {r["id"] for r in fetch_truth(api.base_url, resource)
                 if parse_cursor(r["updated_at"]) < mark}
        assert below <= ids, f"{resource}: records below the mark are missing"
    assert any((lake.row_count(r) or 0) < COUNTS[r] for r in RESOURCES), "it stopped mid-way"

    api.configure(mutate_every_n_requests=0)
    summaries = sync(api, tmp_path, None, pipeline=pipeline)
    assert all(s.status == "ok" for s in summaries.values())
    assert_lake_equals_truth(api, tmp_path)


def test_ctrl_c_in_a_terminal_stops_a_sandbox_run_with_its_temporary_server(
        tmp_path: Path) -> None:
    """A terminal sends Ctrl-C to the whole process group: before, the sandbox and Prefect's
    temporary server died with it and the run retried them for 386 s. Now both live in their
    own sessions, the run stops cleanly, records Cancelled, and nothing is left running."""
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    # A fresh temporary server migrates its database first: give it time on a loaded machine
    # (its 20 s default is defect 1 of this issue, handled apart).
    env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / "prefect"),
               PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300")
    lake = tmp_path / "lake"
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "flows" / "main.py"), "--sandbox", "--sandbox-scale", "2",
         "--lake", str(lake), "--batch-rows", "200"],
        env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)  # a process group of its own, as a terminal's job is
    try:
        _wait_for_a_commit(process, lake)
        code, output, seconds = _stop(process, signal.SIGINT, group=True)  # what Ctrl-C does
        print(f"\nCtrl-C to the group: exit {code} after {seconds:.1f} s")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 130, output[-3000:]
    assert "Finished in state Cancelled" in output, output[-3000:]
    assert "Traceback" not in output and "Connection refused" not in output
    assert not _processes_started_for(tmp_path), "the temporary server or the sandbox outlived the run"


def _processes_started_for(tmp_path: Path) -> list[str]:
    """Pids of servers whose environment names this test's directory (its PREFECT_HOME)."""
    found = subprocess.run(["pgrep", "-f", "prefect.server.api.server|sandbox serve"],
                           capture_output=True, text=True).stdout.split()
    ours = []
    for pid in found:
        try:
            if str(tmp_path) in Path(f"/proc/{pid}/environ").read_text(errors="replace"):
                ours.append(pid)
        except OSError:  # it ended meanwhile
            continue
    return ours
