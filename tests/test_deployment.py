"""prefect.yaml end to end: a real `prefect server start`, `prefect deploy`, a process worker.

Deployed from a fresh copy of the project (as a clean clone would be), with the docs' commands:
work pool, Secret blocks, `prefect deploy --all --no-prompt`, `prefect worker start`, then
`prefect deployment run analytics-sync/incremental --watch` twice around a sandbox advance. The
tables must equal the sandbox's truth each time, and the second run must be incremental.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from analytics_client.sandbox import RunningSandbox, serve_subprocess
from tests.support import assert_lake_equals_truth

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COUNTS = {"tags": 20, "users": 20, "deals": 60, "pages": 30, "tasks": 40}
POOL = "analytics"
pytestmark = pytest.mark.slow

_COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "data", "__pycache__", ".pytest_cache",
                                      ".mypy_cache", ".ruff_cache", "results", "*.pyc")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def background(args: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``args`` in its own process group; on exit stop the whole group (TERM, then KILL)."""
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        try:
            yield process
        finally:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                try:
                    process.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
            with contextlib.suppress(ProcessLookupError):  # children left in the group
                os.killpg(process.pid, signal.SIGKILL)


@dataclass
class Stack:
    """A Prefect server, the sandbox, a worker and a deployed copy of the project."""

    checkout: Path
    env: dict[str, str]
    sandbox: RunningSandbox
    logs: Path

    def prefect(self, *args: str, timeout: float = 300, check: bool = True,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(BIN / "prefect"), *args], cwd=self.checkout, env=env or self.env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}{self.worker_log()}")
        return result

    def worker_log(self) -> str:
        path = self.logs / "worker.log"
        return "\n--- worker log (tail) ---\n" + path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def requests(self) -> int:
        return int(self.sandbox.stats()["total_requests"])


def _base_env(home: Path, lock_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "ANALYTICS_")) and k not in ("VIRTUAL_ENV",)}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               ANALYTICS_SYNC_LOCK_DIR=str(lock_dir), PYTHONUNBUFFERED="1")
    return env


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prefect server exited {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"prefect server not healthy after {timeout} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Stack]:
    started = time.monotonic()
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    tmp = tmp_path_factory.mktemp("deployment")
    checkout = tmp / "checkout"
    shutil.copytree(ROOT, checkout, ignore=_COPY_IGNORE)
    logs = tmp / "logs"
    logs.mkdir()
    env = _base_env(tmp / "prefect-home", tmp / "locks")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_env = dict(env, PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",  # no cron runs mid-test
                      PREFECT_API_URL=api)
    env["PREFECT_API_URL"] = api
    with contextlib.ExitStack() as stack_:
        server = stack_.enter_context(background(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port), "--no-ui"],
            server_env, checkout, logs / "server.log"))
        sandbox = stack_.enter_context(serve_subprocess(counts=COUNTS, seed=11, late_visibility=False))
        _wait_healthy(api, server, logs / "server.log")
        print(f"\nprefect server healthy after {time.monotonic() - started:.1f} s")
        s = Stack(checkout=checkout, env=env, sandbox=sandbox, logs=logs)
        s.prefect("work-pool", "create", POOL, "--type", "process")
        secrets = subprocess.run(
            [sys.executable, "flows/main.py", "secrets"], cwd=checkout, capture_output=True, text=True,
            env=dict(env, ANALYTICS_API_KEY=sandbox.api_key, ANALYTICS_ORGANIZATION_ID=sandbox.organization_id),
            timeout=120)
        assert secrets.returncode == 0, secrets.stdout + secrets.stderr
        # A value here would be the deploying machine's: nothing of it may reach the deployment.
        deployed = s.prefect("deploy", "--all", "--no-prompt",
                             env=dict(env, ANALYTICS_SYNC_HOME="/deploying/machine/path"))
        assert "analytics-sync/incremental" in deployed.stdout, deployed.stdout
        worker_env = dict(env, ANALYTICS_SYNC_HOME=str(checkout), ANALYTICS_BASE_URL=sandbox.base_url,
                          PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_WORKER_PREFETCH_SECONDS="5")
        stack_.enter_context(background(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", "ci-worker"],
            worker_env, tmp, logs / "worker.log"))
        print(f"stack ready after {time.monotonic() - started:.1f} s")
        yield s
    wall = f"deployment test wall time: {time.monotonic() - started:.1f} s (server, worker, 4 runs)"
    print(wall)
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:  # shown even without -s, as CI runs it
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{wall}")


def _run_incremental(s: Stack) -> tuple[int, float]:
    """One watched deployment run; the lake must then equal the truth. Returns requests, seconds."""
    started, before = time.monotonic(), s.requests()
    s.prefect("deployment", "run", "analytics-sync/incremental", "--watch", "--watch-timeout", "240")
    requests = s.requests() - before
    assert_lake_equals_truth(s.sandbox, s.checkout / "data" / "lake", tuple(COUNTS))
    return requests, time.monotonic() - started


def test_deployments_carry_no_path_of_the_deploying_machine(stack: Stack) -> None:
    """Every deployment pulls through ANALYTICS_SYNC_HOME read on the worker; the schedule is UTC cron."""
    for name in ("analytics-sync/incremental", "analytics-sync/full-refresh", "analytics-maintenance/weekly"):
        text = stack.prefect("deployment", "inspect", name).stdout
        assert str(stack.checkout) not in text and "/deploying/machine/path" not in text, text
        assert "ANALYTICS_SYNC_HOME" in text and "'work_pool_name': 'analytics'" in text, text
    incremental = stack.prefect("deployment", "inspect", "analytics-sync/incremental").stdout
    assert "*/15 * * * *" in incremental and "'timezone': 'UTC'" in incremental
    assert "'collision_strategy': 'CANCEL_NEW'" in incremental
    refresh = stack.prefect("deployment", "inspect", "analytics-sync/full-refresh").stdout
    assert "'full_refresh': True" in refresh


def test_incremental_deployment_runs_twice_on_a_worker_and_matches_the_truth(stack: Stack) -> None:
    """Run 1 reads everything; after an advance, run 2 reads only the change; tables equal truth."""
    first, seconds = _run_incremental(stack)
    print(f"\nrun 1 (full read): {first} requests, {seconds:.1f} s")
    stack.sandbox.advance(updates=4, creates=3, seed=7)
    second, seconds = _run_incremental(stack)
    print(f"run 2 (incremental): {second} requests, {seconds:.1f} s")
    assert 0 < second < first / 2, (first, second)


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Hook.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_failed_run_sends_the_failure_alert(stack: Stack) -> None:
    """flows/alerts.py creates both automations; a failing deployment run posts to the webhook."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hook_url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        make_block = (
            "from prefect.blocks.notifications import CustomWebhookNotificationBlock as B;"
            f"B(name='ci', url='{hook_url}', json_data={{'subject': '{{{{subject}}}}', "
            "'body': '{{body}}'}).save('ci-alerts', overwrite=True)"
        )
        subprocess.run([sys.executable, "-c", make_block], env=stack.env, check=True, timeout=60)
        alerts = subprocess.run(
            [sys.executable, "flows/alerts.py", "--notify-block", "custom-webhook/ci-alerts",
             "--stale-after", "2h"], cwd=stack.checkout, env=stack.env, capture_output=True,
            text=True, timeout=60)
        assert alerts.returncode == 0, alerts.stdout + alerts.stderr
        assert "run failed or crashed" in alerts.stdout and "no completed run for 2h" in alerts.stdout

        failed = stack.prefect("deployment", "run", "analytics-sync/incremental", "--param",
                               'resources=["no-such-resource"]', "--watch", "--watch-timeout", "120",
                               check=False)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        deadline = time.monotonic() + 60
        while not _Hook.received and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _Hook.received, "no notification within 60 s of the failed run"
        message = json.dumps(_Hook.received[0])
        assert "analytics-sync" in message and "Failed" in message, message
    finally:
        server.shutdown()
        server.server_close()
