"""The Prefect API going away mid-run (issue 11, input 8): a bounded wait, a clear message, data safe.

A real ``prefect server start`` sits behind a loopback TCP proxy; the flow runs as the command
line does, in its own process, against the sandbox. The proxy is cut while the sandbox holds
the run's first requests (a stall), so the cut always falls mid-run, whatever the machine's pace.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from analytics_client import Lake
from analytics_client.state.marks import app_id
from analytics_sandbox import SandboxSettings, World, serve

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SMALL = {"tags": 20, "users": 20, "deals": 60, "pages": 20, "tasks": 20}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proxy:
    """A loopback TCP proxy with one switch: ``cut()`` closes the port and every connection."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self.listener, selectors.EVENT_READ)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prefect-proxy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._selector.select(timeout=0.05):
                sock = key.fileobj
                if sock is self.listener:
                    client, _ = self.listener.accept()
                    try:
                        upstream = socket.create_connection(("127.0.0.1", self.target))
                    except OSError:
                        client.close()
                        continue
                    for a, b in ((client, upstream), (upstream, client)):
                        self._peers[a] = b
                        self._selector.register(a, selectors.EVENT_READ)
                    continue
                assert isinstance(sock, socket.socket)
                try:
                    data = sock.recv(65536)
                except OSError:
                    data = b""
                peer = self._peers.get(sock)
                if not data or peer is None:
                    self._drop(sock)
                    continue
                with contextlib.suppress(OSError):
                    peer.sendall(data)
        for sock in list(self._peers):
            self._drop(sock)
        self._selector.unregister(self.listener)
        self.listener.close()

    def _drop(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for s in (sock, peer):
            if s is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._selector.unregister(s)
                s.close()
                self._peers.pop(s, None)

    def cut(self) -> None:
        """The API goes away: the port refuses, open connections are dropped."""
        self._stop.set()
        self._thread.join(10)


@contextlib.contextmanager
def prefect_server(home: Path, log: Path) -> Iterator[tuple[int, dict[str, str]]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ANALYTICS_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false", PYTHONUNBUFFERED="1",
               PREFECT_API_URL=f"http://127.0.0.1:{port}/api")
    with log.open("wb") as out:
        server = subprocess.Popen([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port), "--no-ui"], env=env, stdout=out,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 180
            while True:
                assert server.poll() is None, log.read_text()[-3000:]
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                        break
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.3)
            yield port, env
        finally:
            for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(server.pid, sig)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    server.wait(wait)
                    break


def test_prefect_api_going_away_mid_run_ends_in_a_clear_message(tmp_path: Path) -> None:
    """Cut the Prefect API while the run reads: it ends within a bounded wait, with exit code 3,
    naming the Prefect API and saying the committed rows and the table's marks are safe; the
    tables keep what was committed, and their marks never run ahead of it."""
    lake = tmp_path / "lake"
    settings = SandboxSettings(late_visibility=False)
    with prefect_server(tmp_path / "prefect-home", tmp_path / "server.log") as (port, env), \
            serve(World(seed=8, counts=SMALL), settings) as sandbox:
        proxy = Proxy(port)
        try:
            # The run's first requests are held until the API is gone, so the cut is mid-run.
            sandbox.set_faults([{"kind": "stall", "seconds": 5.0, "times": 5}])
            run_env = dict(env, PREFECT_API_URL=f"http://127.0.0.1:{proxy.port}/api",
                           ANALYTICS_API_KEY=sandbox.api_key,
                           ANALYTICS_ORGANIZATION_ID=sandbox.organization_id,
                           ANALYTICS_SYNC_LOCK_DIR=str(tmp_path / "locks"))
            with (tmp_path / "run.log").open("w") as out:
                run = subprocess.Popen(
                    [sys.executable, "flows/main.py", "--base-url", sandbox.base_url,
                     "--lake", str(lake), "--api-key-block", "", "--organization-block", ""],
                    cwd=ROOT, env=run_env, stdout=out, stderr=subprocess.STDOUT,
                    start_new_session=True)
                try:
                    deadline = time.monotonic() + 240
                    while int(sandbox.stats()["total_requests"]) == 0:
                        assert run.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
                        assert time.monotonic() < deadline
                        time.sleep(0.05)
                    proxy.cut()
                    cut_at = time.monotonic()
                    code = run.wait(600)
                    waited = time.monotonic() - cut_at
                finally:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(run.pid, signal.SIGKILL)
        finally:
            proxy.cut()
        output = (tmp_path / "run.log").read_text()
        print(f"the run ended {waited:.1f} s after the Prefect API went away, exit code {code}")
        assert code == 3, output[-4000:]
        [message] = [line for line in output.splitlines() if line.startswith("error: ")]
        assert message.startswith(f"error: the Prefect API (http://127.0.0.1:{proxy.port}/api) "
                                  "went away during the run")
        assert "every row committed so far and each table's mark are safe" in message
        assert "the next run resumes from the table's mark" in message
        for resource in SMALL:
            if (lake / resource).exists():
                assert Lake(str(lake)).mark(resource, app_id("analytics")) is not None
