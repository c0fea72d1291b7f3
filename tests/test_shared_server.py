"""Prefect's temporary server, shared by the commands of one Prefect home for a while (issue 24).

Without ``PREFECT_API_URL`` the first ``python flows/main.py`` starts the server and the next
ones use it; it stops itself ``ANALYTICS_SYNC_SERVER_IDLE_SECONDS`` after the last command
using it ended, and never while one does. Real commands, real servers, real locks; every test
stops what it started (``_stopped``), whatever it asserts.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from analytics_client.orchestration.shared_server import DIRECTORY
from tests.prefect_stack import gone, shared_servers, stop_shared_servers, wait_gone

ROOT = Path(__file__).resolve().parents[1]
SAID = re.compile(r"Prefect temporary server at (\S+) \((started|already running);")

pytestmark = pytest.mark.slow


SECRET = "s3cr3t-object-store-key"


def _env(home: Path, idle: float | str, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PREFECT_API_URL", "ANALYTICS_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               ANALYTICS_SYNC_LOCK_DIR=str(home / "locks"),
               ANALYTICS_SYNC_SERVER_IDLE_SECONDS=str(idle), AWS_SECRET_ACCESS_KEY=SECRET,
               **more)
    return env


def _sync(home: Path, lake: Path, idle: float | str,
          **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "flows/main.py", "--sandbox", "--sandbox-scale",
                           "0.01", "--lake", str(lake)], cwd=ROOT, env=_env(home, idle, **env),
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def _said(done: subprocess.CompletedProcess[str]) -> tuple[str, str]:
    found = SAID.search(done.stdout)
    assert found is not None, done.stdout[-3000:] + done.stderr[-3000:]
    return found[1], found[2]


def _recorded(home: Path) -> dict[str, object] | None:
    with contextlib.suppress(OSError, ValueError):
        return dict(json.loads((home / DIRECTORY / "server.json").read_text()))
    return None


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    """A Prefect home whose shared servers are all stopped when the test ends."""
    path = tmp_path / "prefect"
    try:
        yield path
    finally:
        stop_shared_servers(path)


def test_the_second_command_uses_the_server_the_first_started(home: Path, tmp_path: Path) -> None:
    first = _sync(home, tmp_path / "lake", 120)
    assert first.returncode == 0, first.stderr[-3000:]
    url, how = _said(first)
    assert how == "started"
    [server] = shared_servers(home)
    assert httpx.get(f"{url}/health", timeout=10).status_code == 200  # it outlived the command
    # it keeps none of the command's secrets: the sandbox's API key, object-store credentials
    environment = Path(f"/proc/{server}/environ").read_bytes().split(b"\0")
    assert not [v for v in environment if v.startswith((b"ANALYTICS_API_KEY=",
                                                        b"ANALYTICS_ORGANIZATION_ID=",
                                                        b"AWS_SECRET_ACCESS_KEY="))]
    assert SECRET.encode() not in b"".join(environment)

    second = _sync(home, tmp_path / "lake", 30)
    assert second.returncode == 0, second.stderr[-3000:]
    assert _said(second) == (url, "already running")
    assert "it stops 120 s after" in second.stdout  # the running server's idle time, not 30
    assert shared_servers(home) == {server}
    # the second run is incremental: it read the marks the first saved on that server
    assert re.search(r"^total\s+ok\s+\d+\s+0\s+0\s+0", second.stdout, re.MULTILINE), second.stdout


def test_the_server_stops_once_no_command_used_it_for_the_idle_time(
        home: Path, tmp_path: Path) -> None:
    done = _sync(home, tmp_path / "lake", 2)
    assert done.returncode == 0, done.stderr[-3000:]
    _said(done)
    servers = shared_servers(home)
    assert servers and wait_gone(servers, 120), "the idle server did not stop"
    assert _recorded(home) is None  # retired: no later command picks a stopping server
    again = _sync(home, tmp_path / "lake", 2)
    assert again.returncode == 0, again.stderr[-3000:]
    assert _said(again)[1] == "started"


_HOLD = """
import sys, time
from pathlib import Path
from analytics_client.orchestration.shared_server import use_shared_server
server = use_shared_server(Path(sys.argv[1]), float(sys.argv[2]), startup_timeout=180)
print(server.pid, server.api_url, flush=True)
sys.stdin.read()  # hold the server until the test closes our stdin
"""


def _holder(home: Path, idle: float) -> tuple[subprocess.Popen[str], int, str]:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(home), str(idle)], cwd=ROOT,
                              env=_env(home, idle), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    pid, url = holder.stdout.readline().split()
    return holder, int(pid), url


def test_a_server_in_use_is_never_stopped_and_commands_at_once_share_one(home: Path) -> None:
    holders = [_holder(home, 0.5) for _ in range(3)]
    try:
        assert len({pid for _, pid, _ in holders}) == 1
        pid, url = holders[0][1], holders[0][2]
        time.sleep(3)  # six idle times: a server that ignored its users would have stopped
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        for holder, _, _ in holders[:2]:
            holder.communicate("")  # two of three end; one still uses it
        time.sleep(3)
        assert not gone(pid)
    finally:
        for holder, _, _ in holders:
            if holder.poll() is None:
                holder.communicate("")
    assert wait_gone({pid}, 120), "the server outlived its last user by far more than 0.5 s"


def test_a_recorded_server_that_does_not_answer_is_replaced_never_killed(
        home: Path, tmp_path: Path) -> None:
    """It may be a slow server other runs still use: it is left to stop by itself."""
    directory = home / DIRECTORY
    directory.mkdir(parents=True)
    silent = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)",
                               "temporary_server.py"])
    try:
        (directory / "server.json").write_text(json.dumps(
            {"pid": silent.pid, "api_url": "http://127.0.0.1:9/api", "idle": 600,
             "users": "users-old.lock"}))
        done = _sync(home, tmp_path / "lake", 60)
        assert done.returncode == 0, done.stderr[-3000:]
        url, how = _said(done)
        assert how == "started" and url != "http://127.0.0.1:9/api"
        assert silent.poll() is None  # not killed
        [server] = shared_servers(home)
        recorded = _recorded(home)
        assert recorded is not None and (recorded["pid"], recorded["api_url"]) == (server, url)
    finally:
        silent.kill()
        silent.wait()


def test_a_server_that_cannot_start_fails_the_command_once_naming_its_log(
        home: Path, tmp_path: Path) -> None:
    """Started again and again, it would spend the whole startup timeout (180 s) saying so."""
    done = _sync(home, tmp_path / "lake", 60,
                 PREFECT_SERVER_DATABASE_CONNECTION_URL="sqlite+aiosqlite:////proc/none/x.db")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()[-1:]
    log = home / DIRECTORY / "server.log"
    assert line.startswith("error: Prefect's temporary API server did not start: it exited "
                           "with status"), done.stderr[-2000:]
    assert str(log) in line and "Traceback" not in done.stderr
    assert log.read_text().count("Application startup failed") == 1
    assert not shared_servers(home) and _recorded(home) is None


def test_a_prefect_home_that_cannot_be_written_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    home = tmp_path / "a-file" / "prefect"
    done = _sync(home, tmp_path / "lake", 60)
    assert done.returncode == 2
    assert f"its home {home} (PREFECT_HOME) cannot be written" in done.stderr
    assert "Traceback" not in done.stderr


_INTERRUPTED = """
import sys
from pathlib import Path
import httpx
from analytics_client.orchestration.shared_server import use_shared_server

def interrupted(*args, **kwargs):
    raise KeyboardInterrupt
httpx.get = interrupted  # Ctrl-C while the new server starts
try:
    use_shared_server(Path(sys.argv[1]), 60, startup_timeout=180)
except KeyboardInterrupt:
    print("interrupted")
"""


def test_ctrl_c_while_a_server_starts_leaves_no_server_behind(home: Path) -> None:
    done = subprocess.run([sys.executable, "-c", _INTERRUPTED, str(home)], cwd=ROOT,
                          env=_env(home, 60), capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "interrupted", done.stderr[-3000:]
    assert wait_gone(shared_servers(home), 30) and _recorded(home) is None


@pytest.mark.parametrize("value", ["ten", "-1", "inf", "nan"])
def test_a_bad_idle_time_is_one_line_naming_the_variable(
        home: Path, tmp_path: Path, value: str) -> None:
    done = _sync(home, tmp_path / "lake", value)
    assert done.returncode == 2
    assert "ANALYTICS_SYNC_SERVER_IDLE_SECONDS" in done.stderr and "Traceback" not in done.stderr
    assert not shared_servers(home)


def test_zero_keeps_a_server_per_command(home: Path, tmp_path: Path) -> None:
    done = _sync(home, tmp_path / "lake", 0)
    assert done.returncode == 0, done.stderr[-3000:]
    assert SAID.search(done.stdout) is None
    assert not shared_servers(home) and _recorded(home) is None
