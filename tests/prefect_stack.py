"""A temporary `prefect server` and workers in process groups of their own, for deployment tests.

Every process started here runs in its own session; leaving ``background`` stops the whole
group (TERM, then KILL), so no server, worker or flow-run process outlives its test.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from analytics_sandbox import RunningSandbox, serve_subprocess

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COPY_IGNORE = shutil.ignore_patterns(".git", ".venv", "data", "__pycache__", ".pytest_cache",
                                      ".mypy_cache", ".ruff_cache", "results", "*.pyc")
POOL = "analytics"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def background(args: list[str], env: dict[str, str], cwd: Path,
               log: Path) -> Iterator[subprocess.Popen[bytes]]:
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


def base_env(home: Path, lock_dir: Path) -> dict[str, str]:
    """This environment without PREFECT_* / ANALYTICS_* settings, with its own Prefect home."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_", "ANALYTICS_")) and k not in ("VIRTUAL_ENV",)}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               ANALYTICS_SYNC_LOCK_DIR=str(lock_dir), PYTHONUNBUFFERED="1",
               ANALYTICS_SYNC_SERVER_IDLE_SECONDS="0")  # a temporary server ends with its run
    return env


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path,
                 timeout: float = 120) -> None:
    """Until the server's /health answers 200; fails with its log when it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"prefect server exited {process.returncode}:\n"
                                 f"{log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise AssertionError(f"prefect server not healthy after {timeout} s:\n"
                         f"{log.read_text()[-3000:]}")


@dataclass
class Stack:
    """A Prefect server, the sandbox, workers and a deployed copy of the project."""

    checkout: Path
    env: dict[str, str]
    sandbox: RunningSandbox
    logs: Path
    workers: tuple[str, ...]

    def prefect(self, *args: str, timeout: float = 300, check: bool = True,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(BIN / "prefect"), *args], cwd=self.checkout,
                                env=env or self.env, capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
                                 f"{self.worker_log()}")
        return result

    def worker_log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def worker_log(self) -> str:
        """The tail of every worker's log, for a failure message."""
        return "".join(f"\n--- {name} log (tail) ---\n"
                       + self.worker_log_path(name).read_text(errors="replace")[-4000:]
                       for name in self.workers if self.worker_log_path(name).exists())

    def requests(self) -> int:
        return int(self.sandbox.stats()["total_requests"])


@contextlib.contextmanager
def deployed_stack(tmp: Path, counts: dict[str, int],
                   workers: Sequence[tuple[str, Sequence[str]]]) -> Iterator[Stack]:
    """The docs' commands on a fresh copy of the project, then ``workers`` polling the pool.

    A temporary `prefect server` on a free loopback port (scheduler off: no cron run
    mid-test), the sandbox, ``prefect work-pool create``, the Secret blocks, ``prefect deploy
    --all``; then one ``prefect worker start --name NAME *ARGS`` per ``(NAME, ARGS)``, each
    logging to ``<logs>/<NAME>.log``. Every process is stopped, with its group, on exit.
    """
    started = time.monotonic()
    checkout = tmp / "checkout"
    shutil.copytree(ROOT, checkout, ignore=COPY_IGNORE)
    logs = tmp / "logs"
    logs.mkdir()
    env = base_env(tmp / "prefect-home", tmp / "locks")
    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    server_env = dict(env, PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false", PREFECT_API_URL=api)
    env["PREFECT_API_URL"] = api
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(background(
            [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port),
             "--no-ui"], server_env, checkout, logs / "server.log"))
        sandbox = stack.enter_context(serve_subprocess(counts=counts, seed=11,
                                                       late_visibility=False))
        wait_healthy(api, server, logs / "server.log")
        print(f"\nprefect server healthy after {time.monotonic() - started:.1f} s")
        s = Stack(checkout=checkout, env=env, sandbox=sandbox, logs=logs,
                  workers=tuple(name for name, _ in workers))
        s.prefect("work-pool", "create", POOL, "--type", "process")
        secrets = subprocess.run(
            [sys.executable, "flows/main.py", "secrets"], cwd=checkout, capture_output=True,
            text=True, timeout=120, env=dict(env, ANALYTICS_API_KEY=sandbox.api_key,
                                             ANALYTICS_ORGANIZATION_ID=sandbox.organization_id,
                                             ANALYTICS_BASE_URL=sandbox.base_url))
        assert secrets.returncode == 0, secrets.stdout + secrets.stderr
        # A value here would be the deploying machine's: nothing of it may reach the deployment.
        deployed = s.prefect("deploy", "--all", "--no-prompt",
                             env=dict(env, ANALYTICS_SYNC_HOME="/deploying/machine/path"))
        assert "analytics-sync/incremental" in deployed.stdout, deployed.stdout
        worker_env = dict(env, ANALYTICS_SYNC_HOME=str(checkout),
                          ANALYTICS_BASE_URL=sandbox.base_url, PREFECT_WORKER_QUERY_SECONDS="1",
                          PREFECT_WORKER_PREFETCH_SECONDS="5")
        for name, args in workers:
            # Each worker stands for a machine: its own lock directory (lock.py), so that only
            # the Prefect server keeps their runs of one pipeline and resource apart.
            stack.enter_context(background(
                [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", name, *args],
                dict(worker_env, ANALYTICS_SYNC_LOCK_DIR=str(tmp / "locks" / name)), tmp,
                s.worker_log_path(name)))
        print(f"stack ready after {time.monotonic() - started:.1f} s")
        yield s


def report(request: pytest.FixtureRequest, line: str) -> None:
    """Print ``line`` in pytest's report, shown even without -s (as CI runs the suite)."""
    print(line)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"\n{line}")


def shared_servers(home: Path) -> set[int]:
    """Running shared temporary servers of Prefect home ``home`` (shared_server.py): the
    processes whose environment names its directory."""
    marker = f"ANALYTICS_SYNC_SHARED_SERVER_DIR={home / 'analytics-sync-server'}".encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.add(int(entry.name))
    return found


def gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1]
    except (OSError, IndexError):
        return True
    return state == "Z"


def wait_gone(pids: set[int], seconds: float) -> bool:
    """Until every process of ``pids`` has ended (True), or ``seconds`` passed (False)."""
    deadline = time.monotonic() + seconds
    while not all(gone(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def stop_shared_servers(home: Path) -> None:
    """Stop the shared temporary servers of ``home`` a test's commands left (TERM, then KILL)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = shared_servers(home)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        if wait_gone(pids, 20):
            return
